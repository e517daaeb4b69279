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
import { waitAtMost } from "../net/wait_at_most.ts";

/** Told when a queued frame's bytes have been copied out of the queue. */
export interface TakenListener {
  taken(): void;
}

interface QueuedFrame {
  head: Uint8Array;
  body?: Uint8Array;
  notify?: TakenListener;
  /** Waits for a frame queued after it (see `hold`). */
  held?: boolean;
  /** The hold check round it was held in. */
  round?: number;
}

/**
 * A held frame leaves at the latest at the second hold check after it was held (200-400 ms): a
 * safety net for a caller that neither writes nor closes; VLESS writes within 100 ms.
 */
export const HOLD_CHECK_MS = 200;

/** Bytes per socket write: large enough to amortise a TLS write, small enough to interleave. */
export const MAX_BATCH = 512 * 1024;
/**
 * Batches at least this big go through the reusable buffer (when the writable allows it); smaller
 * ones are allocated as before. An upload through a v2ray server, whose credit trickles in 2 KiB
 * at a time, writes batches of ~30 KiB: at 32 KiB most of them were fresh zeroed allocations.
 */
export const REUSE_MIN = 8 * 1024;
/** Small batches in a row after which the reusable buffer is let go: the bulk transfer is over. */
const SMALL_BATCHES_TO_RELEASE = 16;
/**
 * Batches up to this size (a request's HEADERS and first DATA, an interactive message, a
 * WINDOW_UPDATE) go through a small buffer kept for the connection's life, when the writable
 * allows reuse: one allocation instead of one per write (each over 64 bytes a malloc'd, zeroed
 * backing store for V8).
 */
export const SMALL_SPARE = 2 * 1024;

export interface FrameWriterOptions {
  /** Called (once per failed write) when the socket rejects a write. */
  onError: (err: unknown) => void;
  /**
   * The writable is done with a chunk's bytes once its write resolves (a socket: they were copied
   * into the kernel or the TLS session). Then large batches are built in one buffer reused from
   * write to write, instead of a fresh (zeroed, later collected) one each time — on a bulk upload
   * that allocation cost as much as the copy. Not for writables that keep the chunk (an
   * in-memory pipe hands the very array to its reader).
   */
  reuseBuffer?: boolean;
}

export class FrameWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #onError: (err: unknown) => void;
  #urgent: Uint8Array[] = [];
  #queue: QueuedFrame[] = [];
  /** Frames in #queue that wait for a later one (`hold`). */
  #held = 0;
  #holdRound = 0;
  /** Armed while frames are held; one timer per connection, not one per held frame. */
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  #writing = false;
  #done: Promise<void> = Promise.resolve();
  #reuse: boolean;
  /** The reusable batch buffer; only touched between writes (each write is awaited). */
  #spare: Uint8Array | undefined;
  #smallBatches = 0;
  /** The small reusable buffer (SMALL_SPARE), made on the first small batch. */
  #smallSpare: Uint8Array | undefined;

  constructor(writable: WritableStream<Uint8Array>, options: FrameWriterOptions) {
    this.#writer = writable.getWriter();
    this.#writer.closed.catch(() => {});
    this.#onError = options.onError;
    this.#reuse = options.reuseBuffer ?? false;
  }

  /** Queues a frame ahead of every non-urgent one. */
  urgent(frame: Uint8Array): void {
    this.#urgent.push(frame);
    this.#kick();
  }

  /** Urgent frames not yet taken into a write: a peer that never reads makes this grow. */
  get urgentQueued(): number {
    return this.#urgent.length;
  }

  /**
   * Queues a frame (`head`, then `body` if any, written from where it is: no copy until the
   * batch). `notify.taken()` is called once its bytes have left the queue.
   */
  queue(head: Uint8Array, body?: Uint8Array, notify?: TakenListener): void {
    this.#queue.push({ head, body, notify });
    this.#kick();
  }

  /**
   * Queues a frame that does not start a write of its own: it leaves, in order, with the next
   * frame queued (or urgent frame, or a write already under way). A stream's HEADERS held this
   * way share one write, one TLS record and one wake-up of the peer with its first DATA.
   */
  hold(frame: Uint8Array): void {
    this.#queue.push({ head: frame, held: true, round: this.#holdRound });
    this.#held++;
    this.#holdTimer ??= setTimeout(this.#checkHeld, HOLD_CHECK_MS);
  }

  /** Held frames leave now, without waiting for a later frame. */
  sendHeld(): void {
    if (this.#held === 0) return;
    for (const f of this.#queue) f.held = false;
    this.#held = 0;
    this.#kick();
  }

  /** Drops everything not yet written (the connection is failing; only a GOAWAY follows). */
  clear(): void {
    this.#urgent = [];
    this.#queue = [];
    this.#held = 0;
    this.#stopHoldTimer();
  }

  /** Frames held since before the last check leave now (see HOLD_CHECK_MS). */
  #checkHeld = (): void => {
    this.#holdTimer = undefined;
    const round = this.#holdRound++;
    if (this.#held === 0) return;
    if (this.#queue.some((f) => f.held && f.round! < round)) this.sendHeld();
    if (this.#held > 0) this.#holdTimer = setTimeout(this.#checkHeld, HOLD_CHECK_MS);
  };

  #stopHoldTimer(): void {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
  }

  /**
   * Waits for the write in progress (and, with `flush`, for everything queued), then writes `last`
   * (a GOAWAY) and half-closes, so it is delivered before the reset that closing the socket may
   * be. Without `flush` unwritten frames are dropped. Bounded by `timeoutMs`: a peer that stopped
   * reading must not keep us open. Never throws.
   */
  async finish(last: Uint8Array | undefined, timeoutMs: number, flush = false): Promise<void> {
    if (!flush) this.clear();
    // Held frames wait for a later one; the last frame is written apart, so let them go now.
    else this.sendHeld();
    this.#stopHoldTimer();
    const write = async () => {
      await this.#done.catch(() => {});
      if (last) await this.#writer.write(last);
      await this.#writer.close();
    };
    await waitAtMost(write(), timeoutMs);
  }

  /** Resolves once the writer is idle: the write in progress, if any, has settled. */
  idle(): Promise<void> {
    return this.#done.catch(() => {});
  }

  /** Lets go of the socket's writable (after the duplex was closed). */
  release(): void {
    this.#spare = this.#smallSpare = undefined;
    this.#stopHoldTimer();
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
      // Held frames alone do not make a write (see `hold`).
      while (this.#urgent.length > 0 || this.#queue.length > this.#held) {
        await this.#writer.write(this.#takeBatch());
        // One more turn before the next batch, as #kick takes: a stream opened while the write was
        // in flight gets its first DATA queued (its writable starts a microtask later) and sent
        // with its HEADERS.
        await Promise.resolve();
      }
    } catch (err) {
      this.clear();
      this.#spare = this.#smallSpare = undefined;
      this.#onError(err);
    } finally {
      this.#writing = false;
    }
  }

  /** A buffer for a batch of `size` bytes: the reusable one for large batches, else a new one. */
  #buffer(size: number): Uint8Array {
    if (!this.#reuse) return new Uint8Array(size);
    if (size < REUSE_MIN) {
      // An interactive connection (or one gone quiet after a transfer) holds no large buffer.
      if (this.#spare && ++this.#smallBatches >= SMALL_BATCHES_TO_RELEASE) this.#spare = undefined;
      if (size > SMALL_SPARE) return new Uint8Array(size);
      return (this.#smallSpare ??= new Uint8Array(SMALL_SPARE)).subarray(0, size);
    }
    this.#smallBatches = 0;
    if (!this.#spare || this.#spare.byteLength < size) {
      // Sized to the batches seen (a power of two), not MAX_BATCH at once: a server with many
      // clients keeps one per connection in use.
      // A bulk batch is a little over MAX_BATCH (frames are added while below it): no rounding up
      // to the next power of two there.
      this.#spare = new Uint8Array(
        Math.max(size, Math.min(2 ** Math.ceil(Math.log2(size)), MAX_BATCH)),
      );
    }
    return this.#spare.subarray(0, size);
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
    const out = this.#buffer(size);
    let o = 0;
    for (const u of urgent) {
      out.set(u, o);
      o += u.byteLength;
    }
    this.#urgent = [];
    const taken = this.#queue.splice(0, count);
    for (const f of taken) {
      if (f.held) this.#held--;
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
