import assert from "node:assert/strict";
import { encodeProxyHeader } from "../../lib/net/proxy_protocol.ts";
import { TcpListener } from "../../lib/net/tcp_listener.ts";
import { readAll } from "../support/fake_outbound.ts";
import { within } from "../support/client_app.ts";

const DEADLINE_MS = 30_000;

Deno.test("TcpListener with acceptProxyProtocol takes the source from a header split across writes", async () => {
  const listener = await TcpListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    acceptProxyProtocol: true,
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    conn.setNoDelay(true);
    const header = encodeProxyHeader({
      version: 1,
      source: { host: "192.0.2.44", port: 41000 },
      destination: { host: "127.0.0.1", port: listener.addr.port },
    });
    const accepting = listener.accept();
    await conn.write(header.subarray(0, 9));
    // The rest of the header and the first payload bytes in one write.
    await conn.write(new Uint8Array([...header.subarray(9), ...new TextEncoder().encode("hello")]));
    await conn.write(new TextEncoder().encode(" world"));
    await conn.closeWrite();
    const a = await within(accepting, DEADLINE_MS, "accept");
    assert.deepEqual(a.remoteAddr, { transport: "tcp", hostname: "192.0.2.44", port: 41000 });
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

Deno.test("TcpListener with acceptProxyProtocol closes a connection with a bad header and reports its offset", async () => {
  const reported = Promise.withResolvers<[Error, Deno.NetAddr | undefined]>();
  const listener = await TcpListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    acceptProxyProtocol: true,
    onError: (err, remote) => reported.resolve([err, remote]),
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(new TextEncoder().encode("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nGET /"));
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
