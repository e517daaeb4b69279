/**
 * The two halves of a stream's body, independent of the role: what the peer sends us, read as a
 * pull-based `ReadableStream` or through a direct reader, returning receive credit as the consumer
 * reads; and what we send, through a `WritableStream` or a direct writer (body_writer.ts), bounded
 * by the send windows and the peer's SETTINGS_MAX_FRAME_SIZE. The streams are made on first use: a
 * relayed connection takes the direct ends and never builds them.
 *
 * Neither touches the socket: the receiving half reports consumed bytes, the sending half asks a
 * `BodySender` for credit and to queue DATA frames.
 */
import { BufferLender, POOL_BUFFER_SIZE } from "../net/buffer_lender.ts";
import { ConnectionError, ErrorCode, StreamError } from "./errors.ts";
import type { ReceiveWindow } from "./flow.ts";
import { type BodySink, BodyWriter } from "./body_writer.ts";
import type { TakenListener } from "./frame_writer.ts";

const EMPTY = new Uint8Array(0);
/** Size of the pieces buffered bytes are copied into behind a slow consumer (see ReceiveBody#keep). */
const BUFFER_PIECE = POOL_BUFFER_SIZE;
/**
 * Size of the pieces while the consumer keeps up (less than this is buffered): it takes a few
 * frames per read, and a 64 KiB piece lent for them would hold 64 KiB per chunk while it is
 * written on.
 */
const KEPT_UP_PIECE = 16 * 1024;
/** A few bytes arriving on a stream with nothing buffered get a piece of SMALL_PIECE bytes. */
const SMALL_DATA = 512;
const SMALL_PIECE = 2 * SMALL_DATA;
/**
 * Pooled pieces of one body that may be out at once (buffered, lent to the consumer, or being
 * filled): a 4 MiB stream window's worth. A consumer slower than the peer holds up to the window
 * in pieces; from the pool, they come back and serve again instead of becoming garbage.
 */
const LENT_PIECES = 64;

/**
 * True when a stream failing with `err` keeps the bytes it already received readable ahead of the
 * error (ReceiveBody.fail's `keepBuffered`): the peer reset the stream or the connection ended —
 * those bytes are good data, and a proxy must hand them on before it reports the cut. Not for our
 * own resets or a stream we found malformed.
 */
export function keepsReceivedBytes(err: Error): boolean {
  if (err instanceof StreamError) return err.initiator === "peer";
  return err instanceof ConnectionError;
}

export interface ReceiveBodyOptions {
  streamId: number;
  /** The receive window we advertised for the stream; DATA must fit in it. */
  window: ReceiveWindow;
  /** Names the peer in errors ("peer", "client"). */
  peerName: string;
  /**
   * `n` bytes were read or dropped; `streamToo` is false once the peer ended the stream (no stream
   * WINDOW_UPDATE is due then).
   */
  onConsumed: (n: number, streamToo: boolean) => void;
  /** The consumer cancelled before the end. */
  onCancel: () => void;
}

/**
 * Received DATA waiting for the consumer. Credit goes back only when the consumer pulls (or the
 * bytes are dropped), so what we hold never exceeds the window we advertised, and a slow consumer
 * slows the peer instead of growing our memory.
 */
export class ReceiveBody {
  #readable: ReadableStream<Uint8Array> | undefined;
  #reader: BodyReader | undefined;
  /** Settled when direct reads reach the end or the error (BodyReader.closed), made on demand. */
  #readClosed: PromiseWithResolvers<void> | undefined;
  /** What the direct reads ended with: the end, or the error. */
  #readEnd: "done" | Error | undefined;
  #cancelled = false;
  #streamId: number;
  #window: ReceiveWindow;
  #peerName: string;
  /** The options, kept for their callbacks (called as methods: they may be one shared object). */
  #events: ReceiveBodyOptions;
  #received = 0;
  #chunks: Uint8Array[] = [];
  #tail: Uint8Array | undefined;
  #tailLength = 0;
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #done = false;
  /** The buffered bytes were credited back when the stream failed (fail() with keepBuffered). */
  #credited = false;
  #pullWaiter: (() => void) | undefined;
  /** Created on the first full-size piece: most bodies of idle streams never need one. */
  #lender: BufferLender | undefined;
  /** The tail, when it is a piece from the pool (lent to the consumer once flushed). */
  #pooledTail: Uint8Array | undefined;

  constructor(options: ReceiveBodyOptions) {
    this.#streamId = options.streamId;
    this.#window = options.window;
    this.#peerName = options.peerName;
    this.#events = options;
  }

  /**
   * The body as a ReadableStream, made on first use. A consumer takes this or `reader`, not both.
   */
  get readable(): ReadableStream<Uint8Array> {
    if (this.#readable) return this.#readable;
    if (this.#reader) throw new TypeError("Cannot take the readable: the body has a direct reader");
    return this.#readable = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#cancel(),
    }, { highWaterMark: 0 });
  }

  /**
   * A reader of the body without a ReadableStream under it (for a relay: no stream, controller and
   * queue per stream, no hop per chunk). Each read returns one chunk and returns its credit.
   */
  get reader(): ReadableStreamDefaultReader<Uint8Array> {
    if (this.#reader) return this.#reader;
    if (this.#readable) throw new TypeError("Cannot take a reader: the body has a readable");
    return this.#reader = new BodyReader(this);
  }

  /** True once the peer sent END_STREAM. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#buffered;
  }

  /** DATA bytes received so far (padding not counted). */
  get received(): number {
    return this.#received;
  }

  /** Takes a DATA frame's `flowLength` (padding included) out of the stream's receive window. */
  admit(flowLength: number): void {
    // RFC 9113 §6.9.1: a sender MUST NOT send more than the window allows; the receiver treats
    // an overrun of a stream window as a stream error of type FLOW_CONTROL_ERROR.
    if (!this.#window.receive(flowLength)) {
      const id = this.#streamId;
      throw new StreamError(
        id,
        ErrorCode.FLOW_CONTROL_ERROR,
        `reset stream ${id}: ${this.#peerName} sent ${flowLength} bytes past the stream window (${this.#window.available} left)`,
      );
    }
  }

  /**
   * An admitted DATA frame's data (a view the caller no longer touches); its padding
   * (`flowLength` beyond the data) is credited back at once.
   */
  push(data: Uint8Array, flowLength: number): void {
    if (flowLength > data.byteLength) this.#events.onConsumed(flowLength - data.byteLength, true);
    if (data.byteLength === 0) return;
    this.#received += data.byteLength;
    if (this.#done || this.#error) {
      // Nobody will read it: credit it back at once.
      this.#events.onConsumed(data.byteLength, !this.#ended);
      return;
    }
    // Copied even when the consumer is waiting: the frame is a view of the connection's read
    // buffer, which the connection reuses for its next read (SocketReader).
    this.#keep(data);
    this.#wake();
  }

  /**
   * Buffers received bytes. They are a view into the connection's read buffer, which is either
   * reused by the next read or a slab shared by every stream (holding the view would keep the
   * whole slab alive for as long as this consumer dawdles), so they are copied into pieces —
   * which also hands the consumer fewer, larger chunks than one per 16 KiB frame.
   *
   * A few bytes on a quiet stream (a request header, a keystroke) get a small piece of their own;
   * anything more gets a piece from the buffer pool (16 KiB while the consumer keeps up, 64 KiB
   * once it falls behind), which the consumer's sink gives back once written (buffer_lender.ts), so
   * a download reuses the same few pieces instead of allocating one per read.
   */
  #keep(data: Uint8Array): void {
    const n = data.byteLength;
    if (!this.#tail || this.#tail.byteLength - this.#tailLength < n) {
      this.#flushTail();
      this.#tail = this.#piece(n);
    }
    this.#tail.set(data, this.#tailLength);
    this.#tailLength += n;
    this.#buffered += n;
  }

  #piece(n: number): Uint8Array {
    if (n > BUFFER_PIECE) return new Uint8Array(n);
    if (this.#buffered === 0 && n <= SMALL_DATA) return new Uint8Array(SMALL_PIECE);
    this.#lender ??= new BufferLender(LENT_PIECES);
    const size = this.#buffered < KEPT_UP_PIECE ? Math.max(n, KEPT_UP_PIECE) : BUFFER_PIECE;
    const piece = this.#lender.take(size);
    if (piece) this.#pooledTail = piece;
    return piece ?? new Uint8Array(BUFFER_PIECE);
  }

  #flushTail(): void {
    const tail = this.#tail;
    const length = this.#tailLength;
    const pooled = tail !== undefined && this.#pooledTail === tail;
    this.#pooledTail = undefined;
    this.#tail = undefined;
    this.#tailLength = 0;
    if (tail === undefined || length === 0) {
      if (pooled) this.#lender!.put(tail);
      return;
    }
    let chunk: Uint8Array;
    if (pooled && length <= tail.byteLength / 4) {
      // A piece mostly empty: lent as it is, it would hold its whole size while the chunk is
      // written on (measured: lending whole 64 KiB pieces for a consumer that takes a frame or two
      // per read peaked at 314-371 MiB over 512 parallel downloads from a v2ray server, whose frames
      // are 2 KiB). A copy into a smaller pooled buffer costs less, and the piece goes straight back.
      const copy = this.#lender!.take(length);
      // The piece goes back only once its bytes are copied out: memory put back is no longer ours
      // (the debug guard poisons it at once, see buffer_lender.ts).
      if (copy === undefined) {
        this.#chunks.push(tail.slice(0, length));
        this.#lender!.put(tail);
        return;
      }
      copy.set(tail.subarray(0, length));
      this.#lender!.put(tail);
      chunk = copy.subarray(0, length);
      this.#lender!.lend(chunk, copy);
    } else {
      chunk = tail.subarray(0, length);
      if (pooled) this.#lender!.lend(chunk, tail);
    }
    this.#chunks.push(chunk);
  }

  /** The peer ended the body (END_STREAM). */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /**
   * The stream failed: the readable errors unless the body was already complete. With
   * `keepBuffered` (the peer ended the stream abnormally — reset it, or the connection broke) the
   * bytes already received stay readable and the error comes after them: a proxy must hand on
   * every byte it got and then say the stream was cut, never drop the tail and never turn the cut
   * into an EOF. Otherwise (our own reset, a malformed stream) buffered bytes of an incomplete body
   * are dropped and credited back.
   */
  fail(err: Error, keepBuffered = false): void {
    if (this.#error) return;
    this.#error = err;
    if (this.#ended) {
      // A complete body: its buffered bytes stay readable and are credited as they are read.
    } else if (!keepBuffered) {
      this.drop();
    } else if (this.#buffered > 0) {
      // The stream is over; the connection's window must not wait for a reader that may never
      // come. The bytes stay readable (bounded by the stream window) without credit of their own.
      this.#events.onConsumed(this.#buffered, false);
      this.#credited = true;
    }
    this.#wake();
  }

  /** Drops buffered bytes and credits them back to the connection only. */
  drop(): void {
    if (this.#buffered > 0 && !this.#credited) this.#events.onConsumed(this.#buffered, false);
    this.#chunks = [];
    if (this.#pooledTail) this.#lender!.put(this.#pooledTail);
    this.#pooledTail = undefined;
    this.#tail = undefined;
    this.#tailLength = 0;
    this.#buffered = 0;
  }

  #wake(): void {
    const wake = this.#pullWaiter;
    if (wake) {
      this.#pullWaiter = undefined;
      wake();
    }
  }

  #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> | void {
    if (this.#buffered > 0) {
      // Hand over everything buffered; the readable only pulls again once its queue is empty, so
      // what we hold plus what it holds stays within the window we advertised.
      const n = this.#buffered;
      this.#flushTail();
      for (const chunk of this.#chunks) controller.enqueue(chunk);
      this.#chunks = [];
      this.#buffered = 0;
      if (!this.#credited) this.#events.onConsumed(n, !this.#ended);
      return;
    }
    if (this.#ended) {
      this.#done = true;
      controller.close();
      return;
    }
    if (this.#error) {
      this.#done = true;
      controller.error(this.#error);
      return;
    }
    return new Promise<void>((resolve) => (this.#pullWaiter = resolve)).then(() =>
      this.#pull(controller)
    );
  }

  #cancel(): void {
    this.#done = true;
    this.drop();
    if (!this.#ended) this.#events.onCancel();
  }

  // ---- for BodyReader ----

  /** The next chunk (its credit returned), the end, or the error; waits while there is none. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (this.#buffered > 0) {
      this.#flushTail();
      const chunk = this.#chunks.shift()!;
      this.#buffered -= chunk.byteLength;
      if (!this.#credited) this.#events.onConsumed(chunk.byteLength, !this.#ended);
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.#ended || this.#cancelled) {
      this.#done = true;
      this.#readEnd = "done";
      this.#readClosed?.resolve();
      return Promise.resolve({ done: true, value: undefined });
    }
    if (this.#error) {
      this.#done = true;
      this.#readEnd = this.#error;
      this.#readClosed?.reject(this.#error);
      return Promise.reject(this.#error);
    }
    // One waiter: a second read while one waits is chained behind it.
    const waiting = this.#pullWaiter;
    return new Promise<void>((resolve) => {
      this.#pullWaiter = waiting
        ? () => {
          waiting();
          resolve();
        }
        : resolve;
    }).then(() => this.read());
  }

  /** The reader's consumer does not want the rest. */
  cancelRead(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#cancel();
    this.#wake();
  }

  /** For BodyReader.closed: settles once a read returned the end or the error. */
  get readClosed(): Promise<void> {
    const end = this.#readEnd;
    if (end === "done") return Promise.resolve();
    if (end !== undefined) {
      const p = Promise.reject(end);
      p.catch(() => {});
      return p;
    }
    if (!this.#readClosed) {
      this.#readClosed = Promise.withResolvers<void>();
      this.#readClosed.promise.catch(() => {});
    }
    return this.#readClosed.promise;
  }
}

/** ReceiveBody's direct reader (see ReceiveBody.reader). `releaseLock()` does nothing. */
class BodyReader implements ReadableStreamDefaultReader<Uint8Array> {
  readonly #body: ReceiveBody;
  constructor(body: ReceiveBody) {
    this.#body = body;
  }
  get closed(): Promise<void> {
    return this.#body.readClosed;
  }
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    return this.#body.read();
  }
  cancel(): Promise<void> {
    this.#body.cancelRead();
    return Promise.resolve();
  }
  releaseLock(): void {}
}

/** What a send body needs from its stream and connection. */
export interface BodySender {
  /** Takes up to `want` bytes of send credit (stream, connection, max frame size); 0 = wait. */
  reserve(want: number): number;
  /** Queues a DATA frame; `notify.taken()` once its bytes left the connection's queue. */
  queueData(data: Uint8Array, endStream: boolean, notify: TakenListener | undefined): void;
  /** Called before the END_STREAM of `close()`: false if no DATA END_STREAM is to be sent. */
  beforeEnd(): boolean;
  /** The END_STREAM of `close()` has been queued. */
  ended(): void;
  /** The writable was aborted by its user. */
  abort(): void;
}

/**
 * Our side's body: each write is cut into DATA frames as credit allows and resolves once its
 * bytes have left the connection's queue, so at most one chunk per stream waits there and a peer
 * that stops reading stalls the writer instead of growing our memory.
 */
export class SendBody implements TakenListener, BodySink {
  #sender: BodySender;
  #error: Error | undefined;
  #waiting: "window" | "taken" | undefined;
  #resolveWait: (() => void) | undefined;
  #rejectWait: ((e: Error) => void) | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  #controller: WritableStreamDefaultController | undefined;
  #writer: BodyWriter | undefined;
  /** Closed before any writer was taken (a request whose HEADERS carried END_STREAM). */
  #closedEarly = false;

  constructor(sender: BodySender) {
    this.#sender = sender;
  }

  /** The body as a WritableStream, made on first use. A producer takes this or `writer`. */
  get writable(): WritableStream<Uint8Array> {
    if (this.#writable) return this.#writable;
    if (this.#writer) throw new TypeError("Cannot take the writable: the body has a direct writer");
    const writable = this.#writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        if (this.#error) controller.error(this.#error);
      },
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
      abort: () => this.abort(),
    });
    if (this.#closedEarly && !this.#error) writable.close().catch(() => {});
    return writable;
  }

  /**
   * A writer of the body without a WritableStream under it (BodyWriter: the same contract, one
   * chunk at a time), for a relay or a VLESS connection.
   */
  get writer(): WritableStreamDefaultWriter<Uint8Array> {
    if (this.#writer) return this.#writer;
    if (this.#writable) throw new TypeError("Cannot take a writer: the body has a writable");
    const writer = this.#writer = new BodyWriter(this);
    if (this.#error) writer.fail(this.#error);
    else if (this.#closedEarly) writer.close().catch(() => {});
    return writer;
  }

  /** Ends the body before anyone took a writer (END_STREAM went with the HEADERS). */
  closeEarly(): void {
    this.#closedEarly = true;
  }

  get waitingForWindow(): boolean {
    return this.#waiting === "window";
  }

  /** The send window may have grown. */
  wakeWindow(): void {
    if (this.#waiting === "window") this.#settle();
  }

  /** The bytes of the last write left the connection's queue. */
  taken(): void {
    if (this.#waiting === "taken") this.#settle();
  }

  /** Pending and later writes fail with `err`. */
  fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    if (this.#rejectWait) {
      const reject = this.#rejectWait;
      this.#waiting = this.#resolveWait = this.#rejectWait = undefined;
      reject(err);
    }
    try {
      this.#controller?.error(err);
    } catch {
      // Already closed or errored.
    }
    this.#writer?.fail(err);
  }

  #wait(kind: "window" | "taken"): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting = kind;
      this.#resolveWait = resolve;
      this.#rejectWait = reject;
    });
  }

  #settle(): void {
    const resolve = this.#resolveWait;
    this.#waiting = this.#resolveWait = this.#rejectWait = undefined;
    resolve?.();
  }

  // ---- BodySink: one operation at a time (the writable's or the writer's queue sees to it) ----

  /** The user aborted the writable or the writer. */
  abort(): void {
    this.#sender.abort();
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error;
    let off = 0;
    const length = chunk.byteLength;
    while (off < length) {
      const n = this.#sender.reserve(length - off);
      if (n <= 0) {
        await this.#wait("window");
        continue;
      }
      const last = off + n === length;
      this.#sender.queueData(chunk.subarray(off, off + n), false, last ? this : undefined);
      off += n;
    }
    if (length === 0) return;
    // Resolves once every DATA frame cut from the chunk has been copied into a connection write:
    // the writer may reuse the chunk then (the streams' copiesWrites; the relay gives lent chunks
    // back to their lender).
    await this.#wait("taken");
  }

  async close(): Promise<void> {
    if (this.#error) throw this.#error;
    if (!this.#sender.beforeEnd()) return;
    this.#sender.queueData(EMPTY, true, this);
    const taken = this.#wait("taken");
    this.#sender.ended();
    await taken;
  }
}
