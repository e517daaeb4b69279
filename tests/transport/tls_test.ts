import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { connectTls, TlsTransport } from "../../lib/transport/tls.ts";

const certs = new URL("../support/certs/", import.meta.url);
const CA = Deno.readTextFileSync(new URL("ca.pem", certs));
const CERT = Deno.readTextFileSync(new URL("server.pem", certs));
const KEY = Deno.readTextFileSync(new URL("server.key", certs));

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

Deno.test("TlsTransport.open() dials the address and verifies the serverName (SNI differs)", async () => {
  await using server = tlsEchoServer();
  const t = new TlsTransport({ serverName: "www.example.com", caCerts: [CA] });
  const d = await t.open({ address: "127.0.0.1", port: server.port });
  try {
    assertEquals(await roundTrip(d), "hello");
  } finally {
    d.close();
  }
});

Deno.test("TlsTransport.open() verifies an IP address when there is no serverName", async () => {
  await using server = tlsEchoServer();
  const d = await new TlsTransport({ caCerts: [CA] }).open({
    address: "127.0.0.1",
    port: server.port,
  });
  try {
    assertEquals(await roundTrip(d), "hello");
  } finally {
    d.close();
  }
});

Deno.test("TlsTransport.open() fails clearly on an untrusted certificate", async () => {
  await using server = tlsEchoServer();
  await rejects(
    new TlsTransport({ serverName: "localhost" }).open({ address: "127.0.0.1", port: server.port }),
    (err: Error) =>
      err.message ===
        `TLS handshake with 127.0.0.1:${server.port} failed: invalid peer certificate: UnknownIssuer`,
  );
});

Deno.test("TlsTransport.open() fails clearly when the certificate does not name the server", async () => {
  await using server = tlsEchoServer();
  await rejects(
    new TlsTransport({ serverName: "wrong.invalid", caCerts: [CA] }).open({
      address: "127.0.0.1",
      port: server.port,
    }),
    (err: Error) =>
      err.message.startsWith(`TLS handshake with 127.0.0.1:${server.port} failed: `) &&
      /NotValidForName|not valid for/i.test(err.message),
  );
});

Deno.test("TlsTransport.open() with allowInsecure skips the name check", async () => {
  await using server = tlsEchoServer();
  const t = new TlsTransport({ serverName: "wrong.invalid", caCerts: [CA], allowInsecure: true });
  const d = await t.open({ address: "127.0.0.1", port: server.port });
  try {
    assertEquals(await roundTrip(d), "hello");
  } finally {
    d.close();
  }
});

Deno.test("connectTls() requires the wanted ALPN protocol", async () => {
  await using h1 = tlsEchoServer(["http/1.1"]);
  await rejects(
    connectTls({ address: "127.0.0.1", port: h1.port }, {
      tls: { serverName: "localhost", caCerts: [CA], alpn: ["h2", "http/1.1"] },
      requireAlpn: "h2",
    }),
    new RegExp(
      `^Error: TLS with 127.0.0.1:${h1.port}: server negotiated ALPN "http/1.1", want "h2"$`,
    ),
  );
  await using none = tlsEchoServer();
  await rejects(
    connectTls({ address: "127.0.0.1", port: none.port }, {
      tls: { serverName: "localhost", caCerts: [CA], alpn: ["h2"] },
      requireAlpn: "h2",
    }),
    /server negotiated no ALPN protocol, want "h2"/,
  );
  await using h2 = tlsEchoServer(["h2"]);
  const { conn, alpn } = await connectTls({ address: "127.0.0.1", port: h2.port }, {
    tls: { serverName: "localhost", caCerts: [CA], alpn: ["h2"] },
    requireAlpn: "h2",
  });
  conn.close();
  assertEquals(alpn, "h2");
});

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
