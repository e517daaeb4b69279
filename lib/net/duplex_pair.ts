import type { Duplex } from "./duplex.ts";

/**
 * Two in-memory {@link Duplex} ends wired back to back: what one writes, the other reads.
 *
 * Used by tests (a scripted peer on one end, the code under test on the other) and anywhere two
 * layers of dray meet in-process. Each direction buffers at most `highWaterMark` bytes before a
 * writer waits, so backpressure behaves as it would on a socket. Closing the writable is a
 * half-close (the other end reads EOF); `close()` is a reset (both ends' pending reads and writes
 * fail), as on a socket.
 */
export function duplexPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const ab = new Pipe(highWaterMark);
  const ba = new Pipe(highWaterMark);
  return [new PipeEnd(ba, ab), new PipeEnd(ab, ba)];
}

class Pipe {
  readonly stream: TransformStream<Uint8Array, Uint8Array>;
  #controller!: TransformStreamDefaultController<Uint8Array>;
  #ended = false;
  constructor(highWaterMark: number) {
    this.stream = new TransformStream<Uint8Array, Uint8Array>(
      {
        start: (c) => void (this.#controller = c),
        // Once the writer has closed (a FIN on a socket), the bytes already in flight belong to
        // the reader: a later reset must not discard them, as closing a socket after shutdown
        // does not discard data already sent.
        flush: () => void (this.#ended = true),
      },
      new ByteLengthQueuingStrategy({ highWaterMark }),
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }
  reset(): void {
    if (this.#ended) return;
    try {
      this.#controller.error(new Deno.errors.ConnectionReset("connection reset"));
    } catch {
      // Already errored or closed.
    }
  }
}

class PipeEnd implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  #in: Pipe;
  #out: Pipe;
  constructor(inbound: Pipe, outbound: Pipe) {
    this.#in = inbound;
    this.#out = outbound;
    this.readable = inbound.stream.readable;
    this.writable = outbound.stream.writable;
  }
  close(): void {
    this.#in.reset();
    this.#out.reset();
  }
}
