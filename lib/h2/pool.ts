/**
 * HTTP/2 connections kept per key (destination + TLS settings), shared by many streams.
 *
 * A request goes to a usable connection for its key; when none is usable (none yet, all at the
 * peer's stream limit, or going away) one new connection is dialled — one dial in flight per key,
 * shared by everyone waiting. Connections leave the pool when they close, fail their health check,
 * or receive GOAWAY (they finish their streams outside it).
 */
import type { Duplex } from "../net/duplex.ts";
import { ConnectionError, ErrorCode } from "./errors.ts";
import { H2Connection, type H2ConnectionOptions, type H2Request } from "./connection.ts";
import { type H2Stream, isRetryable } from "./stream.ts";

export interface H2PoolOptions {
  dial: (key: string, signal?: AbortSignal) => Promise<Duplex>;
  connection?: H2ConnectionOptions;
  /**
   * The deadline of a new connection in ms: the dial (TCP connect, TLS handshake) and the peer's
   * SETTINGS together; past it the dial fails and the duplex is closed. 0 = none (default).
   */
  connectTimeout?: number;
  /** A new connection for `key` is ready, `ms` after its dial began (for passive health). */
  onConnected?: (key: string, ms: number) => void;
  /** A dial for `key` failed, or one of its connections died (health check, read error). */
  onFailed?: (key: string, err: Error) => void;
}

/** A stream and the connection it was opened on. */
export interface PooledStream {
  stream: H2Stream;
  connection: H2Connection;
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
  readonly #connectTimeout: number;
  readonly #onConnected: H2PoolOptions["onConnected"];
  readonly #onFailed: H2PoolOptions["onFailed"];
  /** Connections retired by us: their end is not a failure of the server. */
  readonly #retired = new WeakSet<H2Connection>();

  constructor(options: H2PoolOptions) {
    this.#dial = options.dial;
    this.#options = options.connection;
    this.#connectTimeout = options.connectTimeout ?? 0;
    this.#onConnected = options.onConnected;
    this.#onFailed = options.onFailed;
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
    return (await this.open(key, req, signal)).stream;
  }

  /**
   * Opens a stream at once when a connection for `key` has room (`request` makes the request only
   * then): what most requests on a warm pool find, with no promise, timer or signal of their own. Undefined when none has room
   * or the request fails there; `open()` then dials or waits, and reports why it cannot.
   */
  openNow(key: string, request: () => H2Request): PooledStream | undefined {
    if (this.#abort.signal.aborted) return undefined;
    const connection = this.#pick(key);
    if (!connection) return undefined;
    try {
      return { stream: connection.request(request()), connection };
    } catch {
      return undefined;
    }
  }

  /** As request(), also telling which connection the stream is on. */
  async open(key: string, req: H2Request, signal?: AbortSignal): Promise<PooledStream> {
    for (let attempt = 0;; attempt++) {
      const connection = await this.#get(key, signal);
      try {
        return { stream: connection.request(req), connection };
      } catch (err) {
        if (attempt >= 1 || !isRetryable(err)) throw err;
      }
    }
  }

  /**
   * Declares `conn` dead (a stream on it went unanswered past its deadline): it takes no new
   * streams and closes at once, failing the streams still on it — they would wait on a server
   * that stopped answering.
   */
  retire(conn: H2Connection): void {
    this.#retired.add(conn);
    conn.close();
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
    const started = performance.now();
    let conn: H2Connection;
    try {
      conn = await this.#handshake(key);
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#onFailed?.(key, err as Error);
      throw err;
    }
    if (this.#abort.signal.aborted) {
      conn.close();
      throw this.#abort.signal.reason;
    }
    this.#onConnected?.(key, performance.now() - started);
    this.#all.add(conn);
    const list = this.#conns.get(key) ?? [];
    list.push(conn);
    this.#conns.set(key, list);
    conn.closed.then((err) => {
      // A connection that died on its own (health check, read error, peer reset) is news about
      // the server; one we closed, or that ended with NO_ERROR, is not.
      if (
        err && !this.#abort.signal.aborted && !this.#retired.has(conn) &&
        !(err instanceof ConnectionError && err.code === ErrorCode.NO_ERROR)
      ) {
        this.#onFailed?.(key, err);
      }
      this.#all.delete(conn);
      const l = this.#conns.get(key);
      const i = l?.indexOf(conn) ?? -1;
      if (i >= 0) l!.splice(i, 1);
      if (l?.length === 0) this.#conns.delete(key);
    });
    return conn;
  }

  /** Dial + preface/SETTINGS, within the connect deadline when there is one. */
  async #handshake(key: string): Promise<H2Connection> {
    const limit = this.#connectTimeout;
    if (limit <= 0) {
      const duplex = await this.#dial(key, this.#abort.signal);
      if (this.#abort.signal.aborted) {
        duplex.close();
        throw this.#abort.signal.reason;
      }
      return await H2Connection.connect(duplex, this.#options);
    }
    const late = new AbortController();
    let duplex: Duplex | undefined;
    const timer = setTimeout(() => {
      late.abort(
        new Error(
          `connection to ${key} did not complete TCP + TLS + HTTP/2 SETTINGS within ${limit} ms`,
        ),
      );
      // Closing the duplex makes a connect() in progress fail at once.
      duplex?.close();
    }, limit);
    try {
      duplex = await this.#dial(key, AbortSignal.any([this.#abort.signal, late.signal]));
      if (this.#abort.signal.aborted || late.signal.aborted) {
        duplex.close();
        throw this.#abort.signal.aborted ? this.#abort.signal.reason : late.signal.reason;
      }
      return await H2Connection.connect(duplex, this.#options);
    } catch (err) {
      if (late.signal.aborted && !this.#abort.signal.aborted) throw late.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
    }
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
