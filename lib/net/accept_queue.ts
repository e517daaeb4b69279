/**
 * The hand-over between a listener's producer (a socket whose handshake finished, an HTTP/2 stream
 * or WebSocket that passed its checks) and `accept()`: the oldest caller waiting gets the next
 * connection; with nobody waiting, connections wait in order. Closing rejects every `accept()`
 * with `BadResource` and closes the connections nobody took, so none is dropped unseen.
 */
export class AcceptQueue<T extends { readonly duplex: { close(): void } }> {
  readonly #ready: T[] = [];
  readonly #waiters: PromiseWithResolvers<T>[] = [];
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  /** Connections waiting for an `accept()`. */
  get length(): number {
    return this.#ready.length;
  }

  /**
   * Hands `item` to the oldest `take()` waiting and returns true, or keeps it for the next one
   * and returns false. After close() the item is closed at once.
   */
  offer(item: T): boolean {
    if (this.#closed) {
      item.duplex.close();
      return true;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(item);
      return true;
    }
    this.#ready.push(item);
    return false;
  }

  /** The next connection. Rejects with `BadResource` once closed. */
  take(): Promise<T> {
    const next = this.#ready.shift();
    if (next) return Promise.resolve(next);
    if (this.#closed) return Promise.reject(closedError());
    const waiter = Promise.withResolvers<T>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  /** Takes `item` out if it is still waiting (e.g. it waited too long); true if it was. */
  remove(item: T): boolean {
    const i = this.#ready.indexOf(item);
    if (i < 0) return false;
    this.#ready.splice(i, 1);
    return true;
  }

  /** Rejects every `take()` waiting and closes every connection nobody took. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w.reject(closedError());
    for (const item of this.#ready.splice(0)) item.duplex.close();
  }
}

/** Deno's own wording for accept() on a closed listener. */
function closedError(): Error {
  return new Deno.errors.BadResource("Listener has been closed");
}
