import type { Deadline, Deadlines } from "./deadline_queue.ts";

/**
 * A deadline that moves with activity: fires `onFire` once `ms` pass without `touch()`, checked
 * as v2ray's activity timer does — every `ms`, whether anything happened since the last check — so
 * a connection idle for `ms` ends within `2 × ms` at the latest (at `ms` if it never was active).
 * `touch()` only sets a flag: no clock read or timer per chunk. With `deadlines` (the dispatcher's)
 * the checks of every connection share one timer per length, instead of one timer each.
 * A limit of 0 or less, or Infinity, never fires.
 */
export class IdleTimer {
  #ms: number;
  #active = false;
  #deadline: Deadline | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onFire: () => void;
  #deadlines: Deadlines | undefined;

  constructor(ms: number, onFire: () => void, deadlines?: Deadlines) {
    this.#ms = ms;
    this.#onFire = onFire;
    this.#deadlines = deadlines;
    this.#arm();
  }

  touch(): void {
    this.#active = true;
  }

  /** A new limit, counted from now. */
  set(ms: number): void {
    this.#ms = ms;
    this.#active = false;
    this.#arm();
  }

  stop(): void {
    this.#deadline?.cancel();
    this.#deadline = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    this.stop();
    const ms = this.#ms;
    if (!(ms > 0 && ms < Infinity)) return;
    if (this.#deadlines) {
      this.#deadline = this.#deadlines.add(ms, this.#check);
      return;
    }
    this.#timer = setTimeout(this.#check, ms);
  }

  #check = (): void => {
    this.#deadline = undefined;
    this.#timer = undefined;
    if (!this.#active) {
      this.#onFire();
      return;
    }
    this.#active = false;
    this.#arm();
  };
}
