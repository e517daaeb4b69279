/**
 * The stream-setup deadline of one pooled connection: a connection that has read nothing since a
 * stream was opened on it, for `limit` ms, is declared dead (`onSilent`). Anything read after a
 * stream opened — its own response HEADERS, another stream's DATA, a PING ACK — proves the server
 * alive for that stream, whether or not the stream was answered or is still wanted; so a stream
 * the client gave up on early still counts, and a slow target behind a live server never does
 * (v2ray's server sends the response HEADERS before it even reads the body).
 *
 * One timer per connection, armed for the oldest stream not yet covered by a read; the queue holds
 * open times only, and each firing drops every entry a read covers.
 */

export interface SilenceWatchOptions {
  /** ms a stream may wait with nothing read on the connection. */
  limit: number;
  /** When bytes last arrived on the connection (performance.now() ms). */
  lastReadAt: () => number;
  /** Called once, when the deadline passes in silence; the caller closes the connection. */
  onSilent: (waitedMs: number) => void;
  /**
   * Called when a stream has heard nothing for `suspectAfter` ms (before the deadline decides),
   * with the time left until it does.
   */
  onSuspect?: (leftMs: number) => void;
  /** ms of silence after which `onSuspect` is called (default a quarter of `limit`). */
  suspectAfter?: number;
  /** The clock (default performance.now). Injectable for tests. */
  now?: () => number;
}

export class SilenceWatch {
  readonly #opts: SilenceWatchOptions;
  readonly #now: () => number;
  /** Open times of streams not yet covered by a read, oldest first. */
  #opened: number[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;
  /** The open time of the stream we last raised suspicion for. */
  #suspected = -1;
  readonly #suspectAfter: number;

  constructor(options: SilenceWatchOptions) {
    this.#opts = options;
    this.#now = options.now ?? (() => performance.now());
    this.#suspectAfter = options.suspectAfter ?? options.limit / 4;
  }

  /** A stream was opened on the connection now. */
  opened(): void {
    if (this.#done) return;
    this.#opened.push(this.#now());
    if (this.#timer === undefined) this.#arm();
  }

  /** The connection is gone: no more deadlines. */
  stop(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#opened = [];
    this.#head = 0;
  }

  #arm(): void {
    const lastRead = this.#opts.lastReadAt();
    // Entries a read came after are covered. Bounded by the queue's length.
    while (this.#head < this.#opened.length && this.#opened[this.#head] <= lastRead) this.#head++;
    if (this.#head >= this.#opened.length) {
      this.#opened = [];
      this.#head = 0;
      return;
    }
    if (this.#head >= 1024) {
      this.#opened = this.#opened.slice(this.#head);
      this.#head = 0;
    }
    const oldest = this.#opened[this.#head];
    const due = this.#opts.onSuspect && this.#suspected !== oldest
      ? oldest + this.#suspectAfter
      : oldest + this.#opts.limit;
    this.#timer = setTimeout(this.#fire, Math.max(1, due - this.#now()));
  }

  #fire = (): void => {
    this.#timer = undefined;
    if (this.#done) return;
    const oldest = this.#opened[this.#head];
    const waited = this.#now() - oldest;
    const silent = this.#opts.lastReadAt() < oldest;
    if (silent && waited >= this.#opts.limit - 1) {
      this.stop();
      this.#opts.onSilent(waited);
      return;
    }
    if (
      silent && this.#opts.onSuspect && this.#suspected !== oldest &&
      waited >= this.#suspectAfter - 1
    ) {
      this.#suspected = oldest;
      this.#opts.onSuspect(this.#opts.limit - waited);
    }
    this.#arm();
  };
}
