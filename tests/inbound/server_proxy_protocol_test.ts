/**
 * `acceptProxyProtocol` end to end through the app: a load balancer in front of dray (here a
 * forwarder that writes a PROXY header, v1 or v2, before the client's bytes) on vless over ws,
 * ws+TLS and tcp+TLS. The header's source is the source of the access line and of routing
 * `source` rules; a connection without a header is closed unserved.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AccessRecord, formatAccess, Logger } from "../../lib/log.ts";
import type { HostPort } from "../../lib/net/destination.ts";
import { encodeProxyHeader } from "../../lib/net/proxy_protocol.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import { TlsTransport } from "../../lib/transport/tls.ts";
import type { Transport } from "../../lib/transport/transport.ts";
import { WsTransport } from "../../lib/transport/ws.ts";
import { certPath, freePort, startAppFromJson, within } from "../support/client_app.ts";
import { readAll, readN } from "../support/fake_outbound.ts";
import { startTarget } from "../support/target.ts";
import { CA_PEM, uuidBytes } from "../support/v2ray.ts";

const ID = "8c1f1d4e-5b7a-4a38-9d2e-3f6a1c0b7e21";
const DEADLINE_MS = 30_000;
const BLOCKED = "203.0.113.9";
const enc = new TextEncoder();

/** Keeps the access lines. */
class AccessCapture extends Logger {
  readonly lines: string[] = [];
  constructor() {
    super({ level: "none", access: "none" });
  }
  override access(r: AccessRecord): void {
    this.lines.push(formatAccess(r));
  }
}

/** A load balancer: accepts, dials `upstream`, writes a PROXY header naming `source`, pipes. */
function startForwarder(upstream: number, header: (local: HostPort) => Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const client of listener) {
      conns.add(client);
      (async () => {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: upstream });
        conns.add(server);
        await server.write(header({ host: "127.0.0.1", port: upstream }));
        await Promise.all([
          client.readable.pipeTo(server.writable).catch(() => {}),
          server.readable.pipeTo(client.writable).catch(() => {}),
        ]);
      })().catch(() => {}).finally(() => {
        for (const c of conns) {
          try {
            c.close();
          } catch {
            // Closed by its pipe already.
          }
        }
      });
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await loop.catch(() => {});
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
    },
  };
}

function config(ports: { ws: number; wss: number; tls: number }) {
  const clients = [{ id: ID }];
  const tlsSettings = {
    certificates: [{ certificateFile: certPath("server.pem"), keyFile: certPath("server.key") }],
  };
  return {
    inbounds: [
      {
        tag: "ws",
        protocol: "vless",
        port: ports.ws,
        settings: { clients, decryption: "none" },
        streamSettings: { network: "ws", wsSettings: { path: "/ws", acceptProxyProtocol: true } },
      },
      {
        tag: "wss",
        protocol: "vless",
        port: ports.wss,
        settings: { clients, decryption: "none" },
        streamSettings: {
          network: "ws",
          security: "tls",
          tlsSettings,
          wsSettings: { path: "/ws", acceptProxyProtocol: true },
        },
      },
      {
        tag: "tls",
        protocol: "vless",
        port: ports.tls,
        settings: { clients, decryption: "none" },
        streamSettings: {
          network: "tcp",
          security: "tls",
          tlsSettings,
          tcpSettings: { acceptProxyProtocol: true },
        },
      },
    ],
    outbounds: [{ protocol: "freedom", tag: "direct" }, { protocol: "blackhole", tag: "block" }],
    routing: { rules: [{ type: "field", source: [BLOCKED], outboundTag: "block" }] },
  };
}

const tls = { serverName: "localhost", caCerts: [CA_PEM] };
const TRANSPORTS: [string, () => Transport][] = [
  ["ws", () => new WsTransport({ path: "/ws" })],
  ["wss", () => new WsTransport({ path: "/ws", tls })],
  ["tls", () => new TlsTransport(tls)],
];

Deno.test("InboundServer with acceptProxyProtocol: the header's source is routed on and logged (ws, ws+TLS, tcp+TLS)", async () => {
  const logger = new AccessCapture();
  await using target = startTarget();
  await using s = await startAppFromJson(
    () => config({ ws: freePort(), wss: freePort(), tls: freePort() }),
    { logger },
  );
  try {
    for (const [i, [tag, transport]] of TRANSPORTS.entries()) {
      for (const version of [1, 2] as const) {
        for (const source of [`198.51.100.${10 + i * 2 + version}`, BLOCKED]) {
          const forwarder = startForwarder(
            s.inbound(tag).port,
            (destination) =>
              encodeProxyHeader({
                version,
                source: { host: source, port: 4000 + version },
                destination,
              }),
          );
          const outbound = new VlessOutbound({
            tag: "client",
            servers: [{
              address: "127.0.0.1",
              port: forwarder.port,
              users: [{ id: uuidBytes(ID) }],
            }],
            transport: transport(),
            sleep: () => Promise.resolve(),
          });
          try {
            const conn = await outbound.open({
              network: "tcp",
              host: "127.0.0.1",
              port: target.tcpPort,
            });
            const payload = crypto.getRandomValues(new Uint8Array(4096));
            const w = conn.writable.getWriter();
            await w.write(new Uint8Array([...enc.encode("echo\n"), ...payload]));
            const what = `${tag}, PROXY v${version} from ${source}`;
            const reader = conn.readable.getReader();
            if (source === BLOCKED) {
              // The blackhole closes at once: EOF (or a reset) without a byte.
              const r = await within(
                reader.read().catch(() => ({ done: true })),
                DEADLINE_MS,
                what,
              );
              assert.equal(r.done, true, what);
            } else {
              const back = await within(readN(reader, payload.length), DEADLINE_MS, what);
              assert.equal(
                createHash("sha256").update(back).digest("hex"),
                createHash("sha256").update(payload).digest("hex"),
                what,
              );
            }
            conn.close();
          } finally {
            outbound.close();
            await forwarder.close();
          }
        }
      }
    }
  } finally {
    await s.app.close(0);
  }
  const { lines } = logger;
  for (const [i, [tag]] of TRANSPORTS.entries()) {
    for (const version of [1, 2]) {
      const port = 4000 + version;
      const ok = `198.51.100.${10 + i * 2 + version}:${port}`;
      assert.ok(
        lines.some((l) => l.startsWith(`${tag} ${ok} -> `) && l.includes("via direct")),
        `no line for ${tag} from ${ok} in\n${lines.join("\n")}`,
      );
      assert.ok(
        lines.some((l) => l.startsWith(`${tag} ${BLOCKED}:${port} -> `) && l.includes("via block")),
        `no blocked line for ${tag} v${version} in\n${lines.join("\n")}`,
      );
    }
  }
});

Deno.test("InboundServer with acceptProxyProtocol closes a client that sends no header, unserved", async () => {
  await using s = await startAppFromJson(() =>
    config({ ws: freePort(), wss: freePort(), tls: freePort() })
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.inbound("ws").port });
  await conn.write(enc.encode("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"));
  // No 404, no 400: the bytes were never HTTP to the server.
  assert.equal((await within(readAll(conn.readable), DEADLINE_MS, "EOF")).length, 0);
});
