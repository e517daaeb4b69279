/**
 * A scripted HTTP/2 server peer for tests: the test drives it frame by frame.
 *
 * It has its own minimal frame reader and writer (written from RFC 9113 §4.1, not using
 * lib/h2/frame.ts) so the client's codec is not tested against itself. Header blocks it sends are
 * HPACK "literal without indexing, new name", no Huffman (RFC 7541 §6.2.2) — also its own; header
 * blocks it receives are decoded with lib/h2/hpack.ts.
 */
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { HpackDecoder } from "../../lib/h2/hpack.ts";

export const T = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export interface PeerFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export function u32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export function readU32(b: Uint8Array, o = 0): number {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** RFC 7541 §5.1 integer with an n-bit prefix, first byte's high bits = `mask`. */
function hpackInt(value: number, prefix: number, mask: number): number[] {
  const max = (1 << prefix) - 1;
  if (value < max) return [mask | value];
  const out = [mask | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** A header block of literal fields without indexing, new names, raw strings. */
export function literalBlock(headers: Array<[string, string]>): Uint8Array {
  const enc = new TextEncoder();
  const parts: number[] = [];
  for (const [name, value] of headers) {
    const n = enc.encode(name);
    const v = enc.encode(value);
    parts.push(0x00, ...hpackInt(n.byteLength, 7, 0), ...n, ...hpackInt(v.byteLength, 7, 0), ...v);
  }
  return new Uint8Array(parts);
}

export class H2Peer {
  readonly duplex: Duplex;
  readonly decoder = new HpackDecoder();
  /** Client SETTINGS from the handshake, as id → value. */
  clientSettings = new Map<number, number>();
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(duplex: Duplex) {
    this.duplex = duplex;
    this.#reader = duplex.readable.getReader();
    this.#writer = duplex.writable.getWriter();
    this.#writer.closed.catch(() => {});
  }

  /** An in-memory pair: the client's end and a peer on the other. */
  static pair(highWaterMark?: number): { client: Duplex; peer: H2Peer } {
    const [client, server] = duplexPair(highWaterMark);
    return { client, peer: new H2Peer(server) };
  }

  async #fill(n: number, timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`peer: no data within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      while (this.#buf.byteLength < n) {
        if (this.#eof) return false;
        const r = await Promise.race([this.#reader.read(), timeout]);
        if (r.done) {
          this.#eof = true;
          return this.#buf.byteLength >= n;
        }
        this.#buf = concat([this.#buf, r.value]);
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async readPreface(timeoutMs = 5000): Promise<void> {
    if (!(await this.#fill(24, timeoutMs))) throw new Error("peer: EOF before preface");
    const got = new TextDecoder().decode(this.#take(24));
    if (got !== PREFACE) throw new Error(`peer: bad preface ${JSON.stringify(got)}`);
  }

  /** The next frame; null at EOF (or when the connection was reset). */
  async readFrame(timeoutMs = 5000): Promise<PeerFrame | null> {
    try {
      if (!(await this.#fill(9, timeoutMs))) return null;
    } catch (err) {
      if ((err as Error).message.startsWith("peer:")) throw err;
      return null;
    }
    const b = this.#buf;
    const length = (b[0] << 16) | (b[1] << 8) | b[2];
    const type = b[3];
    const flags = b[4];
    const streamId = readU32(b, 5) & 0x7fffffff;
    try {
      if (!(await this.#fill(9 + length, timeoutMs))) throw new Error("peer: EOF inside a frame");
    } catch (err) {
      if ((err as Error).message.startsWith("peer:")) throw err;
      return null;
    }
    this.#take(9);
    return { type, flags, streamId, payload: this.#take(length) };
  }

  /**
   * The next frame of `type`, skipping SETTINGS ACKs and WINDOW_UPDATEs (which the client sends
   * as it pleases) unless they are what is asked for. Throws on EOF or any other frame.
   */
  async expect(type: number, timeoutMs = 5000): Promise<PeerFrame> {
    for (let i = 0; i < 1000; i++) {
      const f = await this.readFrame(timeoutMs);
      if (!f) throw new Error(`peer: EOF while expecting frame type ${type}`);
      if (f.type === type) return f;
      if (f.type === T.WINDOW_UPDATE || (f.type === T.SETTINGS && f.flags & 1)) continue;
      throw new Error(`peer: expected frame type ${type}, got ${f.type} on stream ${f.streamId}`);
    }
    throw new Error("peer: too many frames skipped");
  }

  /** Frames until EOF (or reset), bounded in count. */
  async readUntilEof(timeoutMs = 5000): Promise<PeerFrame[]> {
    const frames: PeerFrame[] = [];
    for (let i = 0; i < 100_000; i++) {
      const f = await this.readFrame(timeoutMs);
      if (!f) return frames;
      frames.push(f);
    }
    throw new Error("peer: too many frames before EOF");
  }

  /** Reads preface and client SETTINGS, then sends `settings` and the ACK. */
  async handshake(settings: Array<[number, number]> = []): Promise<void> {
    await this.readPreface();
    const f = await this.readFrame();
    if (!f || f.type !== T.SETTINGS || f.flags !== 0) {
      throw new Error("peer: client did not send SETTINGS first");
    }
    for (let o = 0; o + 6 <= f.payload.byteLength; o += 6) {
      this.clientSettings.set((f.payload[o] << 8) | f.payload[o + 1], readU32(f.payload, o + 2));
    }
    await this.write(
      concat([
        this.frame(T.SETTINGS, 0, 0, settingsPayload(settings)),
        this.frame(T.SETTINGS, 1, 0),
      ]),
    );
  }

  frame(
    type: number,
    flags: number,
    streamId: number,
    payload: Uint8Array = new Uint8Array(0),
  ): Uint8Array {
    const out = new Uint8Array(9 + payload.byteLength);
    out[0] = payload.byteLength >>> 16;
    out[1] = (payload.byteLength >>> 8) & 0xff;
    out[2] = payload.byteLength & 0xff;
    out[3] = type;
    out[4] = flags;
    out.set(u32(streamId), 5);
    out.set(payload, 9);
    return out;
  }

  async write(bytes: Uint8Array): Promise<void> {
    await this.#writer.write(bytes);
  }

  send(type: number, flags: number, streamId: number, payload?: Uint8Array): Promise<void> {
    return this.write(this.frame(type, flags, streamId, payload));
  }

  settings(settings: Array<[number, number]>): Promise<void> {
    return this.send(T.SETTINGS, 0, 0, settingsPayload(settings));
  }

  headers(
    streamId: number,
    headers: Array<[string, string]>,
    opts: { endStream?: boolean } = {},
  ): Promise<void> {
    return this.send(T.HEADERS, 4 | (opts.endStream ? 1 : 0), streamId, literalBlock(headers));
  }

  data(
    streamId: number,
    data: Uint8Array | string,
    opts: { endStream?: boolean; pad?: number } = {},
  ): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let payload = bytes;
    let flags = opts.endStream ? 1 : 0;
    if (opts.pad !== undefined) {
      payload = concat([new Uint8Array([opts.pad]), bytes, new Uint8Array(opts.pad)]);
      flags |= 8;
    }
    return this.send(T.DATA, flags, streamId, payload);
  }

  rst(streamId: number, code: number): Promise<void> {
    return this.send(T.RST_STREAM, 0, streamId, u32(code));
  }

  goaway(lastStreamId: number, code: number, debug = ""): Promise<void> {
    return this.send(
      T.GOAWAY,
      0,
      0,
      concat([u32(lastStreamId), u32(code), new TextEncoder().encode(debug)]),
    );
  }

  windowUpdate(streamId: number, increment: number): Promise<void> {
    return this.send(T.WINDOW_UPDATE, 0, streamId, u32(increment));
  }

  ping(data: Uint8Array, ack = false): Promise<void> {
    return this.send(T.PING, ack ? 1 : 0, 0, data);
  }

  /** Decodes a HEADERS payload (no padding/priority) the client sent. */
  decodeHeaders(f: PeerFrame): Array<[string, string]> {
    return this.decoder.decode(f.payload);
  }

  /** Closes the peer's end (a reset, like a dropped TCP connection). */
  close(): void {
    this.#reader.cancel().catch(() => {});
    this.duplex.close();
  }
}

function settingsPayload(settings: Array<[number, number]>): Uint8Array {
  const out = new Uint8Array(settings.length * 6);
  settings.forEach(([id, value], i) => {
    out[i * 6] = id >>> 8;
    out[i * 6 + 1] = id & 0xff;
    out.set(u32(value), i * 6 + 2);
  });
  return out;
}
