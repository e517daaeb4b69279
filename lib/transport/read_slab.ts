/**
 * Read memory for a framer that reads a socket into its own buffers and hands on views of them
 * (WsConnection): reads fill a pooled 64 KiB buffer in turn, and the chunks cut from it are lent
 * (buffer_lender.ts), so the buffer goes back to the pool once the last of them has been written on
 * and the reader has moved to the next buffer.
 *
 * Why: over TLS one read is one record, and v2ray's ws server sends ~4 KiB records, so a download
 * is ~260k reads per GiB. A fresh 256 KiB slab every ~60 of them (the way before) costs the zeroing,
 * page faults on fresh mmap'd memory, and external-memory GCs: measured against v2ray's server, a
 * bare TLS read loop spent 1.0 CPU s/GiB reading into one reused buffer and 1.3 into slabs.
 *
 * A buffer is counted out to its lender until the reader has let go of it and every chunk lent from
 * it has come back; a chunk not given back (a consumer that keeps it) keeps its buffer out of the
 * pool for good and the GC frees it. When the lender's share is used up, reads go into slabs of the
 * reader's own that are left to the GC, as before.
 */
import { BufferLender } from "../net/buffer_lender.ts";

/** A slab when no pooled buffer is to be had: several reads' worth, so allocations stay rare. */
const OWN_SLAB_SIZE = 256 * 1024;
const EMPTY: Uint8Array = new Uint8Array(0);

/** Counts, per pooled buffer, the chunks lent from it; returns it whole when the count is 0. */
class CountingLender extends BufferLender {
  /** Pooled buffer → chunks out, plus 1 while it is the reader's current buffer. */
  readonly refs = new Map<Uint8Array, number>();

  override put(buffer: Uint8Array): void {
    const left = (this.refs.get(buffer) ?? 1) - 1;
    if (left > 0) {
      this.refs.set(buffer, left);
      return;
    }
    this.refs.delete(buffer);
    super.put(buffer);
  }
}

export class ReadSlab {
  readonly #lender: CountingLender;
  #buffer = EMPTY;
  #used = 0;
  #pooled = false;

  /** `maxBuffers`: most pooled buffers out at once (being read into, or with chunks lent). */
  constructor(maxBuffers: number) {
    this.#lender = new CountingLender(maxBuffers);
  }

  /**
   * Room for the next read, at least `min` bytes (at most a pooled buffer, 64 KiB): the rest of
   * the current buffer, else a new one. A view of unlent memory: only the reader writes there.
   */
  space(min: number): Uint8Array {
    if (this.#buffer.byteLength - this.#used < min) this.#next();
    return this.#buffer.subarray(this.#used);
  }

  /** The last read put `n` bytes at the start of the space it was given. */
  fill(n: number): void {
    this.#used += n;
  }

  /** Room left in the current buffer. */
  get room(): number {
    return this.#buffer.byteLength - this.#used;
  }

  /** Whether `view` is memory of the current buffer. */
  holds(view: Uint8Array): boolean {
    return this.#buffer !== EMPTY && view.buffer === this.#buffer.buffer;
  }

  /**
   * `chunk`, a view of the current buffer the reader is done with, goes to a consumer: it comes
   * back through giveBack() once written. Reads go on into the rest of the buffer.
   */
  lend(chunk: Uint8Array): void {
    if (!this.#pooled || chunk.buffer !== this.#buffer.buffer) return;
    const refs = this.#lender.refs;
    refs.set(this.#buffer, (refs.get(this.#buffer) ?? 1) + 1);
    this.#lender.lend(chunk, this.#buffer);
  }

  /**
   * Lets go of the current buffer (reads went quiet, or the connection is done): it goes back to
   * the pool once its lent chunks have. Never while a read into it is under way.
   */
  release(): void {
    if (this.#pooled) this.#lender.put(this.#buffer);
    this.#buffer = EMPTY;
    this.#used = 0;
    this.#pooled = false;
  }

  #next(): void {
    this.release();
    const buffer = this.#lender.take();
    if (buffer) {
      this.#buffer = buffer;
      this.#pooled = true;
      this.#lender.refs.set(buffer, 1);
    } else {
      this.#buffer = new Uint8Array(OWN_SLAB_SIZE);
    }
  }
}
