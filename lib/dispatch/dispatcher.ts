/**
 * Between inbounds and outbounds: an inbound hands over where a connection goes and who asked (a
 * {@link RouteContext}); the dispatcher asks the {@link Router} for an outbound, dials it bounded
 * by the dial deadline and the server's signal, relays with the policy timers, and writes the
 * connection's one access-log line, naming the outbound that carried it. Inbounds never see an
 * `Outbound`: this is their only way out.
 *
 * Two calls: `connect()` for inbounds that relay a byte stream (it opens, lets the inbound send its
 * success reply, relays and logs) and `open()` for inbounds that move the bytes themselves (HTTP
 * requests, UDP flows), which report their counts through `finish()`.
 */
import { errorMessage } from "../error_message.ts";
import type { Logger } from "../log.ts";
import { formatDestination, formatHostPort } from "../net/destination.ts";
import { unwatchAbort, watchAbort } from "../net/abort_watch.ts";
import { Deadlines } from "../net/deadline_queue.ts";
import type { Duplex, HeldDuplex } from "../net/duplex.ts";
import { relay, type RelayResult } from "../net/relay.ts";
import type { Outbound } from "../outbound/outbound.ts";
import type { Policy } from "./policy.ts";
import type { RouteContext } from "../net/route_context.ts";
import type { Route, Router } from "./router.ts";
import { sniffClient } from "./sniff_client.ts";
import { applySniffed } from "../routing/sniffer.ts";

/** v2ray's system dialer gives up after 16 s; an outbound that hangs longer is treated the same. */
export const DIAL_TIMEOUT_MS = 16_000;

export interface DispatcherOptions {
  router: Router;
  /** Where the access lines go. */
  logger: Logger;
  /** Bound on one dial, ms (default DIAL_TIMEOUT_MS). */
  dialTimeout?: number;
  /**
   * Inbound tag → the sniffed protocols whose server name replaces the destination (`sniffing`
   * with `enabled: true`; [] = sniff for the `protocol` rule field only). TCP only, as v2ray.
   */
  sniffing?: ReadonlyMap<string, readonly string[]>;
  /**
   * The timer queues of its connections' dial deadlines and relay idle checks (default: queues
   * that clear their timer whenever they empty). The app passes ones that keep it (`keepTimer`),
   * and closes them through `close()`.
   */
  deadlines?: Deadlines;
}

export interface DispatchOptions {
  /** Aborts dialing (and, for `connect()`, relaying): the server's shutdown. */
  signal: AbortSignal;
}

export interface ConnectOptions extends DispatchOptions {
  /** The relay timers (connIdle, uplinkOnly, downlinkOnly) of the user's level. */
  policy: Policy;
  /**
   * Called once the outbound is open, before any byte is relayed: the inbound's success reply (a
   * SOCKS REP 00, an HTTP 200). A rejection ends both sides; its message is the access line's.
   */
  onOpened?: () => Promise<void> | void;
}

/** How a dispatched connection went, as its access line says. */
export interface DispatchResult {
  /** The tag of the outbound that carried it; "" when routing failed before one was chosen. */
  outbound: string;
  /** "ok", or what ended the connection. */
  result: string;
  /** Bytes client → remote, and back. */
  up: number;
  down: number;
  /**
   * Set when no outbound could be opened (routing or dialing failed). The client was not touched:
   * the inbound sends its refusal (a SOCKS REP from the error) and closes it.
   */
  error?: unknown;
}

/** A connection opened for an inbound that moves the bytes itself. */
export interface Dispatched {
  readonly duplex: Duplex;
  /** The tag of the outbound that carries it. */
  readonly outbound: string;
  /** Closes the connection and writes its access line; once (later calls do nothing). */
  finish(outcome: { up: number; down: number; result?: string }): void;
}

export class Dispatcher {
  readonly #router: Router;
  readonly #logger: Logger;
  readonly #dialTimeout: number;
  /** The dial deadlines and relay idle checks of every connection, on a few shared timers. */
  readonly #deadlines: Deadlines;
  readonly #sniffing: ReadonlyMap<string, readonly string[]>;

  constructor(options: DispatcherOptions) {
    this.#router = options.router;
    this.#logger = options.logger;
    this.#dialTimeout = options.dialTimeout ?? DIAL_TIMEOUT_MS;
    this.#sniffing = options.sniffing ?? new Map();
    this.#deadlines = options.deadlines ?? new Deadlines();
  }

  /**
   * Stops the timers its connections' deadlines share (the app is closing, after its inbounds):
   * deadlines still pending never fire; connections dispatched later get a timer each.
   */
  close(): void {
    this.#deadlines.close();
  }

  /**
   * Opens the connection `route` asks for and relays `client` over it. Resolves when the relay
   * has ended (both sides closed) or the outbound could not be opened (`error` set; the client
   * untouched). Never rejects.
   */
  async connect(
    client: Duplex | HeldDuplex,
    route: RouteContext,
    options: ConnectOptions,
  ): Promise<DispatchResult> {
    const started = Date.now();
    const destOverride = this.#sniffing.get(route.inboundTag);
    if (destOverride && route.destination.network === "tcp") {
      return await this.#connectSniffed(client, route, options, destOverride, started);
    }
    let chosen: Route;
    let remote: Duplex;
    try {
      chosen = await this.#router.select(route);
    } catch (err) {
      return this.#log(
        route,
        { outbound: "", result: errorMessage(err), up: 0, down: 0 },
        started,
        undefined,
        err,
      );
    }
    const outbound = chosen.outbound;
    try {
      remote = await this.#dial(outbound, route, options.signal);
    } catch (err) {
      const failed = { outbound: outbound.tag, result: errorMessage(err), up: 0, down: 0 };
      return this.#log(route, failed, started, chosen, err);
    }
    if (options.onOpened) {
      try {
        await options.onOpened();
      } catch (err) {
        remote.close();
        client.close();
        const r = { outbound: outbound.tag, result: errorMessage(err), up: 0, down: 0 };
        return this.#log(route, r, started, chosen);
      }
    }
    const r = await relay(client, remote, {
      ...options.policy,
      signal: options.signal,
      deadlines: this.#deadlines,
    });
    return this.#log(
      route,
      {
        outbound: outbound.tag,
        result: describeRelay(r),
        up: r.up,
        down: r.down,
      },
      started,
      chosen,
    );
  }

  /**
   * v2ray 4.34's order with sniffing on: the client is told "connected" first (it sends nothing
   * before that), its first bytes are sniffed (bounded wait), the route gets the protocol and,
   * for a protocol in `destOverride`, the sniffed name with the port kept; then route and dial.
   * A failure after the reply can only close the client, as in v2ray.
   */
  async #connectSniffed(
    client: Duplex | HeldDuplex,
    original: RouteContext,
    options: ConnectOptions,
    destOverride: readonly string[],
    started: number,
  ): Promise<DispatchResult> {
    const fail = (chosen: Route | undefined, err: unknown, route: RouteContext) => {
      client.close();
      const outbound = chosen?.outbound.tag ?? "";
      const r = { outbound, result: errorMessage(err), up: 0, down: 0 };
      return this.#log(route, r, started, chosen);
    };
    try {
      await options.onOpened?.();
    } catch (err) {
      return fail(undefined, err, original);
    }
    const { client: held, sniffed } = await sniffClient(client);
    const { destination, protocol } = applySniffed(original.destination, sniffed, destOverride);
    const route: RouteContext = protocol ? { ...original, destination, protocol } : original;
    let chosen: Route;
    let remote: Duplex;
    try {
      chosen = await this.#router.select(route);
    } catch (err) {
      return fail(undefined, err, route);
    }
    try {
      remote = await this.#dial(chosen.outbound, route, options.signal);
    } catch (err) {
      return fail(chosen, err, route);
    }
    const r = await relay(held, remote, {
      ...options.policy,
      signal: options.signal,
      deadlines: this.#deadlines,
    });
    return this.#log(
      route,
      {
        outbound: chosen.outbound.tag,
        result: describeRelay(r),
        up: r.up,
        down: r.down,
      },
      started,
      chosen,
    );
  }

  /**
   * Opens the connection `route` asks for and hands it over; the caller moves the bytes and calls
   * `finish()` with the counts, which writes the access line. Rejects (after logging the line)
   * when routing or dialing failed.
   */
  async open(route: RouteContext, options: DispatchOptions): Promise<Dispatched> {
    const started = Date.now();
    let chosen: Route | undefined;
    let duplex: Duplex;
    try {
      chosen = await this.#router.select(route);
      duplex = await this.#dial(chosen.outbound, route, options.signal);
    } catch (err) {
      const outbound = chosen?.outbound.tag ?? "";
      this.#log(route, { outbound, result: errorMessage(err), up: 0, down: 0 }, started, chosen);
      throw err;
    }
    const tag = chosen.outbound.tag;
    let finished = false;
    return {
      duplex,
      outbound: tag,
      finish: ({ up, down, result = "ok" }) => {
        if (finished) return;
        finished = true;
        duplex.close();
        this.#log(route, { outbound: tag, result, up, down }, started, chosen);
      },
    };
  }

  /**
   * The access line of a connection that ended before it asked for any destination (a refused
   * handshake, a wrong password): no outbound, `destination` "" when none was read.
   */
  logUnrouted(
    line: {
      inboundTag: string;
      source: string;
      destination: string;
      result: string;
      up: number;
      down: number;
    },
    started: number,
  ): void {
    this.#logger.access({
      inbound: line.inboundTag,
      source: line.source,
      destination: line.destination || "-",
      outbound: "-",
      rule: "-",
      result: line.result,
      up: line.up,
      down: line.down,
      ms: Date.now() - started,
    });
  }

  /** Dials `outbound`, bounded by the dial deadline and `signal`; a late Duplex is closed. */
  async #dial(outbound: Outbound, route: RouteContext, signal: AbortSignal): Promise<Duplex> {
    signal.throwIfAborted();
    // One controller, one abort watch and one queued deadline per dial (no timer of its own): this
    // runs for every connection, and the caller's abort and the deadline both settle the race
    // directly (no listener on our own controller's signal, no second promise chain).
    const ac = new AbortController();
    let fail!: (reason: unknown) => void;
    const aborted = new Promise<never>((_, reject) => (fail = reject));
    const abort = (reason: unknown) => {
      ac.abort(reason);
      fail(reason);
    };
    const onAbort = () => abort(signal.reason);
    watchAbort(signal, onAbort);
    const ms = this.#dialTimeout;
    const deadline = this.#deadlines.add(
      ms,
      () => abort(new Deno.errors.TimedOut(`dial timed out after ${ms} ms`)),
    );
    try {
      // The outbound may ignore the signal; the race still bounds us.
      const opening = outbound.open(route.destination, { signal: ac.signal, route });
      opening.then((d) => ac.signal.aborted && d.close(), () => {});
      return await Promise.race([opening, aborted]);
    } finally {
      deadline.cancel();
      unwatchAbort(signal, onAbort);
    }
  }

  #log(
    route: RouteContext,
    r: DispatchResult,
    started: number,
    chosen: Route | undefined,
    error?: unknown,
  ): DispatchResult {
    this.#logger.access({
      inbound: route.inboundTag,
      source: formatHostPort(route.source.host, route.source.port),
      destination: formatDestination(route.destination),
      outbound: r.outbound || "-",
      rule: chosen ? chosen.rule ?? "default" : "-",
      result: r.result,
      up: r.up,
      down: r.down,
      ms: Date.now() - started,
    });
    if (error !== undefined) r.error = error;
    return r;
  }
}

/** The access-log result word for a finished relay. */
export function describeRelay(r: RelayResult): string {
  switch (r.ended) {
    case "eof":
    case "reset":
    case "half-closed":
      return "ok";
    case "idle":
      return "idle timeout";
    case "aborted":
      return "closed on shutdown";
    case "error":
      return r.error?.message ?? "error";
    case "cut":
      return `cut short${r.cutBy === "client" ? " by the client" : ""}: ${errorMessage(r.error)}`;
  }
}
