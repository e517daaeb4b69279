import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import nodeTls from "node:tls";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { connectTls, TlsTransport } from "../../lib/transport/tls.ts";

const certs = new URL("../support/certs/", import.meta.url);
const CA = Deno.readTextFileSync(new URL("ca.pem", certs));
const CERT = Deno.readTextFileSync(new URL("server.pem", certs));
const KEY = Deno.readTextFileSync(new URL("server.key", certs));
/** A leaf the test CA signed for other names: trusting it does not trust server.pem. */
const OTHER = Deno.readTextFileSync(new URL("other.pem", certs));
const CLIENT_CERT = Deno.readTextFileSync(new URL("client.pem", certs));
const CLIENT_KEY = Deno.readTextFileSync(new URL("client.key", certs));

/** A TLS server (test leaf certificate) that echoes each connection until EOF. */
function tlsEchoServer(alpnProtocols?: string[]) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: CERT,
    key: KEY,
    alpnProtocols,
  });
  const done = (async () => {
    for await (const conn of listener) {
      const d = new ConnDuplex(conn);
      // Each connection runs to completion or fails; a failed handshake is the test's point.
      await d.readable.pipeTo(d.writable).catch(() => {}).finally(() => d.close());
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await done;
    },
  };
}

async function roundTrip(
  d: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> },
) {
  const w = d.writable.getWriter();
  await w.write(new TextEncoder().encode("hello"));
  await w.close();
  let text = "";
  for await (const c of d.readable) text += new TextDecoder().decode(c);
  return text;
}

/** Every check runs on both TLS stacks: Deno's, and node:tls (chosen by disableSystemRoot). */
for (const stack of ["deno", "node"] as const) {
  const extra = stack === "node" ? { disableSystemRoot: true } : {};
  const label = stack === "node" ? " (node:tls)" : "";

  Deno.test(`TlsTransport.open() dials the address and verifies the serverName (SNI differs)${label}`, async () => {
    await using server = tlsEchoServer();
    const t = new TlsTransport({ serverName: "www.example.com", caCerts: [CA], ...extra });
    const d = await t.open({ address: "127.0.0.1", port: server.port });
    try {
      assertEquals(await roundTrip(d), "hello");
    } finally {
      d.close();
    }
  });

  Deno.test(`TlsTransport.open() verifies an IP address when there is no serverName${label}`, async () => {
    await using server = tlsEchoServer();
    const d = await new TlsTransport({ caCerts: [CA], ...extra }).open({
      address: "127.0.0.1",
      port: server.port,
    });
    try {
      assertEquals(await roundTrip(d), "hello");
    } finally {
      d.close();
    }
  });

  Deno.test(`TlsTransport.open() fails clearly on an untrusted certificate${label}`, async () => {
    await using server = tlsEchoServer();
    // On node:tls, the CA trusted is a leaf that did not sign the server's certificate.
    const tls = stack === "node" ? { ...extra, caCerts: [OTHER] } : {};
    await rejects(
      new TlsTransport({ serverName: "localhost", ...tls }).open({
        address: "127.0.0.1",
        port: server.port,
      }),
      (err: Error) =>
        err.message.startsWith(`TLS handshake with 127.0.0.1:${server.port} failed: `) &&
        /UnknownIssuer|self-signed|unable to (get|verify)/i.test(err.message),
    );
  });

  Deno.test(`TlsTransport.open() fails clearly when the certificate does not name the server${label}`, async () => {
    await using server = tlsEchoServer();
    await rejects(
      new TlsTransport({ serverName: "wrong.invalid", caCerts: [CA], ...extra }).open({
        address: "127.0.0.1",
        port: server.port,
      }),
      (err: Error) =>
        err.message.startsWith(`TLS handshake with 127.0.0.1:${server.port} failed: `) &&
        /NotValidForName|not valid for|does not match/i.test(err.message),
    );
  });

  Deno.test(`TlsTransport.open() with allowInsecure skips the name check${label}`, async () => {
    await using server = tlsEchoServer();
    const t = new TlsTransport({
      serverName: "wrong.invalid",
      caCerts: [CA],
      ...extra,
      allowInsecure: true,
    });
    const d = await t.open({ address: "127.0.0.1", port: server.port });
    try {
      assertEquals(await roundTrip(d), "hello");
    } finally {
      d.close();
    }
  });

  Deno.test(`connectTls() requires the wanted ALPN protocol${label}`, async () => {
    await using h1 = tlsEchoServer(["http/1.1"]);
    await rejects(
      connectTls({ address: "127.0.0.1", port: h1.port }, {
        tls: { serverName: "localhost", caCerts: [CA], ...extra, alpn: ["h2", "http/1.1"] },
        requireAlpn: "h2",
      }),
      new RegExp(
        `^Error: TLS with 127.0.0.1:${h1.port}: server negotiated ALPN "http/1.1", want "h2"$`,
      ),
    );
    await using none = tlsEchoServer();
    await rejects(
      connectTls({ address: "127.0.0.1", port: none.port }, {
        tls: { serverName: "localhost", caCerts: [CA], ...extra, alpn: ["h2"] },
        requireAlpn: "h2",
      }),
      /server negotiated no ALPN protocol, want "h2"/,
    );
    await using h2 = tlsEchoServer(["h2"]);
    const { duplex, alpn } = await connectTls({ address: "127.0.0.1", port: h2.port }, {
      tls: { serverName: "localhost", caCerts: [CA], ...extra, alpn: ["h2"] },
      requireAlpn: "h2",
    });
    duplex.close();
    assertEquals(alpn, "h2");
  });
}

Deno.test("TlsTransport.open() fails clearly against a plain TCP server", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    // A non-TLS server answers the ClientHello with text and hangs up.
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
    conn.close();
  })();
  await rejects(
    new TlsTransport({ serverName: "localhost", caCerts: [CA] }).open({
      address: "127.0.0.1",
      port: listener.addr.port,
    }),
    (err: Error) =>
      err.message.startsWith(`TLS handshake with 127.0.0.1:${listener.addr.port} failed: `),
  );
  await served;
});

/** A node:tls server that demands a client certificate signed by the test CA. */
async function mtlsServer() {
  const server = nodeTls.createServer({
    cert: CERT,
    key: KEY,
    ca: [CA],
    requestCert: true,
    rejectUnauthorized: true,
  }, (socket) => {
    const peer = socket.getPeerCertificate();
    socket.end(`hello ${peer.subject?.CN}`);
  });
  const rejected: string[] = [];
  server.on("tlsClientError", (err: Error) => rejected.push(err.message));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    rejected,
    async [Symbol.asyncDispose]() {
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readAll(d: { readable: ReadableStream<Uint8Array> }): Promise<string> {
  let text = "";
  for await (const c of d.readable) text += new TextDecoder().decode(c);
  return text;
}

Deno.test("TlsTransport.open() presents the client certificate a server requires", async () => {
  await using server = await mtlsServer();
  const t = new TlsTransport({
    serverName: "localhost",
    caCerts: [CA],
    clientCertificate: { cert: CLIENT_CERT, key: CLIENT_KEY },
  });
  const d = await t.open({ address: "127.0.0.1", port: server.port });
  try {
    assertEquals(await readAll(d), "hello dray test client");
  } finally {
    d.close();
  }
});

Deno.test("TlsTransport.open() without a client certificate is refused by a server requiring one", async () => {
  await using server = await mtlsServer();
  const d = await new TlsTransport({ serverName: "localhost", caCerts: [CA] })
    .open({ address: "127.0.0.1", port: server.port })
    // TLS 1.3: the client may finish its handshake before the server's alert arrives.
    .catch((err: Error) => err);
  if (d instanceof Error) {
    assertEquals(d.message.startsWith(`TLS handshake with 127.0.0.1:${server.port}`), true);
  } else {
    await rejects(readAll(d));
    d.close();
  }
  assertEquals(server.rejected.length, 1, "the server refused the handshake");
});

/**
 * Runs `connectTls` in a child whose built-in roots include the test CA (DENO_CERT), with `OTHER`
 * (a leaf that signed nothing) as the only configured CA: succeeds only if the roots count.
 */
async function connectsWithTestCaAsRoot(tls: Record<string, unknown>): Promise<string> {
  await using server = tlsEchoServer();
  const code = `
    import { connectTls } from ${
    JSON.stringify(new URL("../../lib/transport/tls.ts", import.meta.url).href)
  };
    const other = Deno.readTextFileSync(new URL("other.pem", ${JSON.stringify(certs.href)}));
    try {
      const s = await connectTls({ address: "127.0.0.1", port: ${server.port} },
        { tls: { serverName: "localhost", caCerts: [other], ...${JSON.stringify(tls)} } });
      s.duplex.close();
      console.log("connected");
    } catch (err) { console.log(err.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { DENO_CERT: new URL("ca.pem", certs).pathname },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim() + new TextDecoder().decode(out.stderr).trim();
}

Deno.test("connectTls() with disableSystemRoot trusts only caCerts; without, the roots too", async () => {
  assertEquals(await connectsWithTestCaAsRoot({}), "connected");
  const only = await connectsWithTestCaAsRoot({ disableSystemRoot: true });
  assertEquals(only.startsWith("TLS handshake with 127.0.0.1:"), true, only);
});
