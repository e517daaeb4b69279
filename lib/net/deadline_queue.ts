/**
 * Deadlines for many connections on few timers: a connection's handshake, dial and idle limits.
 *
 * Each connection used to arm a setTimeout of its own per limit and clear it again (four per
 * proxied connection), nearly always before it fired. In Deno 2.9 a timer is a node-style Timeout
 * object (~1.7 KB of heap each, measured), its handle registration and its entry in the runtime's
 * timer list. Deadlines of one length fall due in the order they were set, so they form a FIFO
 * whose head arms the only timer; a deadline cancelled early stays in the queue and is skipped
 * when reached. When the queue empties its timer is cleared, or, with `keepTimer`, left to run
 * out (connections one after another would otherwise arm and clear one each): then the owner
 * closes the queues when it closes (`Deadlines.close()`).
 *
 * A deadline fires at its time or up to `slack` later (1/16 of its length, at most 50 ms), so
 * that deadlines falling due close together share one timer.
 */

/** One pending deadline. */
export interface Deadline {
  /** The deadline no longer matters: its callback will not run. Idempotent. */
  cancel(): void;
}

/** Longer delays than a timer takes (2^31 - 1 ms, ~24.8 days) would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Cancelled entries kept before the queue is compacted (when they also outnumber the pending). */
const COMPACT_AT = 1024;

class Entry implements Deadline {
  readonly due: number;
  #queue: DeadlineQueue | undefined;
  onExpire: (() => void) | undefined;

  constructor(queue: DeadlineQueue, due: number, onExpire: () => void) {
    this.#queue = queue;
    this.due = due;
    this.onExpire = onExpire;
  }

  cancel(): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    this.#queue = undefined;
    this.onExpire = undefined;
    queue.settled(true);
  }

  /** Called by the queue once the entry left it: the callback, unless cancelled. */
  expire(): void {
    const fn = this.onExpire;
    const queue = this.#queue;
    if (fn === undefined || queue === undefined) return;
    this.#queue = undefined;
    this.onExpire = undefined;
    queue.settled(false);
    fn();
  }
}

/** Deadlines of one length. */
export class DeadlineQueue {
  readonly ms: number;
  readonly #slack: number;
  #queue: Entry[] = [];
  #head = 0;
  /** Deadlines in the queue neither cancelled nor expired. */
  #pending = 0;
  /** Cancelled deadlines still in the queue. */
  #cancelled = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #firing = false;
  #closed = false;
  readonly #keepTimer: boolean;

  constructor(ms: number, options: DeadlinesOptions = {}) {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`a deadline must be a finite number of ms >= 0, got ${ms}`);
    }
    this.ms = ms;
    this.#slack = Math.min(ms / 16, 50);
    this.#keepTimer = options.keepTimer ?? false;
  }

  /** Deadlines pending now (for tests and stats). */
  get pending(): number {
    return this.#pending;
  }

  /** Entries held, cancelled ones not yet dropped included (for tests). */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Calls `onExpire` `ms` from now (up to the slack later), unless cancelled first. */
  add(onExpire: () => void): Deadline {
    if (this.#closed) return oneOff(this.ms, onExpire);
    const entry = new Entry(this, performance.now() + this.ms, onExpire);
    this.#queue.push(entry);
    this.#pending++;
    // A timer left running (for a deadline since cancelled) fires before this one is due; one
    // that is firing now re-arms for the oldest pending deadline when done.
    if (this.#timer === undefined && !this.#firing) this.#arm(entry.due);
    return entry;
  }

  /** Stops the timer; pending deadlines never fire. Later deadlines get a timer each. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let i = this.#head; i < this.#queue.length; i++) this.#queue[i].onExpire = undefined;
    this.#queue = [];
    this.#head = 0;
    this.#pending = this.#cancelled = 0;
  }

  /** For Entry: one deadline was cancelled (still queued) or expired (taken off the queue). */
  settled(cancelled: boolean): void {
    if (this.#closed) return;
    if (--this.#pending === 0) {
      // Nothing pending: the queue goes; the timer is cleared, or runs out (finds nothing, stops).
      if (!this.#keepTimer) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      this.#queue = [];
      this.#head = 0;
      this.#cancelled = 0;
      return;
    }
    if (!cancelled || ++this.#cancelled < COMPACT_AT || this.#cancelled < this.#pending) return;
    // Long limits that are nearly always cancelled (an idle limit) would pile up until the oldest
    // falls due: keep the pending ones only. Amortized O(1) per deadline.
    this.#queue = this.#queue.slice(this.#head).filter((e) => e.onExpire !== undefined);
    this.#head = 0;
    this.#cancelled = 0;
  }

  #arm(due: number): void {
    const delay = Math.ceil(due + this.#slack - performance.now());
    this.#timer = setTimeout(this.#fire, Math.min(MAX_TIMER_MS, Math.max(0, delay)));
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#firing = true;
    try {
      const now = performance.now();
      // Bounded by the queue's length: every entry leaves it at most once. A callback may drop
      // the queue (the last pending deadline) or add to it; either way this ends.
      for (let queue = this.#queue; this.#head < queue.length; queue = this.#queue) {
        const entry = queue[this.#head];
        if (entry.onExpire !== undefined && entry.due > now) break;
        queue[this.#head++] = undefined!;
        if (entry.onExpire === undefined) this.#cancelled--;
        entry.expire();
      }
      if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
    } finally {
      this.#firing = false;
      if (this.#head < this.#queue.length && !this.#closed) this.#arm(this.#queue[this.#head].due);
    }
  };
}

/** A deadline with a timer of its own (after the owner closed its queues). */
function oneOff(ms: number, onExpire: () => void): Deadline {
  const timer = setTimeout(onExpire, Math.min(MAX_TIMER_MS, ms));
  return { cancel: () => clearTimeout(timer) };
}

export interface DeadlinesOptions {
  /**
   * Leave a queue's timer running when its last pending deadline goes (it runs out once, finding
   * nothing): for an owner that closes the queues when it closes. Default: cleared.
   */
  keepTimer?: boolean;
}

/** An owner's deadline queues, one per length: what connections of a server or dispatcher share. */
export class Deadlines {
  readonly #queues = new Map<number, DeadlineQueue>();
  readonly #options: DeadlinesOptions;

  constructor(options: DeadlinesOptions = {}) {
    this.#options = options;
  }

  /** Calls `onExpire` `ms` from now (see DeadlineQueue), unless cancelled first. */
  add(ms: number, onExpire: () => void): Deadline {
    let queue = this.#queues.get(ms);
    if (!queue) this.#queues.set(ms, queue = new DeadlineQueue(ms, this.#options));
    return queue.add(onExpire);
  }

  /** Stops every queue's timer (the owner is closing): pending deadlines never fire. */
  close(): void {
    for (const q of this.#queues.values()) q.close();
  }
}
