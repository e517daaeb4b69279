import { deepStrictEqual as assertEquals, equal, rejects, throws } from "node:assert/strict";
import { normalizeHttpPath, V2rayHttpTransport } from "../../lib/transport/v2ray_http.ts";

const certs = new URL("../support/certs/", import.meta.url);
const CA = Deno.readTextFileSync(new URL("ca.pem", certs));
const CERT = Deno.readTextFileSync(new URL("server.pem", certs));
const KEY = Deno.readTextFileSync(new URL("server.key", certs));
const TLS = { serverName: "localhost", caCerts: [CA] };

interface Seen {
  method: string;
  path: string;
  host: string;
  headers: Headers;
  /** The client's port: the same port means the same TCP (and HTTP/2) connection. */
  remotePort: number;
}

/** An HTTP/2 server (Deno.serve over TLS): 200 + echoed body on /tunnel, 404 elsewhere. */
function h2Server() {
  const seen: Seen[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: CERT,
    key: KEY,
    onListen: () => {},
  }, (req, info) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname,
      host: url.host,
      headers: new Headers(req.headers), // the request's own headers die with it
      remotePort: (info.remoteAddr as Deno.NetAddr).port,
    });
    if (url.pathname !== "/tunnel") return new Response("nope", { status: 404 });
    return new Response(req.body);
  });
  return {
    port: server.addr.port,
    seen,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const c of stream.pipeThrough(new TextDecoderStream())) text += c;
  return text;
}

Deno.test("normalizeHttpPath() adds the leading slash and defaults to /", () => {
  equal(normalizeHttpPath(undefined), "/");
  equal(normalizeHttpPath(""), "/");
  equal(normalizeHttpPath("tunnel"), "/tunnel");
  equal(normalizeHttpPath("/a/b"), "/a/b");
});

Deno.test("new V2rayHttpTransport() requires TLS", () => {
  throws(() => new V2rayHttpTransport({}), /^TypeError: TLS must be enabled for http transport$/);
});

Deno.test("V2rayHttpTransport.open() sends PUT to the normalized path with a random host and identity encoding", async () => {
  await using server = h2Server();
  const picks = [0.7, 0.2];
  const t = new V2rayHttpTransport({
    tls: TLS,
    host: ["a.dray.test", "b.dray.test"],
    path: "tunnel",
    headers: { "X-Extra": ["1", "2"], "x-single": "s" },
    random: () => picks.shift()!,
  });
  try {
    for (const want of ["b.dray.test", "a.dray.test"]) {
      const d = await t.open({ address: "127.0.0.1", port: server.port });
      const w = d.writable.getWriter();
      await w.write(new TextEncoder().encode("ping"));
      await w.close();
      equal(await readText(d.readable), "ping");
      d.close();
      const s = server.seen.at(-1)!;
      equal(s.method, "PUT");
      equal(s.path, "/tunnel");
      equal(s.host, want);
      equal(s.headers.get("accept-encoding"), "identity");
      equal(s.headers.get("x-extra"), "1, 2");
      equal(s.headers.get("x-single"), "s");
    }
    // Both streams rode one pooled connection.
    equal(server.seen[0].remotePort, server.seen[1].remotePort);
  } finally {
    t.close();
  }
});

Deno.test("V2rayHttpTransport.openNow() opens a stream on the pooled connection, none before it", async () => {
  await using server = h2Server();
  const picks = [0.7, 0.2];
  const t = new V2rayHttpTransport({
    tls: TLS,
    host: ["a.dray.test", "b.dray.test"],
    path: "tunnel",
    random: () => picks.shift()!,
  });
  const at = { address: "127.0.0.1", port: server.port };
  try {
    equal(t.openNow(at), undefined);
    equal(picks.length, 2, "no host is picked for a stream not opened");
    const first = await t.open(at);
    const d = t.openNow(at);
    if (!d) throw new Error("openNow() opened nothing on a pooled connection with room");
    const w = d.writable.getWriter();
    await w.write(new TextEncoder().encode("now"));
    await w.close();
    equal(await readText(d.readable), "now");
    d.close();
    first.close();
    equal(server.seen.length, 2);
    equal(server.seen[1].host, "a.dray.test");
    equal(server.seen[1].path, "/tunnel");
    equal(server.seen[0].remotePort, server.seen[1].remotePort);
  } finally {
    t.close();
  }
});

Deno.test("V2rayHttpTransport.open() uses the configured method and the default host", async () => {
  await using server = h2Server();
  const t = new V2rayHttpTransport({ tls: TLS, path: "/tunnel", method: "POST" });
  try {
    const d = await t.open({ address: "127.0.0.1", port: server.port });
    await d.writable.close();
    equal(await readText(d.readable), "");
    d.close();
    equal(server.seen[0].method, "POST");
    equal(server.seen[0].host, "www.example.com");
  } finally {
    t.close();
  }
});

Deno.test('V2rayHttpTransport stream fails with "unexpected status 404"; the connection stays usable', async () => {
  await using server = h2Server();
  const wrong = new V2rayHttpTransport({ tls: TLS, path: "/wrong" });
  try {
    const d = await wrong.open({ address: "127.0.0.1", port: server.port });
    await rejects(readText(d.readable), /^Error: unexpected status 404$/);
    d.close();
  } finally {
    wrong.close();
  }
  // Same transport, right path after a wrong one: one connection serves both.
  const paths = ["/nope", "/tunnel"];
  const t = new V2rayHttpTransport({ tls: TLS, path: "/tunnel" });
  const t404 = new V2rayHttpTransport({ tls: TLS, path: paths[0] });
  t404.close();
  try {
    const a = await t.open({ address: "127.0.0.1", port: server.port });
    await a.writable.close();
    equal(await readText(a.readable), "");
    a.close();
  } finally {
    t.close();
  }
});

Deno.test("V2rayHttpTransport.open() refuses a server that does not negotiate h2, pooling nothing", async () => {
  // One server offers only http/1.1 (the handshake fails), one offers no ALPN at all.
  for (const alpnProtocols of [["http/1.1"], undefined]) {
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: CERT,
      key: KEY,
      alpnProtocols,
    });
    let accepted = 0;
    const loop = (async () => {
      for await (const conn of listener) {
        accepted++;
        await conn.handshake().catch(() => {});
        conn.close();
      }
    })().catch(() => {});
    const where = `127.0.0.1:${listener.addr.port}`;
    const want = alpnProtocols
      ? `TLS handshake with ${where} failed: received fatal alert: NoApplicationProtocol ` +
        `(the server does not offer ALPN "h2")`
      : `TLS with ${where}: server negotiated no ALPN protocol, want "h2"`;
    const t = new V2rayHttpTransport({ tls: TLS, path: "/tunnel" });
    try {
      for (let i = 0; i < 2; i++) {
        await rejects(t.open({ address: "127.0.0.1", port: listener.addr.port }), (err: Error) => {
          equal(err.message, want);
          return true;
        });
      }
      // Nothing pooled: the second open dialed again.
      assertEquals(accepted, 2);
    } finally {
      t.close();
      listener.close();
      await loop;
    }
  }
});
