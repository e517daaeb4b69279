import { dispatcherFor } from "../support/fake_outbound.ts";
import assert from "node:assert/strict";
import { TunnelInbound } from "../../lib/inbound/tunnel.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { Logger } from "../../lib/log.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { FakeOutbound, readAll, testContext } from "../support/fake_outbound.ts";
import { EchoServer } from "../support/echo_server.ts";
import { TEST_POLICY } from "../support/proxy_e2e.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("TunnelInbound sends every TCP connection to its fixed destination", async () => {
  const outbound = new FakeOutbound();
  const [client, server] = duplexPair();
  const handled = new TunnelInbound({ address: "10.1.2.3", port: 5201 }).handle(
    server,
    testContext(outbound),
  );
  const w = client.writable.getWriter();
  await w.write(enc.encode("raw bytes"));
  await w.close();
  const { dest, peer } = await outbound.next();
  assert.deepEqual(dest, { network: "tcp", host: "10.1.2.3", port: 5201 });
  assert.equal(dec.decode(await readAll(peer.readable)), "raw bytes");
  await peer.writable.close();
  const result = await handled;
  assert.deepEqual(result, {
    destination: "tcp:10.1.2.3:5201",
    result: "ok",
    up: 9,
    down: 0,
    outbound: "fake",
  });
  client.close();
  await outbound.close();
});

Deno.test("TunnelInbound closes the client when the outbound fails", async () => {
  const outbound = new FakeOutbound();
  outbound.fail = new Deno.errors.ConnectionRefused("nobody home");
  const [client, server] = duplexPair();
  const result = await new TunnelInbound({ address: "127.0.0.1", port: 9 }).handle(
    server,
    testContext(outbound),
  );
  assert.match(result.result, /nobody home/);
  assert.equal((await readAll(client.readable)).byteLength, 0);
  client.close();
});

Deno.test("TunnelInbound rejects an out-of-range port", () => {
  assert.throws(() => new TunnelInbound({ address: "a", port: 0 }), RangeError);
});

Deno.test("TunnelInbound end to end: TCP and UDP through freedom, one access line per flow", async () => {
  const echo = new EchoServer();
  const udpEcho = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const echoing = (async () => {
    for (let i = 0; i < 100; i++) {
      try {
        const [data, from] = await udpEcho.receive();
        await udpEcho.send(data, from);
      } catch {
        return;
      }
    }
  })();
  // Two tunnels, since the TCP and UDP echo servers listen on different ports.
  const records: string[] = [];
  const logger = Logger.silent();
  logger.access = (r) => void records.push(`${r.destination} ${r.result} ${r.up}/${r.down}`);
  const tcpTunnel = new InboundServer({
    tag: "tunnel-tcp",
    port: 0,
    handler: new TunnelInbound({ address: "127.0.0.1", port: echo.port }),
    dispatcher: dispatcherFor(new FreedomOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  const udpTunnel = new InboundServer({
    tag: "tunnel-udp",
    port: 0,
    datagramHandler: new TunnelInbound({
      address: "127.0.0.1",
      port: (udpEcho.addr as Deno.NetAddr).port,
    }),
    dispatcher: dispatcherFor(new FreedomOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const conn = new ConnDuplex(
      await Deno.connect({ hostname: "127.0.0.1", port: tcpTunnel.port }),
    );
    const w = conn.writable.getWriter();
    await w.write(enc.encode("over tcp"));
    await w.close();
    assert.equal(dec.decode(await readAll(conn.readable)), "over tcp");
    conn.close();
    for (let i = 0; i < 3; i++) {
      await app.send(enc.encode(`dgram ${i}`), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: udpTunnel.port,
      });
      const [back] = await app.receive();
      assert.equal(dec.decode(back), `dgram ${i}`);
    }
  } finally {
    app.close();
    await tcpTunnel.close();
    await udpTunnel.close();
    udpEcho.close();
    await echoing;
    await echo.close();
  }
  assert.ok(
    records.some((r) => r.startsWith("tcp:127.0.0.1:") && r.endsWith(" ok 8/8")),
    records.join("\n"),
  );
  assert.ok(
    records.some((r) => r.startsWith("udp:127.0.0.1:") && r.includes("21/21")),
    records.join("\n"),
  );
});
