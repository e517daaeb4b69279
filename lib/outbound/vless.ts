/**
 * The VLESS outbound: picks a server and user, dials it through a {@link Transport}, and wraps the
 * stream so that the request header leaves with the first payload and the response header is
 * stripped before the payload reaches the caller.
 *
 * What we do differently from v2ray 4.34, on purpose:
 * - we never wait for the server's response before sending (4.34's http dialer waits for the
 *   response HEADERS, a round trip per connection);
 * - the returned readable ends the moment the server's stream ends (half-close passes straight
 *   through; 4.34's client holds the EOF for about 2 s);
 * - UDP datagrams up to 65535 bytes are carried (4.34 drops those over 2046 bytes silently).
 */
import { formatDestination, formatHostPort } from "../net/destination.ts";
import type { Destination } from "../net/destination.ts";
import { DeadlineQueue } from "../net/deadline_queue.ts";
import type { Duplex } from "../net/duplex.ts";
import { Logger } from "../log.ts";
import { toError } from "../error_message.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";
import type { ServerAddress, Transport } from "../transport/transport.ts";
import { ServerHealth, type ServerHealthOptions } from "./server_health.ts";
import { encodeRequestHeader, MUX_HOST, type VlessCommand } from "../vless/header.ts";
import { VlessConnection, type VlessConnectionOwner } from "./vless_connection.ts";

export interface VlessUser {
  /** The 16 bytes of the user's UUID. */
  id: Uint8Array;
  /**
   * Only "" (or absent): every flow v2ray 4.34 knows is an XTLS flow, which needs `security:
   * "xtls"`, and dray has no XTLS. The config refuses them by name; so does the constructor.
   */
  flow?: string;
}

export interface VlessServer extends ServerAddress {
  users: VlessUser[];
}

export interface VlessOutboundOptions {
  tag: string;
  /** Every `vnext` entry; connections go round-robin over them. */
  servers: VlessServer[];
  transport: Transport;
  logger?: Logger;
  /** Uniform in [0, 1); picks the user. Injectable for tests. */
  random?: () => number;
  /** Waits between dial attempts. Injectable for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * The deadline of one attempt in ms — for TCP and TLS the connect and handshake; for the http
   * transport the wait for a pooled connection, whose own dial has the same deadline
   * (default {@link DEFAULT_ATTEMPT_TIMEOUT_MS}; 0 = none).
   */
  attemptTimeout?: number;
  /** The health state's clock and back-off. Injectable for tests. */
  health?: ServerHealthOptions;
}

/** v2ray dials 5 times: `retry.ExponentialBackoff(5, 200)`. */
export const DIAL_ATTEMPTS = 5;
/** The wait after failed attempt k (0-based) is k × 200 ms: 0, 200, 400, 600 (as v2ray). */
export const DIAL_BACKOFF_STEP_MS = 200;
/** A TLS handshake is 2-3 round trips: 4 s leaves room for a 1 s RTT, not for a dead server. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 4000;
/** How long the header waits for the client's first bytes, so both leave in one write (as v2ray). */
export const FIRST_PAYLOAD_WAIT_MS = 100;

export class VlessOutbound implements Outbound, VlessConnectionOwner {
  readonly tag: string;
  readonly #servers: VlessServer[];
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #health: ServerHealth;
  readonly #attemptTimeout: number;
  readonly #closing = new AbortController();
  readonly #open = new Set<VlessConnection>();
  /**
   * The first-payload wait of every connection, one timer for all; left running when none waits
   * (connections one after another would arm and clear one each), stopped by close().
   */
  readonly headerWait = new DeadlineQueue(FIRST_PAYLOAD_WAIT_MS, { keepTimer: true });

  constructor(options: VlessOutboundOptions) {
    if (options.servers.length === 0) {
      throw new TypeError("VlessOutbound needs at least one server");
    }
    for (const s of options.servers) {
      if (s.users.length === 0) {
        throw new TypeError(`VLESS server ${formatHostPort(s.address, s.port)} has no users`);
      }
      for (const u of s.users) {
        if (u.flow) {
          throw new TypeError(
            `VLESS server ${formatHostPort(s.address, s.port)}: flow "${u.flow}" (XTLS) is not ` +
              `supported by dray`,
          );
        }
      }
    }
    this.tag = options.tag;
    this.#servers = options.servers;
    this.#transport = options.transport;
    this.#logger = options.logger ?? Logger.silent();
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleep;
    this.#attemptTimeout = options.attemptTimeout ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    if (!(this.#attemptTimeout >= 0)) {
      throw new RangeError(`attemptTimeout must be >= 0 ms, got ${this.#attemptTimeout}`);
    }
    this.#health = new ServerHealth(options.servers.length, options.health);
    const indexOf = (server: ServerAddress) =>
      this.#servers.findIndex((s) => s.address === server.address && s.port === server.port);
    this.#transport.watch?.({
      up: (server, ms) => {
        const i = indexOf(server);
        if (i >= 0) this.#health.succeeded(i, ms);
      },
      down: (server, err) => {
        const i = indexOf(server);
        if (i >= 0) this.#markDown(i, err);
      },
      suspect: (server, ms) => {
        const i = indexOf(server);
        if (i >= 0) this.#health.suspect(i, ms);
      },
    });
  }

  async open(dest: Destination, options: OpenOptions = {}): Promise<Duplex> {
    const { signal } = options;
    signal?.throwIfAborted();
    const command: VlessCommand = dest.host === MUX_HOST
      ? "mux"
      : dest.network === "udp"
      ? "udp"
      : "tcp";
    const user = (server: VlessServer) =>
      server.users[Math.floor(this.#random() * server.users.length)];
    const first = this.#health.pick()!;
    // A pooled stream with room needs no attempt: no deadline, race or signal of its own.
    const now = this.#transport.openNow?.(this.#servers[first]);
    if (now && !this.#transport.watch) this.#health.succeeded(first);
    const { attempt, server, duplex } = now
      ? { attempt: 1, server: this.#servers[first], duplex: now }
      : await this.#race(dest, signal, first);
    const header = encodeRequestHeader({ userId: user(server).id, command, dest, flow: "" });
    if (this.#logger.enabled("debug")) {
      this.#logger.debug(
        `vless: tunneling ${formatDestination(dest)} via ${
          formatHostPort(server.address, server.port)
        } (${this.#transport.name}, attempt ${attempt})`,
      );
    }
    const conn = new VlessConnection(duplex, header, command === "udp", dest, this);
    this.#open.add(conn);
    return conn;
  }

  /**
   * Up to {@link DIAL_ATTEMPTS} attempts over the servers the health state offers (`first` picked
   * already), RFC 8305 style: an attempt that has not finished after the race delay gets company —
   * the next untried server starts in parallel — and the first to succeed wins. A failed attempt is followed at
   * once by the next untried server; only when every server failed in this round does it wait
   * (v2ray's 0/200/400/600 ms) before the next round. Losers still running are not cut off: their
   * outcome is news for the health state, and a success is closed at once.
   */
  async #race(
    dest: Destination,
    signal: AbortSignal | undefined,
    first: number,
  ): Promise<{ attempt: number; server: VlessServer; duplex: Duplex }> {
    const n = this.#servers.length;
    const tried = new Set<number>();
    const running = new Set<Attempt>();
    const failures: string[] = [];
    let started = 0;
    let lastFailed = -1;
    const start = () => {
      const index = started === 0 ? first : this.#health.pick(tried)!;
      tried.add(index);
      const attempt = new Attempt(this, index, ++started, signal);
      running.add(attempt);
      return attempt;
    };
    try {
      let last = start();
      // Each round settles one attempt or starts one; at most DIAL_ATTEMPTS starts in all.
      for (;;) {
        const canRace = started < DIAL_ATTEMPTS && tried.size < n;
        const settled = await waitFirst(
          [...running].map((a) => a.result.then(() => a)),
          canRace ? this.#health.raceDelay(last.index) : undefined,
          signal,
        );
        if (settled === undefined) {
          // The race delay passed without an answer: the next server joins.
          last = start();
          continue;
        }
        running.delete(settled);
        const r = await settled.result;
        if (r.ok) {
          return {
            attempt: settled.number,
            server: this.#servers[settled.index],
            duplex: r.duplex,
          };
        }
        failures.push(`#${settled.number} ${settled.where}: ${r.error.message}`);
        lastFailed = settled.number - 1;
        if (running.size > 0) continue;
        if (started >= DIAL_ATTEMPTS) break;
        if (tried.size >= n) {
          // Every server failed this round: wait as v2ray does, then start over.
          await this.#sleep(lastFailed * DIAL_BACKOFF_STEP_MS, signal);
          signal?.throwIfAborted();
          tried.clear();
        }
        last = start();
      }
    } finally {
      // Attempts still running are losers now (or the caller gave up): they finish on their own.
      for (const a of running) a.lose();
    }
    failures.sort((x, y) =>
      Number(x.slice(1, x.indexOf(" "))) - Number(y.slice(1, y.indexOf(" ")))
    );
    throw new Error(
      `failed to reach a VLESS server for ${formatDestination(dest)} after ${started} ` +
        `attempts: ${failures.join("; ")}`,
    );
  }

  close(): Promise<void> {
    this.#closing.abort(new Error(`outbound ${this.tag} closed`));
    for (const conn of [...this.#open]) conn.close();
    this.headerWait.close();
    this.#transport.close();
    return Promise.resolve();
  }

  // ---- for Attempt ----

  get transport(): Transport {
    return this.#transport;
  }

  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get attemptTimeout(): number {
    return this.#attemptTimeout;
  }

  server(index: number): VlessServer {
    return this.#servers[index];
  }

  /** An attempt's outcome, for the health state (a pooling transport reports its own). */
  attempted(index: number, outcome: { ms: number } | { error: Error }): void {
    if (this.#transport.watch) return;
    if ("ms" in outcome) this.#health.succeeded(index, outcome.ms);
    else this.#markDown(index, outcome.error);
  }

  #markDown(index: number, err: Error): void {
    const wasUp = this.#health.available(index);
    this.#health.failed(index, err);
    if (wasUp) {
      const s = this.#servers[index];
      const st = this.#health.state(index);
      this.#logger.warn(
        `vless: server ${formatHostPort(s.address, s.port)} marked down for ${
          Math.round(st.retryAt - performance.now())
        } ms: ${err.message}`,
      );
    }
  }

  /** Health of each server, for logs and tests. */
  get health(): ServerHealth {
    return this.#health;
  }

  // ---- for VlessConnection ----

  /** The connection was torn down. */
  closed(conn: VlessConnection): void {
    this.#open.delete(conn);
  }

  get logger(): Logger {
    return this.#logger;
  }
}

type AttemptResult = { ok: true; duplex: Duplex } | { ok: false; error: Error };

/**
 * One connection attempt: the transport's open() under the attempt deadline, the caller's signal
 * and the outbound's close. `result` never rejects. A loser that succeeds closes what it got.
 */
class Attempt {
  readonly index: number;
  readonly number: number;
  readonly where: string;
  readonly result: Promise<AttemptResult>;
  #lost = false;

  constructor(owner: VlessOutbound, index: number, number: number, signal?: AbortSignal) {
    this.index = index;
    this.number = number;
    const server = owner.server(index);
    this.where = formatHostPort(server.address, server.port);
    this.result = this.#run(owner, server, signal);
  }

  /**
   * The race is over without this attempt: whatever it gets is closed, including a stream its
   * open() already returned (it answered in the same turn as the winner, or as the caller's abort).
   */
  lose(): void {
    this.#lost = true;
    this.result.then((r) => {
      if (r.ok) r.duplex.close();
    });
  }

  async #run(
    owner: VlessOutbound,
    server: VlessServer,
    signal: AbortSignal | undefined,
  ): Promise<AttemptResult> {
    const deadline = new AbortController();
    const limit = owner.attemptTimeout;
    const timer = limit > 0
      ? setTimeout(
        () => deadline.abort(new Error(`no connection within ${limit} ms (attempt deadline)`)),
        limit,
      )
      : undefined;
    const signals = [deadline.signal, owner.closing];
    if (signal) signals.push(signal);
    const started = performance.now();
    try {
      const duplex = await owner.transport.open(server, AbortSignal.any(signals));
      owner.attempted(this.index, { ms: performance.now() - started });
      if (this.#lost || signal?.aborted || owner.closing.aborted) {
        duplex.close();
        return { ok: false, error: new Error("lost the race") };
      }
      return { ok: true, duplex };
    } catch (err) {
      // The caller or the outbound gave up: that says nothing about the server.
      if (signal?.aborted || owner.closing.aborted) {
        return { ok: false, error: toError(signal?.aborted ? signal.reason : err) };
      }
      const error = deadline.signal.aborted ? deadline.signal.reason as Error : toError(err);
      owner.attempted(this.index, { error });
      return { ok: false, error };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The first of `promises` to settle (they never reject), or undefined after `ms` (when given);
 * rejects when `signal` aborts.
 */
function waitFirst<T>(
  promises: Promise<T>[],
  ms: number | undefined,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  signal?.throwIfAborted();
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = ms === undefined ? undefined : setTimeout(() => finish(undefined), ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const finish = (v: T | undefined) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(v);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    for (const p of promises) p.then(finish);
  });
}

/** Waits `ms`, or rejects when `signal` aborts: {@link waitFirst} with nothing to wait for. */
async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms > 0) await waitFirst([], ms, signal);
}
