import type { Destination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { RelayResult } from "../net/relay.ts";
import type { Logger } from "../log.ts";
import type { Outbound } from "../outbound/outbound.ts";
import { waitAtMost } from "../net/wait_at_most.ts";

/** v2ray's per-level timeouts, in milliseconds. */
export interface Policy {
  /** Time allowed to read the proxy request (v2ray `handshake`, default 4 s). */
  handshake: number;
  connIdle: number;
  uplinkOnly: number;
  downlinkOnly: number;
}

/**
 * v2ray's level-0 defaults as its code has them since 4.23.4 (features/policy/policy.go:
 * 60 / 300 / 1 / 1 s); its docs' 4 / 300 / 2 / 5 are out of date. The config layer fills the
 * same values (lib/config/types.ts DEFAULT_LEVEL_POLICY).
 */
export const DEFAULT_POLICY: Policy = {
  handshake: 60_000,
  connIdle: 300_000,
  uplinkOnly: 1_000,
  downlinkOnly: 1_000,
};

/** What an inbound handler is given for one accepted connection. */
export interface InboundContext {
  /** The client's address, `host:port` (IPv6 in brackets). */
  source: string;
  /** The address the client connected to (for SOCKS5 UDP ASSOCIATE replies); default 127.0.0.1. */
  localAddress?: string;
  outbound: Outbound;
  policy: Policy;
  logger: Logger;
  /** Aborts on server shutdown. */
  signal: AbortSignal;
}

/** One access-log line's worth of outcome, returned by a handler; the server adds the rest. */
export interface InboundResult {
  /** `tcp:host:port`, or "" when the request never got that far. */
  destination: string;
  /** "ok", or what ended the connection. */
  result: string;
  up: number;
  down: number;
}

/** Serves one accepted connection. Never throws: failures are reported in the result. */
export interface InboundHandler {
  handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult>;
}

/** What a datagram inbound (tunnel over UDP) is given for its socket. */
export interface DatagramContext extends Omit<InboundContext, "source"> {
  /** Records one access-log line for a finished flow (one per client address). */
  report(source: string, result: InboundResult, ms: number): void;
}

/** Serves a UDP socket until it closes. Never throws. */
export interface DatagramHandler {
  serveDatagrams(socket: Deno.DatagramConn, ctx: DatagramContext): Promise<void>;
}

/** v2ray's system dialer gives up after 16 s; an outbound that hangs longer is treated the same. */
export const DIAL_TIMEOUT_MS = 16_000;

/** Opens `dest` on the context's outbound, bounded by DIAL_TIMEOUT_MS and the server's signal. */
export async function openOutbound(ctx: InboundContext, dest: Destination): Promise<Duplex> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) ac.abort(ctx.signal.reason);
  const timer = setTimeout(
    () => ac.abort(new Deno.errors.TimedOut(`dial timed out after ${DIAL_TIMEOUT_MS} ms`)),
    DIAL_TIMEOUT_MS,
  );
  try {
    // The outbound may ignore the signal; the race still bounds us, and a late Duplex is closed.
    const opening = ctx.outbound.open(dest, { signal: ac.signal });
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener("abort", () => reject(ac.signal.reason), { once: true });
    });
    opening.then((d) => ac.signal.aborted && d.close(), () => {});
    return await Promise.race([opening, aborted]);
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener("abort", onAbort);
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
  }
}

/** An error's message with its causes, for logs: `dial tcp:x:1 failed: connection refused`. */
export function errorMessage(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 4; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ") || "error";
}

/** True when `err` or one of its causes is an instance of `cls`. */
export function hasCause(err: unknown, cls: abstract new (...args: never[]) => Error): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof cls) return true;
    e = (e as Error).cause;
  }
  return false;
}

/** Splits `host:port` / `[v6]:port` into its parts. */
export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  let host = i < 0 ? s : s.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: i < 0 ? 0 : Number(s.slice(i + 1)) };
}

/**
 * Closes `conn` unless `done()` is called within `ms`: the handshake deadline. Returns the
 * function that disarms it.
 */
export function deadline(conn: Duplex, ms: number, onFire?: () => void): () => void {
  const timer = setTimeout(() => {
    onFire?.();
    conn.close();
  }, ms);
  return () => clearTimeout(timer);
}

/** How long a refused client gets to read our reply and close before we cut it off. */
export const LINGER_MS = 1_000;

/**
 * Ends a connection after an error reply without losing the reply: half-closes our side (FIN),
 * then reads and discards what the client still sends (at most 64 KiB, at most LINGER_MS) before
 * closing. Closing a socket with unread input sends a RST, which can destroy the reply in flight.
 */
export async function lingeringClose(
  conn: Duplex,
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reader: { read(): Promise<Uint8Array | null> },
): Promise<void> {
  const drain = async () => {
    await writer.close().catch(() => {});
    try {
      for (let total = 0; total < 64 * 1024;) {
        const chunk = await reader.read();
        if (chunk === null) break;
        total += chunk.byteLength;
      }
    } catch {
      // A reset is an ending too.
    }
  };
  await waitAtMost(drain(), LINGER_MS);
  conn.close();
}

/**
 * A deadline that moves with activity: fires `onFire` once `ms` pass without `touch()`. One
 * timer per connection, re-armed lazily, so a busy connection does not reset a timer per chunk.
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

/**
 * Serves one connection (or HTTP/2 stream) with `handler` and writes its access-log line. Never
 * throws: a handler that throws is a bug, logged, and kept inside its connection.
 */
export async function serveOne(
  handler: InboundHandler,
  conn: Duplex,
  ctx: InboundContext,
  tag: string,
): Promise<void> {
  const started = Date.now();
  let result: InboundResult;
  try {
    result = await handler.handle(conn, ctx);
  } catch (err) {
    ctx.logger.error(`inbound "${tag}" ${ctx.source}: handler failed: ${errorMessage(err)}`);
    result = { destination: "", result: errorMessage(err), up: 0, down: 0 };
  }
  logAccess(ctx.logger, tag, ctx.source, ctx.outbound.tag, result, Date.now() - started);
}

/** One access-log line for a finished connection or flow. */
export function logAccess(
  logger: Logger,
  inbound: string,
  source: string,
  outbound: string,
  result: InboundResult,
  ms: number,
): void {
  logger.access({
    inbound,
    source,
    destination: result.destination || "-",
    outbound,
    result: result.result,
    up: result.up,
    down: result.down,
    ms,
  });
}
