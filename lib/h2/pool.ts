/**
 * HTTP/2 connections kept per key (destination + TLS settings), shared by many streams.
 *
 * A request goes to a usable connection for its key; when none is usable (none yet, all at the
 * peer's stream limit, or going away) one new connection is dialled — one dial in flight per key,
 * shared by everyone waiting. Connections leave the pool when they close, fail their health check,
 * or receive GOAWAY (they finish their streams outside it).
 */
import type { Duplex } from "../net/duplex.ts";
import { H2Connection, type H2ConnectionOptions, type H2Request } from "./connection.ts";
import { type H2Stream, isRetryable } from "./stream.ts";

export interface H2PoolOptions {
  dial: (key: string, signal?: AbortSignal) => Promise<Duplex>;
  connection?: H2ConnectionOptions;
}

/** Dials per request at most: each dial yields a connection with at least one free stream slot. */
const MAX_DIALS_PER_REQUEST = 4;

export class H2Pool {
  #dial: H2PoolOptions["dial"];
  #options: H2ConnectionOptions | undefined;
  #conns = new Map<string, H2Connection[]>();
  #dialing = new Map<string, Promise<H2Connection>>();
  /** Every connection not yet closed, including those going away, for close(). */
  #all = new Set<H2Connection>();
  #abort = new AbortController();

  constructor(options: H2PoolOptions) {
    this.#dial = options.dial;
    this.#options = options.connection;
  }

  /** Open connections that can still take new streams, across keys. */
  get connectionCount(): number {
    let n = 0;
    for (const list of this.#conns.values()) {
      for (const c of list) if (!c.goingAway) n++;
    }
    return n;
  }

  /**
   * Opens a stream for `req` on a connection for `key`. Retries once on a new connection when the
   * chosen one refused it before sending anything (it went away or filled up meanwhile).
   */
  async request(key: string, req: H2Request, signal?: AbortSignal): Promise<H2Stream> {
    for (let attempt = 0;; attempt++) {
      const conn = await this.#get(key, signal);
      try {
        return conn.request(req);
      } catch (err) {
        if (attempt >= 1 || !isRetryable(err)) throw err;
      }
    }
  }

  /** Closes every connection (GOAWAY NO_ERROR) and aborts dials in flight. */
  close(): void {
    this.#abort.abort(new Error("H2Pool closed"));
    for (const c of this.#all) c.close();
    this.#all.clear();
    this.#conns.clear();
  }

  async #get(key: string, signal?: AbortSignal): Promise<H2Connection> {
    for (let dials = 0; dials < MAX_DIALS_PER_REQUEST;) {
      signal?.throwIfAborted();
      if (this.#abort.signal.aborted) throw this.#abort.signal.reason;
      const usable = this.#pick(key);
      if (usable) return usable;
      let pending = this.#dialing.get(key);
      if (!pending) {
        dials++;
        pending = this.#connect(key);
        this.#dialing.set(key, pending);
        const clear = () => {
          if (this.#dialing.get(key) === pending) this.#dialing.delete(key);
        };
        pending.then(clear, clear);
      }
      await abortable(pending, signal);
    }
    throw new Error(
      `Cannot open a stream for ${key}: ${MAX_DIALS_PER_REQUEST} new connections were all full`,
    );
  }

  /** A usable connection for `key`, dropping the ones going away from the list. */
  #pick(key: string): H2Connection | undefined {
    const list = this.#conns.get(key);
    if (!list) return undefined;
    // Oldest first: fill existing connections before newer ones, so spare ones can idle out.
    let found: H2Connection | undefined;
    for (let i = 0; i < list.length;) {
      const c = list[i];
      if (c.goingAway) {
        list.splice(i, 1);
        continue;
      }
      if (!found && c.usable) found = c;
      i++;
    }
    if (list.length === 0) this.#conns.delete(key);
    return found;
  }

  async #connect(key: string): Promise<H2Connection> {
    const duplex = await this.#dial(key, this.#abort.signal);
    if (this.#abort.signal.aborted) {
      duplex.close();
      throw this.#abort.signal.reason;
    }
    const conn = await H2Connection.connect(duplex, this.#options);
    if (this.#abort.signal.aborted) {
      conn.close();
      throw this.#abort.signal.reason;
    }
    this.#all.add(conn);
    const list = this.#conns.get(key) ?? [];
    list.push(conn);
    this.#conns.set(key, list);
    conn.closed.then(() => {
      this.#all.delete(conn);
      const l = this.#conns.get(key);
      const i = l?.indexOf(conn) ?? -1;
      if (i >= 0) l!.splice(i, 1);
      if (l?.length === 0) this.#conns.delete(key);
    });
    return conn;
  }
}

/** Waits for `p` unless `signal` aborts first (the shared work behind `p` goes on). */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
