import { dispatcherFor } from "../support/fake_outbound.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { InboundServer } from "../../lib/inbound/server.ts";
import type { InboundContext, InboundResult } from "../../lib/inbound/inbound.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { uuidBytes } from "../support/v2ray.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { type AccessRecord, Logger } from "../../lib/log.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { FakeOutbound } from "../support/fake_outbound.ts";
import { TEST_POLICY } from "../support/proxy_e2e.ts";
import { EchoServer } from "../support/echo_server.ts";
import { TlsTransport } from "../../lib/transport/tls.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";

const CERTS = new URL("../support/certs/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("server.pem", CERTS));
const KEY = Deno.readTextFileSync(new URL("server.key", CERTS));
const CA = Deno.readTextFileSync(new URL("ca.pem", CERTS));

function recordingLogger() {
  const logger = Logger.silent();
  const access: AccessRecord[] = [];
  logger.access = (r) => void access.push(r);
  return { logger, access };
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

/** For every byte read, two small writes: with Nagle on, the second waits for an ACK. */
const doubleReplier = {
  async handle(conn: Duplex, _ctx: InboundContext): Promise<InboundResult> {
    const w = conn.writable.getWriter();
    let up = 0;
    for await (const chunk of conn.readable) {
      for (let i = 0; i < chunk.byteLength; i++) {
        await w.write(new Uint8Array(10).fill(1));
        await w.write(new Uint8Array(10).fill(2));
      }
      up += chunk.byteLength;
    }
    await w.close();
    return { destination: "tcp:x:1", result: "ok", up, down: up * 20 };
  },
};

Deno.test("InboundServer.listen() with tls keeps Nagle off: 20 round trips < 400 ms", async () => {
  const { logger, access } = recordingLogger();
  const server = await InboundServer.listen({
    tag: "in-tls",
    port: 0,
    handler: doubleReplier,
    tls: { cert: CERT, key: KEY, alpnProtocols: ["http/1.1"] },
    dispatcher: dispatcherFor(new FakeOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  try {
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: server.port,
      caCerts: [CA],
      alpnProtocols: ["http/1.1"],
    });
    try {
      assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
      const started = performance.now();
      for (let i = 0; i < 20; i++) {
        await conn.write(new Uint8Array([i]));
        const reply = await readExactly(conn, 20);
        assert.equal(reply[0], 1);
        assert.equal(reply[19], 2);
      }
      const ms = performance.now() - started;
      assert.ok(ms < 400, `20 round trips took ${ms.toFixed(1)} ms (Nagle + delayed ACK?)`);
      await conn.closeWrite();
      assert.equal(await conn.read(new Uint8Array(1)), null);
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
  assert.equal(access.length, 1);
  assert.equal(access[0].inbound, "in-tls");
  assert.equal(access[0].up, 20);
  assert.match(access[0].source, /^127\.0\.0\.1:\d+$/);
});

Deno.test("InboundServer.listen() with tls carries VLESS to freedom, 8 MiB each way", async () => {
  const SIZE = 8 * 1024 * 1024;
  const id = crypto.randomUUID();
  const echo = new EchoServer();
  const server = await InboundServer.listen({
    tag: "vless-tls",
    port: 0,
    handler: new VlessInbound({ clients: [{ id: uuidBytes(id) }] }),
    tls: { cert: CERT, key: KEY },
    dispatcher: dispatcherFor(new FreedomOutbound(), Logger.silent()),
    policy: TEST_POLICY,
    logger: Logger.silent(),
  });
  const client = new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port: server.port, users: [{ id: uuidBytes(id) }] }],
    transport: new TlsTransport({ serverName: "localhost", caCerts: [CA] }),
    sleep: () => Promise.resolve(),
  });
  try {
    const duplex = await client.open(
      { network: "tcp", host: "127.0.0.1", port: echo.port },
      { signal: AbortSignal.timeout(30_000) },
    );
    try {
      const sent = createHash("sha256");
      const got = createHash("sha256");
      const reading = (async () => {
        let n = 0;
        for await (const c of duplex.readable) {
          got.update(c);
          n += c.byteLength;
        }
        return n;
      })();
      const w = duplex.writable.getWriter();
      for (let off = 0; off < SIZE; off += 64 * 1024) {
        const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
        sent.update(chunk);
        await w.write(chunk);
      }
      await w.close();
      assert.equal(await reading, SIZE);
      assert.equal(got.digest("hex"), sent.digest("hex"));
    } finally {
      duplex.close();
    }
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("InboundServer.listen() with tls rejects with AddrInUse for a taken port", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      InboundServer.listen({
        tag: "in",
        port: taken.addr.port,
        handler: doubleReplier,
        tls: { cert: CERT, key: KEY },
        dispatcher: dispatcherFor(new FakeOutbound(), Logger.silent()),
        policy: TEST_POLICY,
        logger: Logger.silent(),
      }),
      Deno.errors.AddrInUse,
    );
  } finally {
    taken.close();
  }
});
