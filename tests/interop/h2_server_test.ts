import { dispatcherFor } from "../support/fake_outbound.ts";
/**
 * Our HTTP/2 server (H2ServerConnection) against other clients: nghttp (nghttp2) over h2c with
 * prior knowledge, curl over TLS with ALPN h2, and dray's VLESS client against
 * `InboundServer.listen({ http })` (node:tls with TCP_NODELAY). Bytes verified by sha256.
 */
import { equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { H2ServerConnection, type H2ServerStream } from "../../lib/h2/server_connection.ts";
import { DEFAULT_POLICY } from "../../lib/dispatch/policy.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { Logger } from "../../lib/log.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { TlsListener } from "../../lib/net/tls_listener.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { V2rayHttpTransport } from "../../lib/transport/v2ray_http.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import { patternChunks, sha256OfPattern, startTarget } from "../support/target.ts";
import { CA_PEM, uuidBytes } from "../support/v2ray.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const MIB = 1024 * 1024;
const CERTS = new URL("../support/certs/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("server.pem", CERTS));
const KEY = Deno.readTextFileSync(new URL("server.key", CERTS));
const CA_FILE = new URL("ca.pem", CERTS).pathname;

/**
 * A small app on our server: GET /down?n=N → N pattern bytes; POST /sha256 → the body's sha256
 * in hex; anything else 404.
 */
function app(stream: H2ServerStream): void {
  const url = new URL(stream.request.path, "http://x");
  void (async () => {
    if (url.pathname === "/down") {
      stream.respond(200, [["content-type", "application/octet-stream"]]);
      const w = stream.writable.getWriter();
      for (const c of patternChunks(Number(url.searchParams.get("n")))) await w.write(c);
      await w.close();
    } else if (url.pathname === "/sha256") {
      const h = createHash("sha256");
      for await (const c of stream.readable) h.update(c);
      stream.respond(200, [["content-type", "text/plain"]]);
      const w = stream.writable.getWriter();
      await w.write(enc.encode(h.digest("hex") + "\n"));
      await w.close();
    } else {
      stream.respond(404, [], { endStream: true });
      stream.close();
    }
  })().catch(() => stream.close());
}

interface TestServer extends AsyncDisposable {
  port: number;
}

/** Serves `app` from every accepted duplex until disposed. */
function serveOn(
  accept: () => Promise<Duplex | null>,
  close: () => void,
  port: number,
): TestServer {
  const conns = new Set<H2ServerConnection>();
  const pending = new Set<Promise<void>>();
  const loop = (async () => {
    for (let i = 0; i < 10_000; i++) {
      const d = await accept();
      if (!d) return;
      const p = H2ServerConnection.accept(d, app, { readIdleTimeout: 0 }).then(async (c) => {
        conns.add(c);
        await c.closed;
        conns.delete(c);
      }, () => {});
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
  })();
  return {
    port,
    async [Symbol.asyncDispose]() {
      close();
      for (const c of conns) c.close();
      await loop;
      await Promise.all([...pending]);
    },
  };
}

function h2cServer(): TestServer {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return serveOn(
    async () => {
      try {
        const conn = await l.accept();
        conn.setNoDelay(true);
        return new ConnDuplex(conn);
      } catch {
        return null;
      }
    },
    () => l.close(),
    l.addr.port,
  );
}

async function tlsServer(): Promise<TestServer> {
  const l = await TlsListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: CERT,
    key: KEY,
    alpnProtocols: ["h2"],
  });
  return serveOn(
    async () => {
      try {
        return (await l.accept()).duplex;
      } catch {
        return null;
      }
    },
    () => l.close(),
    l.addr.port,
  );
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: Uint8Array; err: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, out: r.stdout, err: dec.decode(r.stderr) };
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

Deno.test("nghttp (h2c, prior knowledge) downloads 16 MiB from our server and uploads 16 MiB to it", async () => {
  await using s = h2cServer();
  const down = await run("nghttp", [
    "--timeout=20",
    `http://127.0.0.1:${s.port}/down?n=${16 * MIB}`,
  ]);
  equal(down.code, 0, down.err);
  equal(down.out.byteLength, 16 * MIB);
  equal(sha256(down.out), sha256OfPattern(16 * MIB));

  const file = await Deno.makeTempFile();
  try {
    const f = await Deno.open(file, { write: true });
    for (const c of patternChunks(16 * MIB)) await f.write(c);
    f.close();
    const up = await run("nghttp", [
      "--timeout=20",
      "-d",
      file,
      `http://127.0.0.1:${s.port}/sha256`,
    ]);
    equal(up.code, 0, up.err);
    equal(dec.decode(up.out), sha256OfPattern(16 * MIB) + "\n");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("nghttp runs 100 concurrent requests on one connection against our server, and gets a 404", async () => {
  await using s = h2cServer();
  const r = await run("nghttp", [
    "--timeout=20",
    "-m",
    "100",
    "-s",
    "-n",
    `http://127.0.0.1:${s.port}/down?n=100000`,
  ]);
  equal(r.code, 0, r.err);
  const statusLines = dec.decode(r.out).split("\n").filter((l) => /\s200\s/.test(l));
  equal(statusLines.length, 100, dec.decode(r.out));
  const nf = await run("nghttp", ["-v", "--timeout=10", `http://127.0.0.1:${s.port}/nothing`]);
  ok(/:status: 404/.test(dec.decode(nf.out)), dec.decode(nf.out));
});

Deno.test("curl --http2 over TLS (ALPN h2) downloads and uploads through our server", async () => {
  await using s = await tlsServer();
  const base = `https://localhost:${s.port}`;
  const down = await run("curl", [
    "--silent",
    "--show-error",
    "--http2",
    "--cacert",
    CA_FILE,
    "--max-time",
    "20",
    "--write-out",
    "%{stderr}%{http_version} %{http_code}",
    `${base}/down?n=${8 * MIB}`,
  ]);
  equal(down.code, 0, down.err);
  equal(down.err, "2 200");
  equal(sha256(down.out), sha256OfPattern(8 * MIB));

  const file = await Deno.makeTempFile();
  try {
    const f = await Deno.open(file, { write: true });
    for (const c of patternChunks(8 * MIB)) await f.write(c);
    f.close();
    const up = await run("curl", [
      "--silent",
      "--show-error",
      "--http2",
      "--cacert",
      CA_FILE,
      "--max-time",
      "20",
      "--data-binary",
      `@${file}`,
      `${base}/sha256`,
    ]);
    equal(up.code, 0, up.err);
    equal(dec.decode(up.out), sha256OfPattern(8 * MIB) + "\n");
  } finally {
    await Deno.remove(file);
  }
  const nf = await run("curl", [
    "--silent",
    "--http2",
    "--cacert",
    CA_FILE,
    "--output",
    "/dev/null",
    "--write-out",
    "%{http_version} %{http_code}",
    `${base}/nothing`,
  ]);
  equal(dec.decode(nf.out), "2 404");
});

Deno.test("InboundServer.listen({ http }) (node:tls, TCP_NODELAY): dray client → server, 16 MiB each way, sha256-verified", async () => {
  const id = crypto.randomUUID();
  await using target = startTarget();
  const server = await InboundServer.listen({
    tag: "vless-h2",
    port: 0,
    tls: { cert: CERT, key: KEY },
    handler: new VlessInbound({ clients: [{ id: uuidBytes(id) }] }),
    dispatcher: dispatcherFor(new FreedomOutbound(), Logger.silent()),
    policy: DEFAULT_POLICY,
    logger: Logger.silent(),
    http: { host: ["dray.test"], path: "/v" },
  });
  const client = new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port: server.port, users: [{ id: uuidBytes(id) }] }],
    transport: new V2rayHttpTransport({
      tls: { serverName: "localhost", caCerts: [CA_PEM] },
      host: ["dray.test"],
      path: "/v",
    }),
  });
  const dest = { network: "tcp" as const, host: "127.0.0.1", port: target.tcpPort };
  try {
    const a = await client.open(dest);
    const b = await client.open(dest);
    try {
      const down = (async () => {
        const w = a.writable.getWriter();
        await w.write(enc.encode(`download ${16 * MIB}\n`));
        const h = createHash("sha256");
        let n = 0;
        for await (const c of a.readable) {
          h.update(c);
          n += c.byteLength;
          if (n >= 16 * MIB) break;
        }
        equal(n, 16 * MIB);
        equal(h.digest("hex"), sha256OfPattern(16 * MIB));
      })();
      const up = (async () => {
        const w = b.writable.getWriter();
        const reader = b.readable.getReader();
        await w.write(enc.encode(`upload ${16 * MIB}\n`));
        for (const c of patternChunks(16 * MIB)) await w.write(c);
        let text = "";
        for (let i = 0; i < 100 && text.length < 65; i++) {
          const { done, value } = await reader.read();
          if (done) break;
          text += dec.decode(value);
        }
        equal(text, sha256OfPattern(16 * MIB) + "\n");
      })();
      await Promise.all([down, up]);
    } finally {
      a.close();
      b.close();
    }
  } finally {
    await client.close();
    await server.close();
  }
  equal(server.active, 0, "every stream ended with the close");
});
