/**
 * A deadline that moves with activity: fires `onFire` once `ms` pass without `touch()`. One
 * timer per connection, re-armed lazily, so a busy connection does not reset a timer per chunk.
 * A limit of 0 or less, or Infinity, never fires.
 */
export class IdleTimer {
  #ms: number;
  #last = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onFire: () => void;

  constructor(ms: number, onFire: () => void) {
    this.#ms = ms;
    this.#onFire = onFire;
    this.#arm(ms);
  }

  touch(): void {
    this.#last = Date.now();
  }

  /** A new limit, counted from now. */
  set(ms: number): void {
    this.#ms = ms;
    this.#last = Date.now();
    this.#arm(ms);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    this.stop();
    if (!(this.#ms > 0 && this.#ms < Infinity)) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const idle = Date.now() - this.#last;
      if (idle >= this.#ms) this.#onFire();
      else this.#arm(this.#ms - idle);
    }, delay);
  }
}
