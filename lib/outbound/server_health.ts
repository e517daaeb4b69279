/**
 * Passive health of an outbound's servers (a `vnext` list, or a balancer's outbounds): pure
 * bookkeeping, no timers and no I/O — the caller reports what happened, the state answers which
 * server to try next and how long to wait before racing another.
 *
 * - A failure (dial, handshake, health check) marks the server down for a back-off that starts at
 *   1 s and doubles per consecutive failure up to 60 s; the first success marks it up and resets
 *   the back-off.
 * - `pick()` goes round-robin over the servers that are up (or whose back-off has run out: they
 *   get one trial, and no other request goes there while it runs); while any is up a down server
 *   is never picked. When every server is down it
 *   picks the one whose back-off ends first — a user with one server still wants each request to
 *   try it, and a refused dial costs a millisecond.
 * - Handshake times are smoothed per server as TCP smooths RTT (RFC 6298: SRTT, RTTVAR), and
 *   `raceDelay()` derives the wait before starting a parallel attempt from them, clamped to
 *   RFC 8305's bounds for a Connection Attempt Delay (§5: at least 100 ms, at most 2 s,
 *   250 ms when nothing is known).
 */

export interface ServerHealthOptions {
  /** The clock, in ms (default `performance.now`). Injectable for tests. */
  now?: () => number;
  /** The first back-off after a failure (default 1000 ms). */
  baseBackoffMs?: number;
  /** The longest back-off (default 60 000 ms). */
  maxBackoffMs?: number;
}

/** RFC 8305 §5: "A simple implementation can have a fixed delay … recommended … 250 ms". */
export const DEFAULT_RACE_DELAY_MS = 250;
/** RFC 8305 §5: "… a minimum value of 100 milliseconds … should not be less than 10 ms". */
export const MIN_RACE_DELAY_MS = 100;
/** RFC 8305 §5: "… a maximum value of 2 seconds". */
export const MAX_RACE_DELAY_MS = 2000;

/** What one server's state looks like from outside (logs, tests). */
export interface ServerState {
  up: boolean;
  /** Consecutive failures since the last success. */
  failures: number;
  /** When a down server may be tried again (the clock's ms); 0 when up. */
  retryAt: number;
  /** Smoothed handshake time in ms, or undefined before the first success. */
  srtt: number | undefined;
  /** The last failure's message, for logs. */
  lastError: string | undefined;
}

interface Entry {
  failures: number;
  retryAt: number;
  /** Held back (suspected) until then, without a failure counted. */
  holdUntil: number;
  srtt: number | undefined;
  rttvar: number;
  lastError: string | undefined;
}

export class ServerHealth {
  readonly #entries: Entry[];
  readonly #now: () => number;
  readonly #base: number;
  readonly #max: number;
  #next = 0;

  constructor(count: number, options: ServerHealthOptions = {}) {
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`ServerHealth needs at least one server, got ${count}`);
    }
    this.#entries = Array.from(
      { length: count },
      () => ({
        failures: 0,
        retryAt: 0,
        holdUntil: 0,
        srtt: undefined,
        rttvar: 0,
        lastError: undefined,
      }),
    );
    this.#now = options.now ?? (() => performance.now());
    this.#base = options.baseBackoffMs ?? 1000;
    this.#max = options.maxBackoffMs ?? 60_000;
    if (!(this.#base > 0) || !(this.#max >= this.#base)) {
      throw new RangeError(
        `back-off must satisfy 0 < base <= max, got base ${this.#base} ms, max ${this.#max} ms`,
      );
    }
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Whether server `i` may be picked now: never failed, succeeded since, or back-off over. */
  available(i: number): boolean {
    const e = this.#entry(i);
    const now = this.#now();
    return (e.failures === 0 || e.retryAt <= now) && e.holdUntil <= now;
  }

  /**
   * Server `i` is suspect (a stream on it has heard nothing for a while): new requests go
   * elsewhere for `ms` while a deadline decides, without a failure counted.
   */
  suspect(i: number, ms: number): void {
    const e = this.#entry(i);
    e.holdUntil = Math.max(e.holdUntil, this.#now() + ms);
  }

  /**
   * The next server to try, skipping `exclude` (servers this request already tried) and down
   * servers while any other is available. Returns undefined only when every server is excluded.
   */
  pick(exclude?: ReadonlySet<number>): number | undefined {
    const n = this.#entries.length;
    // Round-robin over available servers, starting after the last pick.
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      if (exclude?.has(i) || !this.available(i)) continue;
      this.#next = (i + 1) % n;
      const e = this.#entries[i];
      // A down server whose back-off ran out gets one trial: until it ends (failed() doubles the
      // back-off, succeeded() clears it) the others do not pile onto it too.
      if (e.failures > 0) e.retryAt = this.#now() + this.#backoff(e.failures);
      return i;
    }
    // Every untried server is down: the one that comes back first.
    let best: number | undefined;
    for (let i = 0; i < n; i++) {
      if (exclude?.has(i)) continue;
      if (best === undefined || this.#backAt(i) < this.#backAt(best)) best = i;
    }
    return best;
  }

  /** Server `i` failed to dial, handshake or answer a health check: down, back-off doubled. */
  failed(i: number, reason?: unknown): void {
    const e = this.#entry(i);
    e.failures++;
    e.retryAt = this.#now() + this.#backoff(e.failures);
    e.lastError = reason === undefined
      ? undefined
      : reason instanceof Error
      ? reason.message
      : String(reason);
  }

  /**
   * Server `i` completed a handshake (in `handshakeMs`, when measured): up, back-off reset, the
   * time folded into its estimate.
   */
  succeeded(i: number, handshakeMs?: number): void {
    const e = this.#entry(i);
    e.failures = 0;
    e.retryAt = 0;
    e.holdUntil = 0;
    e.lastError = undefined;
    if (handshakeMs === undefined || !(handshakeMs >= 0)) return;
    // RFC 6298 §2: the first sample sets SRTT = R, RTTVAR = R/2; later ones use α = 1/8, β = 1/4.
    if (e.srtt === undefined) {
      e.srtt = handshakeMs;
      e.rttvar = handshakeMs / 2;
    } else {
      e.rttvar = 0.75 * e.rttvar + 0.25 * Math.abs(e.srtt - handshakeMs);
      e.srtt = 0.875 * e.srtt + 0.125 * handshakeMs;
    }
  }

  /**
   * How long to let an attempt at server `i` run alone before starting the next server in
   * parallel: SRTT + 4·RTTVAR (TCP's retransmission timeout, "surely late by now"), from this
   * server's handshakes or, before it has any, the mean of the others'; clamped to RFC 8305's
   * [100 ms, 2 s], 250 ms when nothing was measured.
   */
  raceDelay(i: number): number {
    const e = this.#entry(i);
    let estimate: number | undefined;
    if (e.srtt !== undefined) {
      estimate = e.srtt + 4 * e.rttvar;
    } else {
      const known = this.#entries.filter((x) => x.srtt !== undefined);
      if (known.length > 0) {
        estimate = known.reduce((sum, x) => sum + x.srtt! + 4 * x.rttvar, 0) / known.length;
      }
    }
    if (estimate === undefined) return DEFAULT_RACE_DELAY_MS;
    return Math.min(MAX_RACE_DELAY_MS, Math.max(MIN_RACE_DELAY_MS, Math.round(estimate)));
  }

  /** Server `i` as it stands, for logs and tests. */
  state(i: number): ServerState {
    const e = this.#entry(i);
    const up = this.available(i);
    return {
      up,
      failures: e.failures,
      retryAt: e.failures === 0 ? 0 : e.retryAt,
      srtt: e.srtt,
      lastError: e.lastError,
    };
  }

  /** When server `i` may be picked again. */
  #backAt(i: number): number {
    const e = this.#entries[i];
    return Math.max(e.failures === 0 ? 0 : e.retryAt, e.holdUntil);
  }

  /** The back-off after `failures` consecutive failures: 1 s doubling, capped. */
  #backoff(failures: number): number {
    return Math.min(this.#max, this.#base * 2 ** Math.min(failures - 1, 30));
  }

  #entry(i: number): Entry {
    const e = this.#entries[i];
    if (e === undefined) {
      throw new RangeError(`server index ${i} out of range 0-${this.#entries.length - 1}`);
    }
    return e;
  }
}
