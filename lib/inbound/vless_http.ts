/**
 * The server side of v2ray's "http" transport (also called "h2"): every proxied connection is one
 * HTTP/2 request stream — request body = uplink, response body = downlink, full duplex — served
 * by Deno.serve. With TLS it offers ALPN h2 (and http/1.1, which Deno.serve always adds); without
 * TLS it speaks cleartext HTTP/2 with prior knowledge (h2c), for use behind a TLS-terminating
 * reverse proxy, as v2ray's server does.
 *
 * As v2ray 4.34's listener: a request whose Host (`:authority`) is not in the host list, or whose
 * path does not start with the configured path, gets 404; any other gets 200 with
 * `cache-control: no-store` at once, before any body byte, and its stream is handed to the
 * inbound handler (VLESS). An X-Forwarded-For address, when present, is the source in the logs.
 *
 * Differences, on purpose: an empty host list accepts any host (v2ray accepts only
 * "www.example.com" then); and the downlink's end is sent as END_STREAM the moment the handler
 * ends it (v2ray's listener holds a finished stream for about a second).
 */
import type { Logger } from "../log.ts";
import { addressKind, formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { duplexPair } from "../net/duplex_pair.ts";
import type { Outbound } from "../outbound/outbound.ts";
import {
  errorMessage,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  type Policy,
} from "./inbound.ts";

export interface VlessHttpServerOptions {
  /** The inbound's tag, for the access log. */
  tag: string;
  /** Listen address; default 127.0.0.1. */
  hostname?: string;
  /** 0 picks a free port (see `port`). */
  port: number;
  /** Certificate chain and key (PEM text). Without it the listener speaks h2c. */
  tls?: { cert: string; key: string };
  /** `httpSettings.host`: accepted `:authority` values; empty or absent = any. */
  host?: string[];
  /** `httpSettings.path`: requests must start with it; normalized to start with "/". */
  path?: string;
  /** Serves each accepted stream (a VlessInbound). */
  handler: InboundHandler;
  outbound: Outbound;
  policy: Policy;
  logger: Logger;
}

/** v2ray's path rule: empty → "/", otherwise a leading "/" is added when missing. */
function normalizePath(path: string | undefined): string {
  if (!path) return "/";
  return path.startsWith("/") ? path : `/${path}`;
}

export class VlessHttpServer {
  readonly tag: string;
  readonly #options: VlessHttpServerOptions;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #hosts: Set<string>;
  readonly #path: string;
  readonly #shutdown = new AbortController();
  readonly #streams = new Set<Duplex>();
  readonly #tasks = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;

  constructor(options: VlessHttpServerOptions) {
    this.tag = options.tag;
    this.#options = options;
    // Host names compare case-insensitively; URL parsing lowercases the request's the same way.
    this.#hosts = new Set((options.host ?? []).map((h) => h.toLowerCase()));
    this.#path = normalizePath(options.path);
    this.#server = Deno.serve({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port,
      ...(options.tls ?? {}),
      onListen: () => {},
      onError: (err) => {
        options.logger.error(`inbound "${this.tag}": ${errorMessage(err)}`);
        return new Response(null, { status: 500 });
      },
    }, (req, info) => this.#respond(req, info));
  }

  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  get port(): number {
    return this.#server.addr.port;
  }

  /** Streams being served right now. */
  get active(): number {
    return this.#streams.size;
  }

  #respond(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    const url = new URL(req.url);
    if (
      (this.#hosts.size > 0 && !this.#hosts.has(url.host)) ||
      !url.pathname.startsWith(this.#path) || this.#shutdown.signal.aborted
    ) {
      this.#options.logger.info(
        `inbound "${this.tag}": 404 for ${req.method} ${url.host}${url.pathname} from ${
          formatHostPort(info.remoteAddr.hostname, info.remoteAddr.port)
        }`,
      );
      // Read what the client is still sending before the stream goes: a request body left unread
      // when the response ends gets the stream reset, and some clients then report the reset
      // instead of the 404.
      discard(req.body);
      return new Response(null, { status: 404 });
    }
    // The downlink: what the handler writes to `down.writable` becomes the response body, with
    // at most the pair's 64 KiB buffered while the client's window is shut.
    const [down, body] = duplexPair();
    const stream = new RequestStream(req.body, down);
    this.#streams.add(stream);
    const task = this.#serve(stream, sourceOf(req, info)).finally(() => {
      stream.close();
      this.#streams.delete(stream);
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
    return new Response(body.readable, { status: 200, headers: { "cache-control": "no-store" } });
  }

  async #serve(stream: RequestStream, source: string): Promise<void> {
    const { handler, logger, outbound, policy, tag } = this.#options;
    const started = Date.now();
    const ctx: InboundContext = {
      source,
      localAddress: this.addr.hostname,
      outbound,
      policy,
      logger,
      signal: this.#shutdown.signal,
    };
    let result: InboundResult;
    try {
      result = await handler.handle(stream, ctx);
    } catch (err) {
      // Handlers report failures in their result; this is a bug, but it stays in its stream.
      logger.error(`inbound "${tag}" ${source}: handler failed: ${errorMessage(err)}`);
      result = { destination: "", result: errorMessage(err), up: 0, down: 0 };
    }
    logger.access({
      inbound: tag,
      source,
      destination: result.destination || "-",
      outbound: outbound.tag,
      result: result.result,
      up: result.up,
      down: result.down,
      ms: Date.now() - started,
    });
  }

  /**
   * Stops accepting, lets open streams finish for up to `graceMs`, then resets the rest and waits
   * for their handlers and the listener to finish.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const stopped = this.#server.shutdown();
    if (graceMs > 0 && this.#tasks.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      await Promise.race([Promise.all([...this.#tasks]), expired]);
      clearTimeout(timer);
    }
    this.#shutdown.abort(new Deno.errors.Interrupted("inbound closing"));
    for (const s of this.#streams) s.close();
    await Promise.all([...this.#tasks]);
    await stopped;
  }
}

/** What a refused request may still send: at most this much is read, for at most this long. */
const DISCARD_BYTES = 64 * 1024;
const DISCARD_MS = 1_000;

/** Reads and drops a request body, bounded in bytes and time, then lets it go. */
function discard(body: ReadableStream<Uint8Array> | null): void {
  if (!body) return;
  const reader = body.getReader();
  const timer = setTimeout(() => reader.cancel().catch(() => {}), DISCARD_MS);
  (async () => {
    for (let total = 0; total < DISCARD_BYTES;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.byteLength;
    }
    await reader.cancel();
  })().catch(() => {}).finally(() => clearTimeout(timer));
}

/** The client's address for logs: the first X-Forwarded-For entry when it is an IP, as v2ray. */
function sourceOf(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): string {
  const forwarded = req.headers.get("x-forwarded-for")?.split(",")[0].trim();
  if (forwarded && addressKind(forwarded) !== "domain") return formatHostPort(forwarded, 0);
  return formatHostPort(info.remoteAddr.hostname, info.remoteAddr.port);
}

/**
 * One request stream as a Duplex: `readable` is the request body (uplink), `writable` feeds the
 * response body (downlink); closing it ends the response (END_STREAM). `close()` stops reading
 * the request and ends the response: cleanly when nothing was sent yet — a refused request looks
 * like v2ray's, an empty 200 — and with RST_STREAM otherwise, so a cut download is visible as one.
 */
class RequestStream implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly #down: Duplex;
  readonly #downWriter: WritableStreamDefaultWriter<Uint8Array>;
  readonly #body: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #started = false;
  #closed = false;

  constructor(body: ReadableStream<Uint8Array> | null, down: Duplex) {
    this.#down = down;
    const writer = down.writable.getWriter();
    this.#downWriter = writer;
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        this.#started = true;
        return writer.write(chunk);
      },
      close: () => writer.close(),
      abort: (reason) => writer.abort(reason),
    });
    const reader = body?.getReader();
    this.#body = reader;
    // Our own stream in front of the body, so close() can end a read in progress even while the
    // handler holds the lock.
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (!reader || this.#closed) return controller.close();
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => {
        reader?.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#body?.cancel().catch(() => {});
    // Resetting is a no-op for a response body that already ended.
    if (this.#started) return this.#down.close();
    this.#downWriter.close().catch(() => {}).finally(() => this.#down.close());
  }
}
