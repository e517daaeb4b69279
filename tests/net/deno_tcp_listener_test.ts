import assert from "node:assert/strict";
import { detectConnReset } from "../../lib/net/conn_reset.ts";
import { DenoTcpListener } from "../../lib/net/deno_tcp_listener.ts";
import { encodeProxyHeader } from "../../lib/net/proxy_protocol.ts";
import { readAll } from "../support/fake_outbound.ts";
import { within } from "../support/client_app.ts";

const DEADLINE_MS = 30_000;
const enc = new TextEncoder();

Deno.test("DenoTcpListener.accept() gives a duplex with half-close both ways and a reset() that sends a RST", async () => {
  await detectConnReset();
  const listener = await DenoTcpListener.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const a = await within(listener.accept(), DEADLINE_MS, "accept");
    assert.equal(a.remoteAddr.port, (conn.localAddr as Deno.NetAddr).port);
    assert.equal(a.localAddr.port, listener.addr.port);
    // The client's FIN ends our readable; we still write after it.
    await conn.write(enc.encode("ping"));
    await conn.closeWrite();
    assert.equal(
      new TextDecoder().decode(await within(readAll(a.duplex.readable), DEADLINE_MS, "read")),
      "ping",
    );
    const writer = a.duplex.writable.getWriter();
    await writer.write(enc.encode("pong"));
    a.duplex.reset!();
    writer.abort().catch(() => {});
    const buf = new Uint8Array(16);
    assert.equal(await conn.read(buf), 4);
    await assert.rejects(conn.read(buf), Deno.errors.ConnectionReset);
    conn.close();
  } finally {
    listener.close();
  }
});

Deno.test("DenoTcpListener with acceptProxyProtocol takes the source from a header split across writes", async () => {
  const listener = await DenoTcpListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    acceptProxyProtocol: true,
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    conn.setNoDelay(true);
    const header = encodeProxyHeader({
      version: 2,
      source: { host: "2001:db8::7", port: 41000 },
      destination: { host: "::1", port: listener.addr.port },
    });
    const accepting = listener.accept();
    await conn.write(header.subarray(0, 9));
    // The rest of the header and the first payload bytes in one write.
    await conn.write(new Uint8Array([...header.subarray(9), ...enc.encode("hello")]));
    await conn.write(enc.encode(" world"));
    await conn.closeWrite();
    const a = await within(accepting, DEADLINE_MS, "accept");
    assert.deepEqual(a.remoteAddr, { transport: "tcp", hostname: "2001:db8::7", port: 41000 });
    const got = new TextDecoder().decode(
      await within(readAll(a.duplex.readable), DEADLINE_MS, "read"),
    );
    assert.equal(got, "hello world");
    a.duplex.close();
    conn.close();
  } finally {
    listener.close();
  }
});

Deno.test("DenoTcpListener with acceptProxyProtocol closes a connection with a bad header and reports its offset", async () => {
  const reported = Promise.withResolvers<[Error, Deno.NetAddr | undefined]>();
  const listener = await DenoTcpListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    acceptProxyProtocol: true,
    onError: (err, remote) => reported.resolve([err, remote]),
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(enc.encode("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nGET /"));
    const [err, remote] = await within(reported.promise, DEADLINE_MS, "onError");
    assert.ok(err instanceof Deno.errors.InvalidData);
    assert.match((err.cause as Error).message, /source port "99999" at byte 27/);
    assert.equal(remote?.hostname, "127.0.0.1");
    // Closed without a byte back.
    assert.equal((await within(readAll(conn.readable), DEADLINE_MS, "EOF")).length, 0);
  } finally {
    listener.close();
  }
});

Deno.test("DenoTcpListener with acceptProxyProtocol drops a client silent past proxyHeaderTimeout, serving the next", async () => {
  const reported = Promise.withResolvers<Error>();
  const listener = await DenoTcpListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    acceptProxyProtocol: true,
    proxyHeaderTimeout: 100,
    onError: (err) => reported.resolve(err),
  });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const talker = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await talker.write(encodeProxyHeader({ version: 1 }));
    const a = await within(listener.accept(), DEADLINE_MS, "accept");
    a.duplex.close();
    talker.close();
    const err = await within(reported.promise, DEADLINE_MS, "onError");
    assert.ok(err instanceof Deno.errors.InvalidData);
    assert.ok(err.cause instanceof Deno.errors.TimedOut, String(err.cause));
    assert.equal((await within(readAll(silent.readable), DEADLINE_MS, "EOF")).length, 0);
  } finally {
    listener.close();
  }
});

Deno.test("DenoTcpListener.close() rejects a pending accept() and closes connections still sending a header", async () => {
  for (const acceptProxyProtocol of [false, true]) {
    const listener = await DenoTcpListener.listen({
      hostname: "127.0.0.1",
      port: 0,
      acceptProxyProtocol,
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const accepting = acceptProxyProtocol ? listener.accept() : undefined;
    await conn.write(enc.encode("PROXY TCP4"));
    const rejected = acceptProxyProtocol
      ? assert.rejects(accepting!, Deno.errors.BadResource)
      : undefined;
    listener.close();
    await rejected;
    await assert.rejects(listener.accept(), Deno.errors.BadResource);
    // Never accepted (the kernel's backlog) or closed mid-header: either way no bytes back.
    assert.equal((await within(readAll(conn.readable), DEADLINE_MS, "EOF")).length, 0);
  }
});

Deno.test("DenoTcpListener.listen() throws AddrInUse for a taken port", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await assert.rejects(
    DenoTcpListener.listen({ hostname: "127.0.0.1", port: taken.addr.port }),
    Deno.errors.AddrInUse,
  );
});
