/**
 * Reads a byte stream by exact sizes, for parsing protocol headers off a socket.
 *
 * Chunks are kept in a list and only copied when a read spans chunk boundaries; when a read's size
 * matches what is buffered, the caller gets a view of the original chunk. `null` means EOF before
 * anything was read; EOF in the middle of an exact read throws `UnexpectedEofError`.
 */
export class UnexpectedEofError extends Error {
  constructor(want: number, got: number) {
    super(`Unexpected end of stream: wanted ${want} bytes, got ${got}`);
    this.name = "UnexpectedEofError";
  }
}

export class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #eof = false;
  #released = false;

  #source: ReadableStream<Uint8Array>;

  constructor(readable: ReadableStream<Uint8Array>) {
    this.#source = readable;
    this.#reader = readable.getReader();
  }

  /** Bytes currently buffered (read from the stream but not yet consumed). */
  get buffered(): number {
    return this.#buffered;
  }

  /** Pulls one more chunk into the buffer; false at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const { done, value } = await this.#reader.read();
    if (done) {
      this.#eof = true;
      return false;
    }
    if (value.byteLength > 0) {
      this.#chunks.push(value);
      this.#buffered += value.byteLength;
    }
    return true;
  }

  /** Waits until at least `n` bytes are buffered; false if EOF comes first. */
  async ensure(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      if (!(await this.#fill())) return false;
    }
    return true;
  }

  /** Exactly `n` bytes; `null` on EOF with nothing buffered, throws on EOF after a partial read. */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (!(await this.ensure(n))) {
      if (this.#buffered === 0) return null;
      throw new UnexpectedEofError(n, this.#buffered);
    }
    return this.#take(n);
  }

  /** The next available bytes (at most `max`), waiting only if nothing is buffered; `null` at EOF. */
  async read(max = Infinity): Promise<Uint8Array | null> {
    if (this.#buffered === 0 && !(await this.ensure(1))) return null;
    return this.#take(Math.min(max, this.#chunks[0].byteLength));
  }

  /** Looks at the first `n` buffered bytes without consuming them (call `ensure(n)` first). */
  peek(n: number): Uint8Array {
    if (n > this.#buffered) {
      throw new RangeError(`Cannot peek ${n} bytes: ${this.#buffered} buffered`);
    }
    const first = this.#chunks[0];
    if (first.byteLength >= n) return first.subarray(0, n);
    this.#coalesce(n);
    return this.#chunks[0].subarray(0, n);
  }

  #coalesce(n: number): void {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const take = Math.min(c.byteLength, n - off);
      out.set(c.subarray(0, take), off);
      off += take;
      if (take === c.byteLength) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
    }
    this.#chunks.unshift(out);
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.byteLength < n) this.#coalesce(n);
    const c = this.#chunks[0];
    this.#buffered -= n;
    if (c.byteLength === n) {
      this.#chunks.shift();
      return c;
    }
    this.#chunks[0] = c.subarray(n);
    return c.subarray(0, n);
  }

  /**
   * Puts bytes back in front of the buffer, for a parser that read past the end of its message
   * (e.g. an HTTP head scanned chunk by chunk). The next reads return them first.
   */
  unshift(chunk: Uint8Array): void {
    if (this.#released) throw new TypeError("ByteReader.unshift() after rest()");
    if (chunk.byteLength === 0) return;
    this.#chunks.unshift(chunk);
    this.#buffered += chunk.byteLength;
  }

  /**
   * Gives up parsing: returns a stream of whatever is buffered followed by the rest of the
   * source. The reader must not be used afterwards.
   */
  rest(): ReadableStream<Uint8Array> {
    if (this.#released) throw new TypeError("ByteReader.rest() was already called");
    this.#released = true;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#buffered = 0;
    const reader = this.#reader;
    const eof = this.#eof;
    if (chunks.length === 0 && !eof) {
      // Nothing read ahead (the usual case after a proxy handshake): hand back the source itself
      // rather than a wrapper, which would cost a stream hop on every chunk of the connection.
      reader.releaseLock();
      return this.#source;
    }
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const next = chunks.shift();
        if (next) return controller.enqueue(next);
        if (eof) return controller.close();
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
  }

  /**
   * Like {@link rest}, as a reader: the source's own reader, still locked, when nothing was read
   * ahead — no lock released, no stream made (see HeldDuplex). The ByteReader must not be used
   * afterwards.
   */
  restReader(): ReadableStreamDefaultReader<Uint8Array> {
    if (this.#released) throw new TypeError("ByteReader.rest() was already called");
    this.#released = true;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#buffered = 0;
    if (chunks.length === 0 && !this.#eof) return this.#reader;
    // Read ahead (a VLESS request header arrives with the first payload): those bytes first, then
    // the source's reader itself — a wrapper reader, not a wrapper stream, so later chunks take no
    // extra hop.
    return new PrefixedReader(chunks, this.#reader, this.#eof);
  }

  /** Cancels the underlying stream (for error paths). */
  async cancel(reason?: unknown): Promise<void> {
    this.#chunks = [];
    this.#buffered = 0;
    if (!this.#released) await this.#reader.cancel(reason).catch(() => {});
  }
}

/** A reader that yields `chunks`, then reads on from `reader` (unless the source had ended). */
class PrefixedReader implements ReadableStreamDefaultReader<Uint8Array> {
  #chunks: Uint8Array[];
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #eof: boolean;

  constructor(chunks: Uint8Array[], reader: ReadableStreamDefaultReader<Uint8Array>, eof: boolean) {
    this.#chunks = chunks;
    this.#reader = reader;
    this.#eof = eof;
  }

  get closed(): Promise<void> {
    return this.#reader.closed;
  }

  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const next = this.#chunks.shift();
    if (next) return Promise.resolve({ done: false, value: next });
    if (this.#eof) return Promise.resolve({ done: true, value: undefined });
    return this.#reader.read();
  }

  cancel(reason?: unknown): Promise<void> {
    this.#chunks = [];
    return this.#reader.cancel(reason);
  }

  releaseLock(): void {
    this.#reader.releaseLock();
  }
}
