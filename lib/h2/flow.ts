/**
 * HTTP/2 flow control (RFC 9113 §5.2, §6.9) as plain arithmetic: no I/O, no errors thrown — the
 * caller knows whether a violation is a stream or a connection error.
 */
import { MAX_WINDOW_SIZE } from "./frame.ts";

/** Send side: how many bytes the peer lets us send. */
export class SendWindow {
  #size: number;

  constructor(initial: number) {
    this.#size = initial;
  }

  /** Bytes we may send now; may be negative after the peer shrinks SETTINGS_INITIAL_WINDOW_SIZE. */
  get size(): number {
    return this.#size;
  }

  /** Takes `n` bytes of credit for a DATA frame (the caller sends at most `size`). */
  consume(n: number): void {
    if (n > this.#size) {
      throw new RangeError(`Cannot send ${n} bytes: window is ${this.#size}`);
    }
    this.#size -= n;
  }

  /**
   * Applies a WINDOW_UPDATE increment, or the difference a SETTINGS_INITIAL_WINDOW_SIZE change
   * makes (RFC 9113 §6.9.2, possibly negative). False if the window would pass 2^31-1, which
   * RFC 9113 §6.9.1 makes a FLOW_CONTROL_ERROR; the window is then left unchanged.
   */
  add(delta: number): boolean {
    if (this.#size + delta > MAX_WINDOW_SIZE) return false;
    this.#size += delta;
    return true;
  }
}

/**
 * Unsent credit worth a WINDOW_UPDATE for a window of `size`: an eighth of it, at least 64 KiB and
 * at most 1 MiB. Every WINDOW_UPDATE is a socket write for us (a TLS record) and a wake-up for the
 * peer; at a fixed 64 KiB a 4 MiB-window upload sent ~16 000 of them per GiB, and on our server
 * (node:tls) writing them cost about a quarter of its CPU. With an eighth, the sender still holds
 * at least 7/8 of the window at all times, so it never stalls for credit.
 */
export function defaultThreshold(size: number): number {
  return Math.min(Math.max(64 * 1024, size / 8), 1024 * 1024);
}

export interface ReceiveWindowOptions {
  /**
   * Return credit once this many consumed bytes are unsent, or half the window. Default: an
   * eighth of the window, at least 64 KiB and at most 1 MiB (see {@link defaultThreshold}).
   */
  threshold?: number;
}

/**
 * Receive side: what we advertised, what the peer may still send, and the consumed bytes whose
 * credit we have not yet returned. Credit is returned only as the consumer reads (`consume`), so
 * bytes buffered on our side never exceed the window we advertised.
 */
export class ReceiveWindow {
  #size: number;
  #available: number;
  #unsent = 0;
  #threshold: number | undefined;

  constructor(size: number, options: ReceiveWindowOptions = {}) {
    this.#size = size;
    this.#available = size;
    this.#threshold = options.threshold;
  }

  /** The window we advertise when everything received has been consumed. */
  get size(): number {
    return this.#size;
  }

  /** Bytes the peer may still send before it must wait for a WINDOW_UPDATE. */
  get available(): number {
    return this.#available;
  }

  /** Consumed bytes not yet returned in a WINDOW_UPDATE. */
  get unsent(): number {
    return this.#unsent;
  }

  /**
   * Accounts for `n` received flow-controlled bytes. False when the peer sent more than we allowed
   * (RFC 9113 §6.9.1: a FLOW_CONTROL_ERROR); the window is then left unchanged.
   */
  receive(n: number): boolean {
    if (n > this.#available) return false;
    this.#available -= n;
    return true;
  }

  /**
   * Marks `n` received bytes as consumed (read by the consumer, or dropped). Returns the increment
   * to send in a WINDOW_UPDATE now, or 0 while the unsent credit is below the threshold and below
   * half the window — batching keeps WINDOW_UPDATEs to a few per window's worth of data.
   */
  consume(n: number): number {
    this.#unsent += n;
    const threshold = this.#threshold ?? defaultThreshold(this.#size);
    if (this.#unsent < threshold && this.#unsent < this.#size / 2) return 0;
    return this.flush();
  }

  /** Returns all unsent credit now (0 if none), e.g. before the stream would otherwise stall. */
  flush(): number {
    const increment = this.#unsent;
    this.#unsent = 0;
    this.#available += increment;
    return increment;
  }

  /**
   * Raises the advertised window by `n` (we then send a WINDOW_UPDATE of `n` ourselves), as we do
   * for the connection window right after the preface. Throws past 2^31-1.
   */
  grow(n: number): void {
    if (this.#size + n > MAX_WINDOW_SIZE || this.#available + n > MAX_WINDOW_SIZE) {
      throw new RangeError(`Cannot grow window ${this.#size} by ${n}: past 2^31-1`);
    }
    this.#size += n;
    this.#available += n;
  }
}
