/**
 * When a reader of a stream download should get what is pending now, and when it should wait a
 * moment for more: the WebSocket client's side of Nagle's trade, made only for sustained downloads.
 *
 * Why: over Deno's TLS one read is one record, v2ray's ws server sends ~4 KiB records, and a relay
 * into a Deno.Conn takes each chunk at once (its write completes at once on loopback). So a reader
 * that keeps up was handed one or two records at a time: measured 27.5k socket writes of ~9.5 KiB
 * per 256 MiB, 2.4 CPU s/GiB, where gathering ~28 KiB per chunk took 1.9 (dray client, v2ray
 * server, 256 MiB downloads). Each chunk costs a stream read, a relay step and a socket write.
 *
 * The wait is bounded: at most {@link HOLD_MS}, and only while the connection has been moving at
 * least {@link STREAM_BYTES} per {@link WINDOW_MS} (a bulk transfer, not a request/response or a
 * TLS handshake), with less than {@link GATHER_BYTES} pending. Small reads never wait (the caller
 * asks only for bulk reads).
 */

/** A waiting reader gets at least this much at once, unless the hold runs out. */
export const GATHER_BYTES = 32 * 1024;
/** The longest a waiting reader is kept waiting for more. */
export const HOLD_MS = 1;
/** What a window must carry for the connection to count as a bulk transfer. */
export const STREAM_BYTES = 256 * 1024;
export const WINDOW_MS = 50;

export class DeliveryPacer {
  readonly #flush: () => void;
  #windowStart = 0;
  #windowBytes = 0;
  /** This window or the last carried STREAM_BYTES. */
  #streaming = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /** `flush` hands on what is pending, if the reader still waits; called when a hold runs out. */
  constructor(flush: () => void) {
    this.#flush = flush;
  }

  /** `n` bytes went to the reader. */
  delivered(n: number): void {
    const now = performance.now();
    if (now - this.#windowStart > WINDOW_MS) {
      // The last window's rate carries over one window, so the end of a download still gathers.
      this.#streaming = this.#windowBytes >= STREAM_BYTES;
      this.#windowStart = now;
      this.#windowBytes = 0;
    }
    this.#windowBytes += n;
    if (this.#windowBytes >= STREAM_BYTES) this.#streaming = true;
  }

  /**
   * Whether a waiting reader should wait for more than `pending` bytes. If so, `flush` is due
   * within HOLD_MS (one timer at a time).
   */
  hold(pending: number): boolean {
    if (!this.#streaming || pending >= GATHER_BYTES || this.#closed) return false;
    this.#timer ??= setTimeout(this.#fire, HOLD_MS);
    return true;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#flush();
  };
}
