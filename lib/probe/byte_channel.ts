/**
 * The smallest byte pipe the probe needs: write, read a chunk (null at EOF), close. Both a proxied
 * connection and a TLS session inside one look like this to the HTTP check.
 */
import type { Duplex } from "../net/duplex.ts";
import { closeQuietly } from "../net/close_quietly.ts";

export interface ByteChannel {
  write(chunk: Uint8Array): Promise<void>;
  /** The next chunk, or null at EOF. */
  read(): Promise<Uint8Array | null>;
  /** Tears the channel down both ways; never throws. */
  close(): void;
}

/**
 * A {@link Duplex} as a channel that remembers when its first byte came and the first error it
 * saw: the probe tells "the server never answered" (VLESS or transport stage) from "the target's
 * answer was wrong" (http stage) by whether any byte came back, even when a TLS session on top
 * reports the failure in its own words.
 */
export class TracedChannel implements ByteChannel {
  readonly #duplex: Duplex;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  /** performance.now() of the first byte received; 0 until then. */
  firstByteAt = 0;
  /** The first read or write error, as the transport or VLESS layer raised it. */
  firstError: unknown = undefined;

  constructor(duplex: Duplex) {
    this.#duplex = duplex;
    this.#reader = duplex.readable.getReader();
    this.#writer = duplex.writable.getWriter();
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      await this.#writer.write(chunk);
    } catch (err) {
      this.firstError ??= err;
      throw err;
    }
  }

  async read(): Promise<Uint8Array | null> {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await this.#reader.read();
    } catch (err) {
      this.firstError ??= err;
      throw err;
    }
    if (result.done) return null;
    if (this.firstByteAt === 0 && result.value.byteLength > 0) this.firstByteAt = performance.now();
    return result.value;
  }

  close(): void {
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
    closeQuietly(this.#duplex);
  }
}
