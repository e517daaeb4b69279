/**
 * Xray's `observatory`: a real request through each subject outbound (the outbounds whose tags
 * start with one of `subjectSelector`), every `probeInterval`, to `probeUrl` — an HTTP GET, over
 * TLS for https, whose status must be 2xx. It records per outbound whether it is alive and its
 * delay (connect to the response head), for the health-aware balancer strategies. Probes go one
 * outbound after another (Xray's default), or all at once with `enableConcurrency`.
 *
 * Between probes, the dispatcher's own outcomes count too (passive health): `failed(tag)` marks
 * an outbound dead until its next successful probe or connection.
 */
import { formatHostPort } from "../net/destination.ts";
import type { Outbound } from "../outbound/outbound.ts";
import { Logger } from "../log.ts";
import { type ByteChannel, TracedChannel } from "./byte_channel.ts";
import { encodeGetRequest, readResponseStatus } from "./http_check.ts";
import { connectTlsChannel } from "./tls_channel.ts";

export const DEFAULT_PROBE_URL = "https://www.gstatic.com/generate_204";
/** Xray's default time between two probes of the same outbound. */
export const DEFAULT_PROBE_INTERVAL_MS = 10_000;
/** One probe may take this long (as Xray's burst observatory's 5 s), then counts as a failure. */
export const PROBE_TIMEOUT_MS = 5000;

export interface ObservatoryOptions {
  subjectSelector: string[];
  probeUrl?: string;
  probeIntervalMs?: number;
  enableConcurrency?: boolean;
  /** Every outbound; the subjects are picked by tag prefix. */
  outbounds: readonly Outbound[];
  logger?: Logger;
  /** CAs for an https probe target (tests); default the system roots. */
  caCerts?: string[];
  /** Per-probe deadline (default {@link PROBE_TIMEOUT_MS}). */
  probeTimeoutMs?: number;
}

export interface OutboundStatus {
  alive: boolean;
  /** The last successful probe's delay in ms. */
  delay: number | undefined;
  /** When it was last probed or reported (performance.now() ms); 0 = never. */
  lastSeen: number;
  lastError: string | undefined;
}

export class Observatory {
  readonly subjects: readonly Outbound[];
  readonly #url: URL;
  readonly #interval: number;
  readonly #concurrent: boolean;
  readonly #logger: Logger;
  readonly #caCerts: string[] | undefined;
  readonly #timeout: number;
  readonly #status = new Map<string, OutboundStatus>();
  readonly #abort = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | undefined;
  #closed = false;

  constructor(options: ObservatoryOptions) {
    this.subjects = options.outbounds.filter((o) =>
      options.subjectSelector.some((prefix) => o.tag.startsWith(prefix))
    );
    this.#url = new URL(options.probeUrl ?? DEFAULT_PROBE_URL);
    if (this.#url.protocol !== "http:" && this.#url.protocol !== "https:") {
      throw new TypeError(`observatory probeUrl must be http or https, got ${this.#url.href}`);
    }
    this.#interval = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.#concurrent = options.enableConcurrency ?? false;
    this.#logger = options.logger ?? Logger.silent();
    this.#caCerts = options.caCerts;
    this.#timeout = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
    for (const o of this.subjects) {
      this.#status.set(o.tag, {
        alive: true,
        delay: undefined,
        lastSeen: 0,
        lastError: undefined,
      });
    }
  }

  /** Starts probing: a first round at once, then one every probe interval. */
  start(): void {
    if (this.#closed || this.#round || this.subjects.length === 0) return;
    this.#round = this.probeAll();
  }

  /** The status of outbound `tag`, if it is a subject. */
  status(tag: string): Readonly<OutboundStatus> | undefined {
    return this.#status.get(tag);
  }

  /** A connection through `tag` failed (passive health): dead until it succeeds again. */
  failed(tag: string, err: unknown): void {
    const s = this.#status.get(tag);
    if (!s) return;
    s.alive = false;
    s.lastSeen = performance.now();
    s.lastError = err instanceof Error ? err.message : String(err);
  }

  /** A connection through `tag` worked: alive (the delay stays the probe's). */
  succeeded(tag: string): void {
    const s = this.#status.get(tag);
    if (!s) return;
    s.alive = true;
    s.lastSeen = performance.now();
    s.lastError = undefined;
  }

  /** One round of probes (sequential unless enableConcurrency), then the next is scheduled. */
  async probeAll(): Promise<void> {
    if (this.#concurrent) {
      await Promise.all(this.subjects.map((o) => this.#probeOne(o)));
    } else {
      for (const o of this.subjects) {
        if (this.#closed) return;
        await this.#probeOne(o);
      }
    }
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#round = this.probeAll();
    }, this.#interval);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort(new Error("observatory closed"));
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  async #probeOne(o: Outbound): Promise<void> {
    const s = this.#status.get(o.tag)!;
    try {
      const delay = await probeThrough(o, this.#url, {
        timeoutMs: this.#timeout,
        signal: this.#abort.signal,
        caCerts: this.#caCerts,
      });
      s.alive = true;
      s.delay = delay;
      s.lastError = undefined;
      this.#logger.debug(`observatory: ${o.tag} alive, ${Math.round(delay)} ms`);
    } catch (err) {
      if (this.#closed) return;
      if (s.alive) {
        this.#logger.warn(`observatory: ${o.tag} failed its probe: ${(err as Error).message}`);
      }
      s.alive = false;
      s.lastError = (err as Error).message;
    } finally {
      s.lastSeen = performance.now();
    }
  }
}

/**
 * A GET to `url` through `outbound`; resolves with the delay in ms (open to the response head),
 * rejects on a non-2xx status, a failure, or the deadline.
 */
export async function probeThrough(
  outbound: Outbound,
  url: URL,
  options: { timeoutMs: number; signal?: AbortSignal; caCerts?: string[] },
): Promise<number> {
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new Error(`no answer within ${options.timeoutMs} ms`)),
    options.timeoutMs,
  );
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  const start = performance.now();
  let channel: ByteChannel | undefined;
  const onAbort = () => channel?.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const conn = await outbound.open({ network: "tcp", host, port }, { signal });
    channel = new TracedChannel(conn);
    if (url.protocol === "https:") {
      channel = await connectTlsChannel(channel, { serverName: host, caCerts: options.caCerts });
    }
    signal.throwIfAborted();
    await channel.write(encodeGetRequest(url, "dray-observatory"));
    const status = await readResponseStatus(channel);
    if (status < 200 || status > 299) {
      throw new Error(`HTTP status ${status} from ${formatHostPort(host, port)}`);
    }
    return performance.now() - start;
  } catch (err) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    channel?.close();
  }
}
