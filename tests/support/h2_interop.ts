/**
 * Helpers for the HTTP/2 interop tests: a TLS dial with ALPN h2, deterministic payloads, and
 * hashing of streamed bodies.
 */
import { createHash } from "node:crypto";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { H2Connection, type H2ConnectionOptions } from "../../lib/h2/connection.ts";

const certDir = new URL("./certs/", import.meta.url);
export const CA = Deno.readTextFileSync(new URL("ca.pem", certDir));
export const CERT = Deno.readTextFileSync(new URL("server.pem", certDir));
export const KEY = Deno.readTextFileSync(new URL("server.key", certDir));
export const CERT_PATH = new URL("server.pem", certDir).pathname;
export const KEY_PATH = new URL("server.key", certDir).pathname;

/** Dials 127.0.0.1:port over TLS, insists on ALPN h2, and opens an H2Connection on it. */
export async function dialH2(
  port: number,
  options: H2ConnectionOptions = {},
): Promise<H2Connection> {
  // Deno.connectTls leaves Nagle's algorithm on; with a peer that returns flow-control credit
  // only after a whole window arrives, the last small segment then waits for a delayed ACK
  // (~40 ms per window). dray's transport sets TCP_NODELAY, and so does this dial.
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, {
    hostname: "127.0.0.1",
    caCerts: [CA],
    alpnProtocols: ["h2"],
  });
  try {
    const { alpnProtocol } = await conn.handshake();
    if (alpnProtocol !== "h2") throw new Error(`ALPN negotiated ${alpnProtocol}, not h2`);
  } catch (err) {
    conn.close();
    throw err;
  }
  return await H2Connection.connect(new ConnDuplex(conn), { readIdleTimeout: 0, ...options });
}

const BLOCK = (() => {
  // A fixed pseudo-random 1 MiB block (xorshift32), so payloads are not compressible patterns.
  const b = new Uint8Array(1 << 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
})();

/** `size` bytes of a deterministic stream identified by `seed`, in chunks of up to 256 KiB. */
export function* payload(size: number, seed: number, chunk = 256 * 1024): Generator<Uint8Array> {
  for (let off = 0; off < size; off += chunk) {
    const n = Math.min(chunk, size - off);
    const out = new Uint8Array(n);
    const start = (off + seed * 7919) % BLOCK.length;
    const first = Math.min(n, BLOCK.length - start);
    out.set(BLOCK.subarray(start, start + first));
    if (first < n) out.set(BLOCK.subarray(0, n - first), first);
    // Stamp the offset in so a reordered or repeated chunk changes the hash.
    if (n >= 4) new DataView(out.buffer).setUint32(0, off / chunk);
    yield out;
  }
}

export function sha256Of(size: number, seed: number): string {
  const h = createHash("sha256");
  for (const c of payload(size, seed)) h.update(c);
  return h.digest("hex");
}

/** Writes the payload into `writable` and closes it. */
export async function send(
  writable: WritableStream<Uint8Array>,
  size: number,
  seed: number,
): Promise<void> {
  const w = writable.getWriter();
  try {
    for (const c of payload(size, seed)) await w.write(c);
    await w.close();
  } finally {
    w.releaseLock();
  }
}

/** Reads `readable` to the end; returns byte count and sha256. */
export async function drain(
  readable: ReadableStream<Uint8Array>,
): Promise<{ bytes: number; sha256: string }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of readable) {
    h.update(c);
    bytes += c.byteLength;
  }
  return { bytes, sha256: h.digest("hex") };
}
