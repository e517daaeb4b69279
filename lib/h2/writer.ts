/**
 * The single writer of an HTTP/2 connection, shared by the client and the server role: every frame
 * goes through one `FrameWriter`, which owns the socket's write side.
 *
 * Two queues: urgent frames (SETTINGS and its ACK, PING ACK, WINDOW_UPDATE, RST_STREAM for errors
 * we detect) jump ahead of queued frames (HEADERS, DATA, RST_STREAM a stream asks for), so a peer
 * waiting on a WINDOW_UPDATE or a PING ACK is never stuck behind megabytes of DATA. Frames queued
 * in the same tick go out in one write (up to MAX_BATCH bytes): a header block and the first DATA
 * share a TCP segment, and a bulk transfer pays one write per ~512 KiB instead of one per frame.
 */

/** Told when a queued frame's bytes have been copied out of the queue. */
export interface TakenListener {
  taken(): void;
}

interface QueuedFrame {
  head: Uint8Array;
  body?: Uint8Array;
  notify?: TakenListener;
}

/** Bytes per socket write: large enough to amortise a TLS write, small enough to interleave. */
export const MAX_BATCH = 512 * 1024;

export class FrameWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #onError: (err: unknown) => void;
  #urgent: Uint8Array[] = [];
  #queue: QueuedFrame[] = [];
  #writing = false;
  #done: Promise<void> = Promise.resolve();

  /** `onError` is called (once per failed write) when the socket rejects a write. */
  constructor(writable: WritableStream<Uint8Array>, onError: (err: unknown) => void) {
    this.#writer = writable.getWriter();
    this.#writer.closed.catch(() => {});
    this.#onError = onError;
  }

  /** Queues a frame ahead of every non-urgent one. */
  urgent(frame: Uint8Array): void {
    this.#urgent.push(frame);
    this.#kick();
  }

  /**
   * Queues a frame (`head`, then `body` if any, written from where it is: no copy until the
   * batch). `notify.taken()` is called once its bytes have left the queue.
   */
  queue(head: Uint8Array, body?: Uint8Array, notify?: TakenListener): void {
    this.#queue.push({ head, body, notify });
    this.#kick();
  }

  /** Drops everything not yet written (the connection is failing; only a GOAWAY follows). */
  clear(): void {
    this.#urgent = [];
    this.#queue = [];
  }

  /**
   * Waits for the write in progress (and, with `flush`, for everything queued), then writes `last`
   * (a GOAWAY) and half-closes, so it is delivered before the reset that closing the socket may
   * be. Without `flush` unwritten frames are dropped. Bounded by `timeoutMs`: a peer that stopped
   * reading must not keep us open. Never throws.
   */
  async finish(last: Uint8Array | undefined, timeoutMs: number, flush = false): Promise<void> {
    if (!flush) this.clear();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    const write = async () => {
      await this.#done.catch(() => {});
      if (last) await this.#writer.write(last);
      await this.#writer.close();
    };
    await Promise.race([write().catch(() => {}), expired]);
    clearTimeout(timer);
  }

  /** Resolves once the writer is idle: the write in progress, if any, has settled. */
  idle(): Promise<void> {
    return this.#done.catch(() => {});
  }

  /** Lets go of the socket's writable (after the duplex was closed). */
  release(): void {
    try {
      this.#writer.releaseLock();
    } catch {
      // A pending write keeps the lock in some runtimes; the duplex is closed anyway.
    }
  }

  /** Starts the writer if it is idle; it runs in a microtask so frames queued now share a write. */
  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    this.#done = Promise.resolve().then(() => this.#writeLoop());
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#urgent.length > 0 || this.#queue.length > 0) {
        await this.#writer.write(this.#takeBatch());
      }
    } catch (err) {
      this.clear();
      this.#onError(err);
    } finally {
      this.#writing = false;
    }
  }

  /** Joins urgent frames, then queued frames, into one buffer of at most about MAX_BATCH bytes. */
  #takeBatch(): Uint8Array {
    const urgent = this.#urgent;
    let size = 0;
    for (const u of urgent) size += u.byteLength;
    let count = 0;
    for (; count < this.#queue.length && size < MAX_BATCH; count++) {
      const f = this.#queue[count];
      size += f.head.byteLength + (f.body?.byteLength ?? 0);
    }
    if (urgent.length === 1 && count === 0) {
      this.#urgent = [];
      return urgent[0];
    }
    const out = new Uint8Array(size);
    let o = 0;
    for (const u of urgent) {
      out.set(u, o);
      o += u.byteLength;
    }
    this.#urgent = [];
    const taken = this.#queue.splice(0, count);
    for (const f of taken) {
      out.set(f.head, o);
      o += f.head.byteLength;
      if (f.body) {
        out.set(f.body, o);
        o += f.body.byteLength;
      }
    }
    for (const f of taken) f.notify?.taken();
    return out;
  }
}
