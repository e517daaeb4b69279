import assert from "node:assert/strict";
import { InboundServer } from "../../lib/inbound/server.ts";
import type { InboundHandler } from "../../lib/inbound/inbound.ts";
import { Logger } from "../../lib/log.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { WsTransport } from "../../lib/transport/ws.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import { dispatcherFor, FakeOutbound, readAll } from "../support/fake_outbound.ts";

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}

const policy = { handshake: 5_000, connIdle: 10_000, uplinkOnly: 1_000, downlinkOnly: 1_000 };

/** Echoes until the client's Close, then ends; records what it was given. */
function echoHandler(seen: { early?: boolean }): InboundHandler {
  return {
    async handle(conn: Duplex) {
      const reader = conn.readable.getReader();
      const writer = conn.writable.getWriter();
      let up = 0;
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (r.done) break;
        up += r.value!.byteLength;
        seen.early ??= true;
        await writer.write(r.value!.slice()).catch(() => {});
      }
      await writer.close().catch(() => {});
      return { destination: "tcp:echo:1", result: "ok", up, down: up };
    },
  };
}

/** Sends `n` bytes and ends after them; the server answers `reply` bytes and ends. */
function downloadHandler(reply: Uint8Array): InboundHandler {
  return {
    async handle(conn: Duplex) {
      const reader = conn.readable.getReader();
      await reader.read();
      const writer = conn.writable.getWriter();
      for (let off = 0; off < reply.byteLength; off += 10_000) {
        await writer.write(reply.slice(off, off + 10_000));
      }
      await writer.close();
      reader.releaseLock();
      return { destination: "tcp:dl:1", result: "ok", up: 0, down: reply.byteLength };
    },
  };
}

async function withServer(
  handler: InboundHandler,
  options: {
    path?: string;
    maxEarlyData?: number;
    earlyDataHeaderName?: string;
    closeHoldMs?: number;
  },
  body: (port: number) => Promise<void>,
) {
  const server = await InboundServer.listen({
    tag: "ws-in",
    port: 0,
    handler,
    ws: options,
    dispatcher: dispatcherFor(new FakeOutbound()),
    policy,
    logger: Logger.silent(),
  });
  try {
    await body(server.port);
  } finally {
    await server.close();
  }
}

Deno.test("WsTransport.open() echoes through WsServer with and without early data", async () => {
  const cases = [
    { client: {}, server: {} },
    { client: { earlyData: { maxBytes: 2048, headerName: "Sec-WebSocket-Protocol" } }, server: {} },
    {
      client: { earlyData: { maxBytes: 10, headerName: "X-Early" } },
      server: { maxEarlyData: 10, earlyDataHeaderName: "X-Early" },
    },
    { client: { earlyData: { maxBytes: 2048 } }, server: { maxEarlyData: 2048 } },
  ];
  for (const c of cases) {
    const seen: { early?: boolean } = {};
    await withServer(echoHandler(seen), { path: "/ray", ...c.server }, async (port) => {
      const t = new WsTransport({ path: "ray", ...c.client });
      const d = await t.open({ address: "127.0.0.1", port });
      const data = randomBytes(300_000);
      const writer = d.writable.getWriter();
      const reader = d.readable.getReader();
      const got: Uint8Array[] = [];
      let n = 0;
      const reading = (async () => {
        while (n < data.byteLength) {
          const r = await reader.read();
          if (r.done) break;
          got.push(r.value.slice());
          n += r.value.byteLength;
        }
      })();
      for (let off = 0; off < data.byteLength; off += 50_000) {
        await writer.write(data.slice(off, off + 50_000));
      }
      await reading;
      assert.equal(n, data.byteLength, JSON.stringify(c));
      const all = new Uint8Array(n);
      let o = 0;
      for (const g of got) {
        all.set(g, o);
        o += g.byteLength;
      }
      assert.deepEqual(all, data);
      d.close();
      reader.releaseLock();
    });
  }
});

Deno.test("WsTransport.open() rejects with the status when the path is wrong (404)", async () => {
  await withServer(echoHandler({}), { path: "/ray" }, async (port) => {
    const t = new WsTransport({ path: "/other" });
    await assert.rejects(t.open({ address: "127.0.0.1", port }), /\/other: .*HTTP 404/);
  });
});

Deno.test("WsConnection delivers every byte before the server's Close; the server holds its Close", async () => {
  const reply = randomBytes(1_000_000);
  await withServer(downloadHandler(reply), { path: "/", closeHoldMs: 300 }, async (port) => {
    const t = new WsTransport({});
    const d = await t.open({ address: "127.0.0.1", port });
    const w = d.writable.getWriter();
    await w.write(new Uint8Array([1]));
    // A slow reader: the Close arrives while bytes are still queued.
    const got = await readAll(d.readable);
    assert.equal(got.byteLength, reply.byteLength);
    assert.deepEqual(got, reply);
    d.close();
  });
});

/** A loopback port nothing listens on. */
function refusedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("WsTransport.open() with early data connects before it returns: a refused connection rejects it", async () => {
  const t = new WsTransport({ earlyData: { maxBytes: 2048 } });
  await assert.rejects(t.open({ address: "127.0.0.1", port: refusedPort() }), /refused/i);
});

Deno.test("VlessOutbound over ws with early data marks a refused server down and races on to the next", async () => {
  await withServer(echoHandler({}), { path: "/", maxEarlyData: 2048 }, async (port) => {
    const dead = refusedPort();
    const ob = new VlessOutbound({
      tag: "proxy",
      servers: [
        { address: "127.0.0.1", port: dead, users: [{ id: new Uint8Array(16) }] },
        { address: "127.0.0.1", port, users: [{ id: new Uint8Array(16) }] },
      ],
      transport: new WsTransport({ earlyData: { maxBytes: 2048 } }),
      logger: Logger.silent(),
    });
    try {
      const d = await ob.open({ network: "tcp", host: "example.com", port: 80 });
      assert.equal(ob.health.available(0), false);
      assert.equal(ob.health.available(1), true);
      d.close();
    } finally {
      await ob.close();
    }
  });
});
