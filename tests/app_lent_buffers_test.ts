/**
 * Lent read buffers (lib/net/buffer_lender.ts) through the whole path, with the pool's debug guard
 * on: a dray client (SOCKS inbound → VLESS outbound) and a dray server (VLESS inbound → freedom) in
 * one process, and many connections at once echoing bytes of their own through our target —
 * every chunk is read into pooled memory and given back by a relay at least four times on the way
 * (client socket, h2 body / ws read slab / server socket, target socket, and back).
 *
 * Each connection sends a different pseudo-random stream in writes of random sizes, so a buffer
 * handed to two readers at once, or given back while a view of it was still being written on,
 * shows up as another connection's bytes or as poison (the guard fills memory as it comes back),
 * and the sha256 of what came back differs from what was sent. Some readers are slow (the h2
 * bodies then buffer in 64 KiB pieces), and some connections are closed half-way with unread
 * bytes (a TCP RST), so resets interleave with the transfers that must arrive intact.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { setBufferPoisoning } from "../lib/net/buffer_lender.ts";
import { certPath, freePort, startAppFromJson, within } from "./support/client_app.ts";
import { socksConnect } from "./support/socks_client.ts";
import { startTarget } from "./support/target.ts";

const KIB = 1024;
const CONNECTIONS = 40;
const enc = new TextEncoder();

type Network = "http" | "ws" | "tcp";

function streamSettings(network: Network, role: "server" | "client") {
  const tlsSettings = role === "server"
    ? {
      certificates: [{ certificateFile: certPath("server.pem"), keyFile: certPath("server.key") }],
    }
    : {
      serverName: "localhost",
      certificates: [{ certificateFile: certPath("ca.pem"), usage: "verify" }],
    };
  if (network === "tcp") return { network, security: "none" };
  return {
    network,
    security: "tls",
    tlsSettings,
    ...(network === "http" ? { httpSettings: { host: ["localhost"], path: "/lent" } } : {}),
    ...(network === "ws" ? { wsSettings: { path: "/lent" } } : {}),
  };
}

/** xorshift32 bytes from a seed of the connection's own. */
function bytesOf(seed: number, n: number, state: { x: number }): Uint8Array {
  const out = new Uint8Array(n);
  let x = state.x || seed || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  state.x = x;
  return out;
}

type Outcome = { kind: "ok" } | { kind: "reset" } | { kind: "bad"; why: string };

/** One echo connection: `size` bytes up in random writes, all of them read back and compared. */
async function echo(socksPort: number, targetPort: number, index: number): Promise<Outcome> {
  const seed = 0x9e3779b9 ^ (index * 2654435761);
  const size = 192 * KIB + ((index * 37 * KIB) % (448 * KIB));
  const slow = index % 4 === 1;
  // Closed once half of the echo is back, with more on its way: the kernel answers with a RST.
  const cut = index % 7 === 3;
  const conn = await socksConnect(socksPort, 1, "127.0.0.1", targetPort);
  try {
    const sent = createHash("sha256");
    const got = createHash("sha256");
    const writing = (async () => {
      await conn.writer.write(enc.encode("echo\n"));
      const data = { x: 0 };
      const sizes = { x: 0 };
      for (let off = 0; off < size;) {
        const n = Math.min(size - off, 1 + (bytesOf(seed ^ 0x5bd1e995, 2, sizes)[0] << 8));
        const chunk = bytesOf(seed, n, data);
        sent.update(chunk);
        await conn.writer.write(chunk);
        off += n;
      }
    })();
    writing.catch(() => {});
    let have = conn.carry.buf.byteLength;
    got.update(conn.carry.buf);
    for (let reads = 0; have < size && reads < 1_000_000; reads++) {
      const r = await conn.reader.read();
      if (r.done) break;
      got.update(r.value);
      have += r.value.byteLength;
      if (cut && have >= size / 2) {
        conn.duplex.close();
        return { kind: "reset" };
      }
      // A bounded pause per read, so that the proxies buffer behind this reader.
      if (slow) await new Promise((r) => setTimeout(r, 3));
    }
    await writing;
    if (have !== size) return { kind: "bad", why: `#${index}: ${have} of ${size} bytes came back` };
    if (got.digest("hex") !== sent.digest("hex")) {
      return { kind: "bad", why: `#${index}: the ${size} bytes that came back differ` };
    }
    return { kind: "ok" };
  } catch (err) {
    return { kind: "bad", why: `#${index}: ${(err as Error).message}` };
  } finally {
    conn.duplex.close();
  }
}

for (const network of ["http", "ws", "tcp"] as const) {
  Deno.test(`startApp() dray → dray over ${network}: ${CONNECTIONS} parallel echoes of bytes of their own, slow readers and resets, with poisoned buffers: every echo intact`, async () => {
    const was = setBufferPoisoning(true);
    try {
      const id = crypto.randomUUID();
      await using target = startTarget();
      await using server = await startAppFromJson(() => ({
        log: { loglevel: "none", access: "none" },
        inbounds: [{
          protocol: "vless",
          tag: "vless",
          port: freePort(),
          settings: { clients: [{ id }], decryption: "none" },
          streamSettings: streamSettings(network, "server"),
        }],
        outbounds: [{ protocol: "freedom" }],
      }));
      await using client = await startAppFromJson(() => ({
        log: { loglevel: "none", access: "none" },
        inbounds: [{ protocol: "socks", tag: "socks", port: freePort(), settings: { udp: false } }],
        outbounds: [{
          protocol: "vless",
          settings: {
            vnext: [{
              address: "127.0.0.1",
              port: server.inbound("vless").port,
              users: [{ id, encryption: "none" }],
            }],
          },
          streamSettings: streamSettings(network, "client"),
        }],
      }));
      const outcomes = await within(
        Promise.all(
          Array.from(
            { length: CONNECTIONS },
            (_, i) => echo(client.inbound("socks").port, target.tcpPort, i),
          ),
        ),
        120_000,
        `${CONNECTIONS} echoes over ${network}`,
      );
      const bad = outcomes.flatMap((o) => o.kind === "bad" ? [o.why] : []);
      assert.deepEqual(bad, []);
      assert.equal(
        outcomes.filter((o) => o.kind === "ok").length,
        CONNECTIONS - outcomes.filter((o) => o.kind === "reset").length,
      );
    } finally {
      setBufferPoisoning(was);
    }
  });
}
