/**
 * A writer of a stream's body without a WritableStream under it: what a relay or a VLESS
 * connection holds (a HeldDuplex's writer). A proxied connection used to build a WritableStream
 * per HTTP/2 stream only to take its writer, and every chunk went through the stream's queue,
 * controller and webidl checks; this is the same contract — a WritableStreamDefaultWriter with a
 * high-water mark of one chunk — over the body's own write, close and abort.
 *
 * Writes and the close run one at a time, in order. A failed write, the body failing (a reset, the
 * connection ending) and `abort()` error the writer: queued writes, `ready` and `closed` reject.
 * `releaseLock()` does nothing: nobody else can take the body's writer.
 */

/** What the writer drives: one operation at a time (SendBody). */
export interface BodySink {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /** The writer was aborted by its user. */
  abort(): void;
}

interface Operation {
  /** undefined: the close. */
  chunk: Uint8Array | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const RESOLVED = Promise.resolve();

/** A promise nobody has to listen to: its rejection is never reported as unhandled. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

export class BodyWriter implements WritableStreamDefaultWriter<Uint8Array> {
  readonly #sink: BodySink;
  #state: "writable" | "closing" | "closed" | "errored" = "writable";
  #error: unknown;
  /** Operations not started yet, oldest first. */
  #queue: Operation[] = [];
  #busy = false;
  #ready: PromiseWithResolvers<void> | undefined;
  #closed: PromiseWithResolvers<void> | undefined;

  constructor(sink: BodySink) {
    this.#sink = sink;
  }

  /** 1 when a write would start at once, 0 while one is under way (or closing), null once errored. */
  get desiredSize(): number | null {
    if (this.#state === "errored") return null;
    if (this.#state !== "writable") return 0;
    return 1 - this.#queue.length - (this.#busy ? 1 : 0);
  }

  get ready(): Promise<void> {
    if (this.#state === "errored") return quiet(Promise.reject(this.#error));
    if (this.#state !== "writable" || (this.desiredSize ?? 0) > 0) return RESOLVED;
    if (!this.#ready) quiet((this.#ready = Promise.withResolvers<void>()).promise);
    return this.#ready.promise;
  }

  get closed(): Promise<void> {
    if (this.#state === "closed") return RESOLVED;
    if (this.#state === "errored") return quiet(Promise.reject(this.#error));
    if (!this.#closed) quiet((this.#closed = Promise.withResolvers<void>()).promise);
    return this.#closed.promise;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state === "errored") return Promise.reject(this.#error);
    if (this.#state !== "writable") {
      return Promise.reject(new TypeError("Cannot write to a body that is closing or closed"));
    }
    if (!this.#busy) {
      // Nothing queued (ops start in order): the sink's own promise serves as the write's.
      const p = this.#sink.write(chunk);
      this.#start(p, undefined);
      return p;
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ chunk, resolve, reject });
    });
  }

  close(): Promise<void> {
    if (this.#state === "errored") return Promise.reject(this.#error);
    if (this.#state !== "writable") {
      return Promise.reject(new TypeError("Cannot close a body that is closing or closed"));
    }
    this.#state = "closing";
    this.#resolveReady();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ chunk: undefined, resolve, reject });
      this.#next();
    });
  }

  abort(reason?: unknown): Promise<void> {
    if (this.#state === "closed" || this.#state === "errored") return RESOLVED;
    this.fail(reason);
    this.#sink.abort();
    return RESOLVED;
  }

  releaseLock(): void {}

  /** The body failed (or was aborted): everything pending and later rejects with `err`. */
  fail(err: unknown): void {
    if (this.#state === "closed" || this.#state === "errored") return;
    this.#state = "errored";
    this.#error = err;
    const queue = this.#queue;
    this.#queue = [];
    for (const op of queue) op.reject(err);
    this.#ready?.reject(err);
    this.#ready = undefined;
    this.#closed?.reject(err);
    this.#closed = undefined;
  }

  /** Starts the oldest queued operation, if none is under way. */
  #next(): void {
    if (this.#busy || this.#state === "errored") return;
    const op = this.#queue.shift();
    if (!op) return;
    this.#start(op.chunk ? this.#sink.write(op.chunk) : this.#sink.close(), op);
  }

  #start(p: Promise<void>, op: Operation | undefined): void {
    this.#busy = true;
    p.then(() => {
      this.#busy = false;
      op?.resolve();
      if (op && op.chunk === undefined) {
        this.#state = "closed";
        this.#closed?.resolve();
        this.#closed = undefined;
        return;
      }
      this.#next();
      if ((this.desiredSize ?? 0) > 0) this.#resolveReady();
    }, (err) => {
      this.#busy = false;
      // As a WritableStream whose sink rejected: the writer is errored.
      this.fail(err);
      op?.reject(err);
    });
  }

  #resolveReady(): void {
    this.#ready?.resolve();
    this.#ready = undefined;
  }
}
