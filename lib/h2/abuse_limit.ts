/**
 * Budgets for the abuse an HTTP/2 server must bound (RFC 9113 §10.5): a client that makes us do
 * work for frames that end up doing nothing — streams it opens and resets at once ("rapid reset",
 * CVE-2023-44487), and frames each of which forces a reply (SETTINGS, PING) while it never reads
 * the replies. Pure counting; the connection decides what to do when a budget runs out.
 */

export interface AbuseLimitOptions {
  /** How many events may come at once (the bucket's size). */
  burst: number;
  /** How many events per second may come for ever (the rate the bucket refills at). */
  perSecond: number;
  /** The clock, in milliseconds; injected by tests. */
  now?: () => number;
}

/**
 * A token bucket: starts full with `burst` tokens, each event spends one, and tokens come back at
 * `perSecond` up to `burst`. Events spaced at the rate never run out; a burst larger than `burst`
 * (or a sustained rate above `perSecond`, once the bucket has emptied) does.
 *
 * A bucket rather than a fixed window: it needs two numbers of state, and an attacker cannot
 * double its allowance by straddling a window boundary.
 */
export class AbuseLimit {
  readonly burst: number;
  readonly perSecond: number;
  #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: AbuseLimitOptions) {
    const { burst, perSecond } = options;
    if (!(burst >= 1)) throw new RangeError(`burst must be >= 1, got ${burst}`);
    if (!(perSecond >= 0)) throw new RangeError(`perSecond must be >= 0, got ${perSecond}`);
    this.burst = burst;
    this.perSecond = perSecond;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = burst;
    this.#last = this.#now();
  }

  /** Counts one event; false when the budget is exhausted (the event is over the limit). */
  spend(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Events that may come right now without exceeding the budget (whole ones). */
  get remaining(): number {
    this.#refill();
    return Math.floor(this.#tokens);
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = now - this.#last;
    this.#last = now;
    // A clock that steps back refills nothing.
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.perSecond / 1000);
    }
  }
}

/**
 * Streams a client may make us reset (its RST_STREAM on a stream we are serving, or a stream error
 * it provoked) before we go away with ENHANCE_YOUR_CALM. Each such stream may have started a
 * handler (for VLESS: parsing, authentication, an outbound dial) that the reset throws away, so
 * resets are the cost rapid reset multiplies.
 *
 * - burst 1000: about four times SETTINGS_MAX_CONCURRENT_STREAMS (256). A browser behind the proxy
 *   that closes a busy tab cancels every stream it has at once, and may do so a few times in a
 *   row; nothing legitimate resets more than that at once.
 * - 200 per second sustained: a v2ray client resets a stream when a proxied connection is
 *   aborted; hundreds of aborts per second, for minutes, is not a user. An attacker is held to
 *   200 wasted handler starts per second per connection, where rapid reset without a limit runs
 *   to tens of thousands — and it must open new connections (each with a TLS handshake) to do more.
 */
export const RESET_BURST = 1000;
export const RESET_PER_SECOND = 200;

/**
 * Urgent frames (SETTINGS ACK, PING ACK, WINDOW_UPDATE, RST_STREAM) that may wait unwritten before
 * we call the client abusive. A client that reads what we write keeps this near zero: the queue
 * empties on every write. One that sends PINGs or SETTINGS and never reads would grow it without
 * bound, one small allocation per frame it sent. A legitimate peak is a few hundred (a
 * WINDOW_UPDATE per stream, a reset per refused stream); 10 000 is far above that and still only
 * a few hundred KiB.
 */
export const MAX_QUEUED_URGENT = 10_000;
