/**
 * The WebSocket transport against the real v2ray 4.34, both ways, and dray against itself with
 * early data: dray's client (VlessOutbound over WsTransport) → v2ray's ws server; v2ray's client
 * (SOCKS5 → vless over ws) → dray's server (InboundServer over WsServer, VlessInbound); plain
 * ws and ws+TLS. Every transfer is sha256-verified.
 */
import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { DEFAULT_POLICY } from "../../lib/dispatch/policy.ts";
import { dispatcherFor } from "../support/fake_outbound.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { Logger } from "../../lib/log.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import { WsTransport, type WsTransportOptions } from "../../lib/transport/ws.ts";
import { socksConnect } from "../support/socks_client.ts";
import { patternChunks, sha256OfPattern, startTarget } from "../support/target.ts";
import { CA_PEM, uuidBytes, V2rayServer } from "../support/v2ray.ts";
import { V2rayClient } from "../support/v2ray_client.ts";

const enc = new TextEncoder();
const MIB = 1024 * 1024;
const CERTS = new URL("../support/certs/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("server.pem", CERTS));
const KEY = Deno.readTextFileSync(new URL("server.key", CERTS));
const WS_PATH = "/ws";

type Kind = "ws" | "wss";

function wsTransport(kind: Kind, extra: WsTransportOptions = {}): WsTransport {
  return new WsTransport({
    path: WS_PATH,
    headers: { Host: "cdn.dray.test" },
    ...(kind === "wss" ? { tls: { serverName: "localhost", caCerts: [CA_PEM] } } : {}),
    ...extra,
  });
}

function drayClient(port: number, id: string, transport: WsTransport): VlessOutbound {
  return new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port, users: [{ id: uuidBytes(id) }] }],
    transport,
    sleep: () => Promise.resolve(),
  });
}

function startDray(kind: Kind, id: string): Promise<InboundServer> {
  return InboundServer.listen({
    tag: `vless-${kind}`,
    port: 0,
    handler: new VlessInbound({ clients: [{ id: uuidBytes(id) }] }),
    ws: { path: WS_PATH },
    dispatcher: dispatcherFor(new FreedomOutbound()),
    policy: DEFAULT_POLICY,
    logger: Logger.silent(),
    ...(kind === "wss" ? { tls: { cert: CERT, key: KEY, alpnProtocols: ["http/1.1"] } } : {}),
  });
}

async function readHashed(reader: ReadableStreamDefaultReader<Uint8Array>, n: number) {
  const h = createHash("sha256");
  let have = 0;
  while (have < n) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`EOF after ${have} of ${n} bytes`);
    h.update(value);
    have += value.byteLength;
  }
  equal(have, n);
  return h.digest("hex");
}

interface Ends {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

function endsOf(conn: Duplex): Ends {
  return { reader: conn.readable.getReader(), writer: conn.writable.getWriter() };
}

async function download({ reader, writer }: Ends, n: number, lateMs = 0): Promise<void> {
  await writer.write(enc.encode(`download ${n}\n`));
  if (lateMs > 0) await new Promise((r) => setTimeout(r, lateMs));
  equal(await readHashed(reader, n), sha256OfPattern(n));
  // The target closes after the last byte: the EOF comes through.
  equal((await reader.read()).done, true);
}

async function upload({ reader, writer: w }: Ends, n: number): Promise<void> {
  await w.write(enc.encode(`upload ${n}\n`));
  for (const chunk of patternChunks(n)) await w.write(chunk);
  let text = "";
  while (text.length < 65) {
    const r = await reader.read();
    if (r.done) break;
    text += new TextDecoder().decode(r.value);
  }
  equal(text, sha256OfPattern(n) + "\n");
}

async function echo(conn: Duplex, payload: Uint8Array): Promise<void> {
  const reader = conn.readable.getReader();
  const back = readHashed(reader, payload.byteLength);
  const w = conn.writable.getWriter();
  const first = new Uint8Array(5 + payload.byteLength);
  first.set(enc.encode("echo\n"));
  first.set(payload, 5);
  await w.write(first);
  equal(await back, createHash("sha256").update(payload).digest("hex"));
  reader.releaseLock();
  w.releaseLock();
}

/** The whole suite for one client → server pairing. */
async function exercise(outbound: VlessOutbound, target: ReturnType<typeof startTarget>) {
  const dest = { network: "tcp" as const, host: "127.0.0.1", port: target.tcpPort };
  const a = await outbound.open(dest);
  const b = await outbound.open(dest);
  try {
    await Promise.all([download(endsOf(a), 64 * MIB), upload(endsOf(b), 64 * MIB)]);
  } finally {
    a.close();
    b.close();
  }
  const conns: Duplex[] = [];
  try {
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const conn = await outbound.open(dest);
      conns.push(conn);
      await echo(conn, new Uint8Array(1000 + i * 37).map((_, j) => (i * 7 + j) & 0xff));
    }));
  } finally {
    for (const c of conns) c.close();
  }
  const udp = await outbound.open({ network: "udp", host: "127.0.0.1", port: target.udpPort });
  try {
    const w = udp.writable.getWriter();
    const reader = udp.readable.getReader();
    for (const size of [1, 512, 1400, 2046]) {
      const d = new Uint8Array(size).map((_, j) => (size + j) & 0xff);
      await w.write(d);
      assertEquals((await reader.read()).value, d, `datagram of ${size} bytes`);
    }
  } finally {
    udp.close();
  }
}

for (const kind of ["ws", "wss"] as const) {
  Deno.test(`interop ${kind}: dray client → v2ray server: 64 MiB each way, 200 concurrent, UDP, EOF`, async () => {
    const id = crypto.randomUUID();
    const target = startTarget();
    const v2ray = await V2rayServer.start({
      clients: [id],
      network: "ws",
      security: kind === "wss" ? "tls" : "none",
      wsPath: WS_PATH,
    });
    const outbound = drayClient(v2ray.port, id, wsTransport(kind));
    try {
      await exercise(outbound, target);
      // Another path: v2ray answers 404, and the error says so.
      const wrong = drayClient(v2ray.port, id, wsTransport(kind, { path: "/nope" }));
      await rejects(
        wrong.open({ network: "tcp", host: "127.0.0.1", port: target.tcpPort }),
        /404/,
      );
      await wrong.close();
    } finally {
      await outbound.close();
      await v2ray.stop();
      await target.close();
    }
  });

  Deno.test(`interop ${kind}: v2ray client → dray server: 64 MiB each way, downloads ending at once keep their end`, async () => {
    const id = crypto.randomUUID();
    const target = startTarget();
    const server = await startDray(kind, id);
    const client = await V2rayClient.start({
      serverPort: server.port,
      id,
      network: "ws",
      security: kind === "wss" ? "tls" : "none",
      wsPath: WS_PATH,
    });
    const viaSocks = async (fn: (d: Ends) => Promise<void>) => {
      const s = await socksConnect(client.socksPort, 1, "127.0.0.1", target.tcpPort);
      try {
        equal(s.carry.buf.byteLength, 0);
        await fn(s);
      } finally {
        s.duplex.close();
      }
    };
    try {
      await Promise.all([
        viaSocks((d) => download(d, 64 * MIB)),
        viaSocks((d) => upload(d, 64 * MIB)),
      ]);
      // The target closes right after the last byte; the reader starts late, so v2ray's client
      // still holds bytes when our Close would come if we sent it at once (4.34 then drops them).
      await Promise.all(
        Array.from({ length: 12 }, () => viaSocks((d) => download(d, 2 * MIB, 400))),
      );
    } finally {
      await client.stop();
      await server.close();
      await target.close();
    }
  });
}

Deno.test("interop dray ↔ dray over wss with early data: 64 MiB each way, 200 concurrent, UDP", async () => {
  const id = crypto.randomUUID();
  const target = startTarget();
  const server = await startDray("wss", id);
  const outbound = drayClient(
    server.port,
    id,
    wsTransport("wss", { earlyData: { maxBytes: 2048, headerName: "Sec-WebSocket-Protocol" } }),
  );
  try {
    await exercise(outbound, target);
    ok(true);
  } finally {
    await outbound.close();
    await server.close();
    await target.close();
  }
});
