/**
 * Is a VLESS server usable, and how fast: a GET to a test URL through that server alone, over the
 * transport `dray run` would use (TCP, TLS, v2ray's HTTP/2), the way v2rayN's "real delay" test
 * works — the delay is the best of a few requests, so a pooled HTTP/2 connection's second request
 * shows the delay without the handshakes.
 *
 * Each server goes through stages; a failure names the one that failed:
 *
 * - `tcp`: a TCP connection to the server (a separate one, closed at once: it tells a dead port
 *   or a dropped SYN from a stalled TLS handshake, which the transport's own dial cannot);
 * - `tls`: the transport's TLS handshake (certificate, name, ALPN);
 * - `transport`: the rest of the transport (HTTP/2: a status other than 200, a reset);
 * - `vless`: nothing came back for the VLESS request (wrong user id, the server could not reach
 *   the target, or not a VLESS server — a client cannot tell these apart);
 * - `http`: the target's answer: not HTTP, cut short, TLS to the target failed, or a non-2xx status.
 */
import type { VlessServer } from "../config/types.ts";
import type { ProbeTarget } from "./probe_targets.ts";
import { ConnectionError, StreamError } from "../h2/errors.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { VlessOutbound } from "../outbound/vless.ts";
import type { ServerAddress, Transport } from "../transport/transport.ts";
import { type ByteChannel, TracedChannel } from "./byte_channel.ts";
import { encodeGetRequest, readResponseStatus } from "./http_check.ts";
import { connectTlsChannel } from "./tls_channel.ts";
import { messageOf } from "../error_message.ts";

export type ProbeStage = "tcp" | "tls" | "transport" | "vless" | "http";

/** Milliseconds, rounded to 0.1. */
export interface ProbeTimings {
  /** The separate TCP handshake with the server. */
  tcp: number | null;
  /** The best try's transport setup: TCP + TLS (+ HTTP/2 stream), or a pooled stream. */
  connect: number | null;
  /** From the start of the best try to the first byte back through the server. */
  firstByte: number | null;
}

export interface ProbeResult {
  /** The outbound tag or link name. */
  name: string;
  /** host:port */
  server: string;
  ok: boolean;
  /** The best try's time from dialing to the response status, or null when it failed. */
  ms: number | null;
  status: number | null;
  stage: ProbeStage | null;
  error: string | null;
  timings: ProbeTimings;
  /** Tries made (fewer than asked when one failed). */
  tries: number;
}

export interface ProbeOptions {
  /** The URL to GET through each server (http or https). */
  url: URL;
  /** Requests per server; the delay is the best. Default 2. */
  tries?: number;
  /** Deadline for the TCP connection and for each try's transport setup. Default 3000. */
  connectTimeoutMs?: number;
  /** Deadline for the whole server, every try included. Default 9000. */
  timeoutMs?: number;
  /** With an https URL: trust only these CAs (PEM) for the target's certificate. */
  targetCaCerts?: string[];
  /** Sent as the request's User-Agent. */
  userAgent?: string;
  /** Builds the transport of a target's streamSettings (lib/app.ts createTransport). */
  createTransport: (target: ProbeTarget) => Transport;
}

export const PROBE_DEFAULTS = {
  url: "https://www.gstatic.com/generate_204",
  tries: 2,
  connectTimeoutMs: 3_000,
  timeoutMs: 9_000,
  concurrency: 16,
} as const;

/** A failure at a known stage; the message is what the user sees. */
class StageError extends Error {
  readonly stage: ProbeStage;
  readonly status: number | null;
  constructor(stage: ProbeStage, message: string, status: number | null = null) {
    super(message);
    this.stage = stage;
    this.status = status;
  }
}

/** Probes one server (see the module comment). Never throws: failures are in the result. */
export async function probeServer(target: ProbeTarget, opts: ProbeOptions): Promise<ProbeResult> {
  const tries = opts.tries ?? PROBE_DEFAULTS.tries;
  const connectTimeoutMs = opts.connectTimeoutMs ?? PROBE_DEFAULTS.connectTimeoutMs;
  const timeoutMs = opts.timeoutMs ?? PROBE_DEFAULTS.timeoutMs;
  const result: ProbeResult = {
    name: target.name,
    server: formatHostPort(target.server.address, target.server.port),
    ok: false,
    ms: null,
    status: null,
    stage: null,
    error: null,
    timings: { tcp: null, connect: null, firstByte: null },
    tries: 0,
  };
  const deadline = new Deadline(timeoutMs);
  const transport = new OneDialTransport(opts.createTransport(target));
  const outbound = new VlessOutbound({
    tag: target.name,
    servers: [serverOf(target.server)],
    transport,
    // One dial per try: a failed dial ends the try at once instead of retrying after a wait.
    sleep: () => Promise.reject(transport.lastError),
  });
  const stage = { current: "tcp" as ProbeStage };
  try {
    const tcp = await deadline.run(
      () => tcpHandshake(target.server, connectTimeoutMs),
      () => stage.current,
    );
    result.timings.tcp = round(tcp);
    let best: { ms: number; status: number; connect: number; firstByte: number } | undefined;
    for (let i = 0; i < tries; i++) {
      result.tries++;
      const t = await deadline.run(
        (signal) => oneTry(outbound, transport, target, opts, connectTimeoutMs, stage, signal),
        () => stage.current,
      );
      if (best === undefined || t.ms < best.ms) best = t;
    }
    result.ok = true;
    result.ms = round(best!.ms);
    result.status = best!.status;
    result.timings.connect = round(best!.connect);
    result.timings.firstByte = round(best!.firstByte);
  } catch (err) {
    const failure = err instanceof StageError ? err : new StageError(stage.current, messageOf(err));
    result.stage = failure.stage;
    result.error = failure.message;
    result.status = failure.status;
  } finally {
    deadline.clear();
    await outbound.close();
  }
  return result;
}

/**
 * Probes every target, `concurrency` at a time, in one process; `onResult` hears each result as
 * it comes (index = the target's position). Resolves with the results in input order.
 */
export async function probeAll(
  targets: readonly ProbeTarget[],
  opts: ProbeOptions & {
    concurrency?: number;
    onResult?: (result: ProbeResult, index: number) => void;
  },
): Promise<ProbeResult[]> {
  const results: ProbeResult[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    // Each round takes one target; targets.length bounds the rounds.
    while (next < targets.length) {
      const i = next++;
      results[i] = await probeServer(targets[i], opts);
      opts.onResult?.(results[i], i);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? PROBE_DEFAULTS.concurrency, targets.length));
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}

/** One GET through the server: dial, (TLS to the target,) request, response status. */
async function oneTry(
  outbound: VlessOutbound,
  transport: OneDialTransport,
  target: ProbeTarget,
  opts: ProbeOptions,
  connectTimeoutMs: number,
  stage: { current: ProbeStage },
  signal: AbortSignal,
): Promise<{ ms: number; status: number; connect: number; firstByte: number }> {
  const url = opts.url;
  const start = performance.now();
  stage.current = target.security === "tls" ? "tls" : "transport";
  const connectLimit = new Deadline(connectTimeoutMs);
  let conn: Duplex;
  try {
    conn = await connectLimit.run(
      (connectSignal) =>
        outbound.open(
          { network: "tcp", host: url.hostname.replace(/^\[|\]$/g, ""), port: urlPort(url) },
          { signal: AbortSignal.any([signal, connectSignal]) },
        ),
      () => stage.current,
    );
  } catch (err) {
    if (err instanceof StageError) throw err;
    throw dialFailure(transport.lastError ?? err);
  } finally {
    connectLimit.clear();
  }
  const connect = performance.now() - start;
  const traced = new TracedChannel(conn);
  let channel: ByteChannel = traced;
  const onAbort = () => channel.close();
  signal.addEventListener("abort", onAbort, { once: true });
  stage.current = "vless";
  try {
    try {
      if (url.protocol === "https:") {
        channel = await connectTlsChannel(traced, {
          serverName: url.hostname.replace(/^\[|\]$/g, ""),
          caCerts: opts.targetCaCerts,
        });
      }
      await channel.write(encodeGetRequest(url, opts.userAgent ?? "dray"));
      const status = await readResponseStatus(channel);
      const end = performance.now();
      if (status < 200 || status > 299) {
        throw new StageError("http", `HTTP status ${status} from ${url.host}`, status);
      }
      return { ms: end - start, status, connect, firstByte: traced.firstByteAt - start };
    } catch (err) {
      if (err instanceof StageError || signal.aborted) throw err;
      throw afterDialFailure(err, traced, url);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    channel.close();
  }
}

/** Where a failed dial failed: the transport's errors name TCP or TLS in their message. */
function dialFailure(err: unknown): StageError {
  const message = messageOf(err);
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (/^TCP connect to /.test(e.message)) return new StageError("tcp", message);
    if (/^TLS (setup|handshake)? ?with /.test(e.message)) return new StageError("tls", message);
  }
  return new StageError("transport", message);
}

/** A failure once the stream was open: nothing back → transport or VLESS; else the target's. */
function afterDialFailure(err: unknown, traced: TracedChannel, url: URL): StageError {
  if (traced.firstByteAt === 0) {
    // The layer below saw it first; TLS to the target would only say "socket closed".
    const cause = traced.firstError ?? err;
    const message = messageOf(cause);
    const status = /^unexpected status (\d+)/.exec(message);
    if (status) {
      return new StageError(
        "transport",
        `the server answered the HTTP/2 request with status ${status[1]} (wrong path or host?)`,
      );
    }
    if (cause instanceof ConnectionError || cause instanceof StreamError) {
      return new StageError("transport", message);
    }
    return new StageError("vless", message);
  }
  const what = url.protocol === "https:" ? `${url.host} (TLS or HTTP)` : url.host;
  return new StageError("http", `${what}: ${messageOf(err)}`);
}

/** A TCP handshake with the server and nothing else; resolves with its duration. */
async function tcpHandshake(server: ServerAddress, timeoutMs: number): Promise<number> {
  const start = performance.now();
  const limit = new Deadline(timeoutMs);
  try {
    const conn = await limit.run(
      (signal) => Deno.connect({ hostname: server.address, port: server.port, signal }),
      () => "tcp",
    );
    const ms = performance.now() - start;
    closeQuietly(conn);
    return ms;
  } catch (err) {
    if (err instanceof StageError) throw err;
    throw new StageError(
      "tcp",
      `TCP connect to ${formatHostPort(server.address, server.port)} failed: ${messageOf(err)}`,
    );
  } finally {
    limit.clear();
  }
}

/**
 * A timer that aborts work: `run()` races `fn` against it and turns the timeout into a
 * StageError for the stage the work is in.
 */
class Deadline {
  readonly #ms: number;
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #expired: Promise<never>;
  #stageAtExpiry: () => ProbeStage = () => "tcp";

  constructor(ms: number) {
    this.#ms = ms;
    const { promise, reject } = Promise.withResolvers<never>();
    this.#expired = promise;
    promise.catch(() => {});
    this.#timer = setTimeout(() => {
      const stage = this.#stageAtExpiry();
      const err = new StageError(stage, `timed out after ${this.#ms} ms (${stage} stage)`);
      reject(err);
      this.#controller.abort(err);
    }, ms);
  }

  run<T>(fn: (signal: AbortSignal) => Promise<T>, stage: () => ProbeStage): Promise<T> {
    this.#stageAtExpiry = stage;
    this.#controller.signal.throwIfAborted();
    const work = fn(this.#controller.signal);
    // A late rejection of the abandoned work is not news.
    work.catch(() => {});
    return Promise.race([work, this.#expired]);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * The real transport, remembering its last failure: the outbound's retry wait rethrows it, so a
 * try is one dial and its error is the transport's own.
 */
class OneDialTransport implements Transport {
  readonly #inner: Transport;
  lastError: unknown = undefined;

  constructor(inner: Transport) {
    this.#inner = inner;
  }

  get name(): string {
    return this.#inner.name;
  }

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    this.lastError = undefined;
    try {
      return await this.#inner.open(server, signal);
    } catch (err) {
      this.lastError = err;
      throw err;
    }
  }

  close(): void {
    this.#inner.close();
  }
}

function serverOf(s: VlessServer) {
  return {
    address: s.address,
    port: s.port,
    users: s.users.map((u) => ({ id: u.idBytes, flow: u.flow })),
  };
}

function urlPort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "https:" ? 443 : 80;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
