/**
 * The server side of v2ray's "http" transport (also called "h2"): every proxied connection is one
 * HTTP/2 request stream — request body = uplink, response body = downlink, full duplex — served
 * by our own HTTP/2 server (lib/h2/server_connection.ts). With TLS it offers ALPN h2; without TLS
 * it speaks cleartext HTTP/2 with prior knowledge (h2c), for use behind a TLS-terminating reverse
 * proxy, as v2ray's server does.
 *
 * Why not Deno.serve: its sockets keep Nagle's algorithm on, so its small WINDOW_UPDATE and
 * HEADERS frames waited ~40 ms for the client's delayed ACK — uploads stalled once per window and
 * a stream whose client sent before our HEADERS paid ~40 ms. Our listener sets TCP_NODELAY (h2c,
 * and TLS when started with `V2rayHttpServer.listen()`, which uses node:tls).
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
import { ConnectionError, ErrorCode } from "../h2/errors.ts";
import { H2ServerConnection, type H2ServerStream } from "../h2/server_connection.ts";
import type { Logger } from "../log.ts";
import { ConnDuplex } from "../net/conn_duplex.ts";
import { addressKind, formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { TlsListener } from "../net/tls_listener.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { Policy } from "../dispatch/policy.ts";
import { errorMessage } from "../error_message.ts";
import type { InboundContext, InboundHandler } from "../inbound/inbound.ts";
import { serveOne } from "../inbound/server.ts";
import type { HostPort } from "../net/destination.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { normalizeHttpPath } from "./v2ray_http.ts";
import { waitAtMost } from "../net/wait_at_most.ts";

export interface V2rayHttpServerOptions {
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
  dispatcher: Dispatcher;
  policy: Policy;
  logger: Logger;
}

/** One accepted connection, whatever the listener. */
interface Accepted {
  duplex: Duplex;
  remote: { hostname: string; port: number };
}

/** The listeners we serve from: Deno's (TCP, or TLS without TCP_NODELAY) or node:tls's. */
interface Listener {
  accept(): Promise<Accepted>;
  close(): void;
}

export class V2rayHttpServer {
  readonly tag: string;
  readonly #options: V2rayHttpServerOptions;
  readonly #listener: Listener;
  readonly #addr: Deno.NetAddr;
  readonly #hosts: Set<string>;
  readonly #path: string;
  readonly #shutdown = new AbortController();
  readonly #conns = new Set<H2ServerConnection>();
  /** Duplexes accepted whose HTTP/2 preface has not finished yet. */
  readonly #handshaking = new Set<Duplex>();
  readonly #streams = new Set<StreamDuplex>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptDone: Promise<void>;
  #closing: Promise<void> | undefined;

  /**
   * Binds at once (errors such as `Deno.errors.AddrInUse` are thrown here). h2c only: TLS goes
   * through `V2rayHttpServer.listen()`, whose node:tls sockets have TCP_NODELAY (Deno's own TLS
   * listener cannot turn Nagle off: ~40 ms per new stream).
   */
  constructor(
    options: V2rayHttpServerOptions,
    listener?: { listener: Listener; addr: Deno.NetAddr },
  ) {
    this.tag = options.tag;
    this.#options = options;
    // Host names compare case-insensitively.
    this.#hosts = new Set((options.host ?? []).map((h) => h.toLowerCase()));
    this.#path = normalizeHttpPath(options.path);
    if (listener) {
      this.#listener = listener.listener;
      this.#addr = listener.addr;
    } else {
      const bound = bindDeno(options);
      this.#listener = bound.listener;
      this.#addr = bound.addr;
    }
    this.#acceptDone = this.#acceptLoop();
  }

  /**
   * Binds and resolves once listening. With `tls` it listens with node:tls (TlsListener) so every
   * socket has TCP_NODELAY; without, the same as the constructor.
   */
  static async listen(options: V2rayHttpServerOptions): Promise<V2rayHttpServer> {
    if (!options.tls) return new V2rayHttpServer(options);
    const tls = await TlsListener.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port,
      cert: options.tls.cert,
      key: options.tls.key,
      alpnProtocols: ["h2"],
      onError: (err, remote) =>
        options.logger.debug(
          `inbound "${options.tag}": TLS handshake with ${
            remote ? formatHostPort(remote.hostname, remote.port) : "a client"
          } failed: ${errorMessage(err)}`,
        ),
    });
    const listener: Listener = {
      accept: async () => {
        const a = await tls.accept();
        return { duplex: a.duplex, remote: a.remoteAddr };
      },
      close: () => tls.close(),
    };
    const addr: Deno.NetAddr = { transport: "tcp", ...tls.addr };
    return new V2rayHttpServer(options, { listener, addr });
  }

  get addr(): Deno.NetAddr {
    return this.#addr;
  }

  get port(): number {
    return this.#addr.port;
  }

  /** Streams being served right now. */
  get active(): number {
    return this.#streams.size;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let a: Accepted;
      try {
        a = await this.#listener.accept();
      } catch (err) {
        if (this.#closing) return;
        if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
          return;
        }
        // A failed accept (a TLS handshake gone wrong, EMFILE) ends one client, not the server.
        this.#options.logger.debug(`inbound "${this.tag}": accept failed: ${errorMessage(err)}`);
        continue;
      }
      if (this.#closing) {
        a.duplex.close();
        return;
      }
      void this.#serveConnection(a);
    }
  }

  async #serveConnection(a: Accepted): Promise<void> {
    const source = formatHostPort(a.remote.hostname, a.remote.port);
    this.#handshaking.add(a.duplex);
    let conn: H2ServerConnection;
    try {
      conn = await H2ServerConnection.accept(a.duplex, (s) => this.#onStream(s, a.remote));
    } catch (err) {
      this.#options.logger.debug(
        `inbound "${this.tag}": HTTP/2 handshake with ${source} failed: ${errorMessage(err)}`,
      );
      return;
    } finally {
      this.#handshaking.delete(a.duplex);
    }
    if (this.#closing) {
      conn.close();
      return;
    }
    this.#conns.add(conn);
    const err = await conn.closed;
    this.#conns.delete(conn);
    if (err) {
      // Cut off for abuse (rapid reset, unread ACK floods): worth an operator's attention.
      const abusive = err instanceof ConnectionError && err.code === ErrorCode.ENHANCE_YOUR_CALM;
      const line = `inbound "${this.tag}": HTTP/2 connection from ${source} ended: ${
        errorMessage(err)
      }`;
      if (abusive) this.#options.logger.warn(line);
      else this.#options.logger.debug(line);
    }
  }

  #onStream(stream: H2ServerStream, remote: { hostname: string; port: number }): void {
    const req = stream.request;
    const host = hostOf(req.scheme, req.authority);
    const pathname = req.path.split(/[?#]/, 1)[0];
    if (
      (this.#hosts.size > 0 && !this.#hosts.has(host)) || !pathname.startsWith(this.#path) ||
      this.#closing
    ) {
      this.#options.logger.info(
        `inbound "${this.tag}": 404 for ${req.method} ${req.authority}${pathname} from ${
          formatHostPort(remote.hostname, remote.port)
        }`,
      );
      stream.respond(404, [], { endStream: true });
      // Read what the client is still sending (bounded) so it sees the 404 rather than a reset;
      // past the bound, RST_STREAM NO_ERROR asks it to stop (RFC 9113 §8.1).
      discard(stream);
      return;
    }
    stream.respond(200, [["cache-control", "no-store"]]);
    const duplex = new StreamDuplex(stream);
    this.#streams.add(duplex);
    const task = this.#serve(duplex, sourceOf(req.headers, remote)).finally(() => {
      duplex.close();
      this.#streams.delete(duplex);
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
  }

  #serve(stream: StreamDuplex, source: HostPort): Promise<void> {
    const { handler, logger, dispatcher, policy, tag } = this.#options;
    const ctx: InboundContext = {
      tag,
      source,
      localAddress: this.#addr.hostname,
      dispatcher,
      policy,
      logger,
      signal: this.#shutdown.signal,
    };
    return serveOne(handler, stream, ctx);
  }

  /**
   * Stops accepting (GOAWAY on every connection: no new streams), lets open streams finish for up
   * to `graceMs`, then resets the rest and waits for their handlers and the connections to end.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#listener.close();
    for (const d of this.#handshaking) d.close();
    const conns = [...this.#conns];
    const drained = conns.map((c) => c.shutdown(graceMs));
    if (graceMs > 0 && this.#tasks.size > 0) {
      await waitAtMost(Promise.all([...this.#tasks]), graceMs);
    }
    this.#shutdown.abort(new Deno.errors.Interrupted("inbound closing"));
    for (const s of this.#streams) s.close();
    for (const c of this.#conns) c.close();
    await Promise.all([...this.#tasks]);
    await Promise.all(drained);
    await Promise.all([...this.#conns].map((c) => c.closed));
    await this.#acceptDone;
  }
}

/** Binds a Deno listener now: TCP (TCP_NODELAY per connection) or Deno.listenTls. */
function bindDeno(options: V2rayHttpServerOptions): { listener: Listener; addr: Deno.NetAddr } {
  const hostname = options.hostname ?? "127.0.0.1";
  if (options.tls) {
    // Deno's TLS listener cannot turn Nagle off (~40 ms per new stream); listen() uses node:tls.
    throw new TypeError(
      `Cannot start inbound "${options.tag}": TLS needs V2rayHttpServer.listen(), not the constructor`,
    );
  }
  const l = Deno.listen({ hostname, port: options.port, transport: "tcp" });
  return {
    listener: {
      accept: async () => {
        const conn = await l.accept();
        // HTTP/2's small frames (WINDOW_UPDATE, HEADERS, PING ACK) must not wait for an ACK.
        conn.setNoDelay(true);
        // The H2ServerConnection reads it into its own buffer (ConnDuplex.read).
        return { duplex: new ConnDuplex(conn), remote: conn.remoteAddr };
      },
      close: () => closeQuietly(l),
    },
    addr: l.addr,
  };
}

/** The request's host for matching: lowercase, without the scheme's default port (as URL does). */
function hostOf(scheme: string, authority: string): string {
  const a = authority.toLowerCase();
  if (scheme === "https" && a.endsWith(":443")) return a.slice(0, -4);
  if (scheme === "http" && a.endsWith(":80")) return a.slice(0, -3);
  return a;
}

/** What a refused request may still send: at most this much is read, for at most this long. */
const DISCARD_BYTES = 64 * 1024;
const DISCARD_MS = 1_000;

/** Reads and drops a request body, bounded in bytes and time, then lets the stream go. */
function discard(stream: H2ServerStream): void {
  const reader = stream.readable.getReader();
  const timer = setTimeout(() => stream.close(), DISCARD_MS);
  (async () => {
    for (let total = 0; total < DISCARD_BYTES;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.byteLength;
    }
  })().catch(() => {}).finally(() => {
    clearTimeout(timer);
    stream.close();
  });
}

/** The client's address for logs: the first X-Forwarded-For entry when it is an IP, as v2ray. */
function sourceOf(
  headers: Array<[string, string]>,
  remote: { hostname: string; port: number },
): HostPort {
  const xff = headers.find(([name]) => name === "x-forwarded-for")?.[1];
  const forwarded = xff?.split(",")[0].trim();
  if (forwarded && addressKind(forwarded) !== "domain") return { host: forwarded, port: 0 };
  return { host: remote.hostname, port: remote.port };
}

/**
 * One request stream as a Duplex: `readable` is the request body (uplink), `writable` the
 * response body (downlink); closing it ends the response (END_STREAM). `close()` stops reading
 * the request and ends the response: cleanly when nothing was sent yet — a refused request looks
 * like v2ray's, an empty 200 — and with RST_STREAM otherwise, so a cut download is visible as one.
 */
class StreamDuplex implements Duplex {
  readonly #stream: H2ServerStream;
  #closed = false;

  constructor(stream: H2ServerStream) {
    this.#stream = stream;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#stream.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#stream.writable;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#stream.bytesSent === 0) this.#stream.finish();
    // After a complete response this is RST_STREAM NO_ERROR (the client may stop sending), or
    // nothing when both sides have ended; otherwise CANCEL.
    this.#stream.close();
  }
}
