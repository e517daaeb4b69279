import type { Duplex } from "./duplex.ts";

/**
 * Two in-memory {@link Duplex} ends wired back to back: what one writes, the other reads.
 *
 * Used by tests (a scripted peer on one end, the code under test on the other) and anywhere two
 * layers of dray meet in-process. Each direction buffers at most `highWaterMark` bytes before a
 * writer waits, so backpressure behaves as it would on a socket: a write resolves as soon as its
 * bytes are buffered (like a socket write landing in the kernel's send buffer), not when the peer
 * reads them, so both ends may write before either reads without deadlocking. Closing the
 * writable is a half-close (the other end reads EOF after the buffered bytes); `close()` is a
 * reset (both ends' pending reads and writes fail with `ConnectionReset`), as on a socket — except
 * that bytes already followed by a half-close are still delivered, as a socket's would be.
 */
export function duplexPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const ab = new Pipe(highWaterMark);
  const ba = new Pipe(highWaterMark);
  return [new PipeEnd(ba, ab), new PipeEnd(ab, ba)];
}

/** One direction: a byte-bounded queue with a writable end and a readable end. */
class Pipe {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  #rc!: ReadableStreamDefaultController<Uint8Array>;
  #wc!: WritableStreamDefaultController;
  /** Resolved when the reader makes room; a blocked write waits on it. */
  #room: PromiseWithResolvers<void> | undefined;
  #failed: Error | undefined;
  /** The writer closed (FIN): what is queued belongs to the reader now. */
  #ended = false;

  constructor(highWaterMark: number) {
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => void (this.#rc = c),
      pull: () => {
        this.#room?.resolve();
        this.#room = undefined;
      },
      // The reader went away: the writer sees what a socket writer sees, a reset.
      cancel: () => this.#fail(false),
    }, new ByteLengthQueuingStrategy({ highWaterMark }));
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => void (this.#wc = c),
      write: async (chunk) => {
        if (this.#failed) throw this.#failed;
        if (chunk.byteLength === 0) return;
        this.#rc.enqueue(chunk);
        if ((this.#rc.desiredSize ?? 0) > 0) return;
        this.#room = Promise.withResolvers<void>();
        await this.#room.promise;
      },
      close: () => {
        this.#ended = true;
        this.#rc.close();
      },
      abort: () => this.reset(),
    });
  }

  reset(): void {
    if (this.#ended) return;
    this.#fail(true);
  }

  #fail(errorReadable: boolean): void {
    if (this.#failed) return;
    const err = new Deno.errors.ConnectionReset("connection reset");
    this.#failed = err;
    if (errorReadable) {
      try {
        this.#rc.error(err);
      } catch {
        // Already closed or errored.
      }
    }
    try {
      this.#wc.error(err);
    } catch {
      // Already closed or errored.
    }
    this.#room?.reject(err);
    this.#room?.promise.catch(() => {});
    this.#room = undefined;
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
    this.readable = inbound.readable;
    this.writable = outbound.writable;
  }
  close(): void {
    this.#in.reset();
    this.#out.reset();
  }
}
