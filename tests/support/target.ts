/**
 * A local target server for interop tests and benchmarks: what the VLESS server connects to.
 *
 * TCP protocol — the client sends one ASCII command line ending in "\n", then:
 *
 * - `download N` — the target sends N bytes of the deterministic pattern ({@link Pattern}), then
 *   closes. The client checks the bytes against `sha256OfPattern(N)`.
 * - `upload N` — the client sends N bytes; the target replies with the lowercase sha256 hex of those
 *   bytes and "\n", then closes. (A length, not EOF, ends the upload: v2ray's freedom outbound never
 *   passes a half-close on to the target.)
 * - `echo` — the target sends back every byte it receives until EOF, then closes.
 *
 * Anything else gets "ERR unknown command\n" and a close.
 *
 * UDP — every datagram received is sent back unchanged to its sender.
 */
import { createHash } from "node:crypto";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CHUNK = 64 * 1024;
/** Longest command line we accept before giving up on a connection. */
const MAX_LINE = 256;

/**
 * An endless pseudo-random byte stream (xorshift32 from a fixed seed): the same bytes for every
 * reader, cheap to generate and to check. Take bytes in multiples of 4 except at the very end.
 */
export class Pattern {
  #state = 0x9e3779b9;

  /** Fills `buf` with the next bytes of the stream. */
  fill(buf: Uint8Array): Uint8Array {
    const words = buf.byteLength >> 2;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let x = this.#state;
    for (let i = 0; i < words; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      view.setUint32(i * 4, x >>> 0);
    }
    const rest = buf.byteLength & 3;
    if (rest > 0) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      for (let i = 0; i < rest; i++) buf[words * 4 + i] = (x >>> (24 - 8 * i)) & 0xff;
    }
    this.#state = x;
    return buf;
  }
}

/** Yields the first `n` pattern bytes in chunks of `chunk` bytes (a multiple of 4). */
export function* patternChunks(n: number, chunk = CHUNK): Generator<Uint8Array> {
  const p = new Pattern();
  for (let off = 0; off < n; off += chunk) yield p.fill(new Uint8Array(Math.min(chunk, n - off)));
}

/** sha256 hex of the first `n` pattern bytes. */
export function sha256OfPattern(n: number): string {
  const h = createHash("sha256");
  const p = new Pattern();
  const buf = new Uint8Array(CHUNK);
  for (let off = 0; off < n; off += CHUNK) {
    const take = Math.min(CHUNK, n - off);
    h.update(p.fill(take === CHUNK ? buf : new Uint8Array(take)));
  }
  return h.digest("hex");
}

export interface TargetServer extends AsyncDisposable {
  readonly tcpPort: number;
  readonly udpPort: number;
  /** TCP connections accepted so far. */
  readonly accepted: number;
  /** Sizes of the UDP datagrams received so far, in order. */
  readonly udpReceived: readonly number[];
  close(): Promise<void>;
}

/**
 * Starts the TCP and UDP targets on 127.0.0.1 (or `hostname`: "0.0.0.0" for servers in a
 * network namespace, see netns.ts), ephemeral ports.
 */
export function startTarget(options: { hostname?: string } = {}): TargetServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const listener = Deno.listen({ hostname, port: 0 });
  const udp = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
  const conns = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  let accepted = 0;
  let closed = false;
  const udpReceived: number[] = [];

  const acceptLoop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      accepted++;
      (conn as Deno.TcpConn).setNoDelay(true);
      conns.add(conn);
      const h = serve(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        handlers.delete(h);
        try {
          conn.close();
        } catch {
          // Already closed by the handler.
        }
      });
      handlers.add(h);
    }
  })();

  const udpLoop = (async () => {
    for (;;) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await udp.receive(new Uint8Array(65536));
      } catch {
        return; // socket closed
      }
      udpReceived.push(got[0].byteLength);
      await udp.send(got[0], got[1]).catch(() => {});
    }
  })();

  const close = async () => {
    if (closed) return;
    closed = true;
    listener.close();
    udp.close();
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // Closed meanwhile.
      }
    }
    await acceptLoop;
    await udpLoop;
    await Promise.all([...handlers]);
  };

  return {
    tcpPort: (listener.addr as Deno.NetAddr).port,
    udpPort: (udp.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    udpReceived,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await conn.write(data.subarray(off));
}

/** Reads the command line; returns it and any bytes that came after it in the same reads. */
async function readLine(conn: Deno.Conn): Promise<{ line: string; rest: Uint8Array } | null> {
  const buf = new Uint8Array(CHUNK);
  let have = 0;
  for (;;) {
    const nl = buf.subarray(0, have).indexOf(10);
    if (nl >= 0) {
      return { line: decoder.decode(buf.subarray(0, nl)).trim(), rest: buf.slice(nl + 1, have) };
    }
    if (have >= MAX_LINE) return null;
    const n = await conn.read(buf.subarray(have));
    if (n === null) return null;
    have += n;
  }
}

async function serve(conn: Deno.Conn): Promise<void> {
  const got = await readLine(conn);
  if (!got) return;
  const [cmd, arg] = got.line.split(" ");
  const n = Number(arg);
  if (cmd === "download" && Number.isSafeInteger(n) && n >= 0) {
    const p = new Pattern();
    const buf = new Uint8Array(CHUNK);
    for (let off = 0; off < n; off += CHUNK) {
      const take = Math.min(CHUNK, n - off);
      await writeAll(conn, p.fill(take === CHUNK ? buf : new Uint8Array(take)));
    }
  } else if (cmd === "upload" && Number.isSafeInteger(n) && n >= 0) {
    const h = createHash("sha256");
    let have = Math.min(got.rest.byteLength, n);
    h.update(got.rest.subarray(0, have));
    const buf = new Uint8Array(CHUNK);
    while (have < n) {
      const r = await conn.read(buf.subarray(0, Math.min(CHUNK, n - have)));
      if (r === null) return;
      h.update(buf.subarray(0, r));
      have += r;
    }
    await writeAll(conn, encoder.encode(h.digest("hex") + "\n"));
  } else if (cmd === "echo") {
    if (got.rest.byteLength > 0) await writeAll(conn, got.rest);
    const buf = new Uint8Array(CHUNK);
    for (;;) {
      const r = await conn.read(buf);
      if (r === null) return;
      await writeAll(conn, buf.subarray(0, r));
    }
  } else {
    await writeAll(conn, encoder.encode("ERR unknown command\n"));
  }
}
