/**
 * The server side of v2ray's "http" transport (also called "h2"): every proxied connection is one
 * HTTP/2 request stream — request body = uplink, response body = downlink, full duplex — served
 * by our own HTTP/2 server (lib/h2/server_connection.ts). A {@link Listener} of streams over a
 * Listener of sockets: the inbound server's one accept loop hands each stream to the inbound
 * handler (VLESS) as it would a socket. Over TLS (ALPN h2), or cleartext HTTP/2 with prior
 * knowledge (h2c), for use behind a TLS-terminating reverse proxy, as v2ray's server does.
 *
 * Why not Deno.serve: its sockets keep Nagle's algorithm on, so its small WINDOW_UPDATE and
 * HEADERS frames waited ~40 ms for the client's delayed ACK — uploads stalled once per window and
 * a stream whose client sent before our HEADERS paid ~40 ms. Our socket listeners set TCP_NODELAY
 * (listenTcp, and listenTls over node:tls).
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
import { errorMessage } from "../error_message.ts";
import type { Logger } from "../log.ts";
import { formatHostPort, forwardedSource } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { type Accepted, type Listener, SocketStreams } from "./listener.ts";
import { normalizeHttpPath } from "./v2ray_http.ts";

export interface V2rayHttpServerOptions {
  /** The inbound's tag, for logs. */
  tag: string;
  /** `httpSettings.host`: accepted `:authority` values; empty or absent = any. */
  host?: string[];
  /** `httpSettings.path`: requests must start with it; normalized to start with "/". */
  path?: string;
  logger: Logger;
}

/**
 * How long closing waits for a connection to finish after GOAWAY once its streams are closed (the
 * inbound server closes them after its grace period): a safety bound, not a grace period.
 */
const SHUTDOWN_BOUND_MS = 10_000;

export class V2rayHttpServer implements Listener {
  readonly #options: V2rayHttpServerOptions;
  readonly #hosts: Set<string>;
  readonly #path: string;
  readonly #conns = new Set<H2ServerConnection>();
  readonly #streams: SocketStreams;

  /** Serves HTTP/2 on every socket `sockets` accepts. */
  constructor(sockets: Listener, options: V2rayHttpServerOptions) {
    this.#options = options;
    // Host names compare case-insensitively.
    this.#hosts = new Set((options.host ?? []).map((h) => h.toLowerCase()));
    this.#path = normalizeHttpPath(options.path);
    this.#streams = new SocketStreams(sockets, (a) => this.#serveConnection(a), {
      logger: options.logger,
      what: `inbound "${options.tag}"`,
    });
  }

  get addr(): Deno.NetAddr {
    return this.#streams.addr;
  }

  accept(): Promise<Accepted> {
    return this.#streams.accept();
  }

  async #serveConnection(a: Accepted): Promise<void> {
    const source = formatHostPort(a.remote.host, a.remote.port);
    this.#streams.handshaking.add(a.duplex);
    let conn: H2ServerConnection;
    try {
      conn = await H2ServerConnection.accept(a.duplex, (s) => this.#onStream(s, a));
    } catch (err) {
      this.#options.logger.debug(
        `inbound "${this.#options.tag}": HTTP/2 handshake with ${source} failed: ${
          errorMessage(err)
        }`,
      );
      return;
    } finally {
      this.#streams.handshaking.delete(a.duplex);
    }
    if (this.#streams.closing) {
      conn.close();
      return;
    }
    this.#conns.add(conn);
    const err = await conn.closed;
    this.#conns.delete(conn);
    if (err) {
      // Cut off for abuse (rapid reset, unread ACK floods): worth an operator's attention.
      const abusive = err instanceof ConnectionError && err.code === ErrorCode.ENHANCE_YOUR_CALM;
      const line = `inbound "${this.#options.tag}": HTTP/2 connection from ${source} ended: ${
        errorMessage(err)
      }`;
      if (abusive) this.#options.logger.warn(line);
      else this.#options.logger.debug(line);
    }
  }

  #onStream(stream: H2ServerStream, socket: Accepted): void {
    const req = stream.request;
    const host = hostOf(req.scheme, req.authority);
    const pathname = req.path.split(/[?#]/, 1)[0];
    if (
      (this.#hosts.size > 0 && !this.#hosts.has(host)) || !pathname.startsWith(this.#path) ||
      this.#streams.closing
    ) {
      this.#options.logger.info(
        `inbound "${this.#options.tag}": 404 for ${req.method} ${req.authority}${pathname} from ${
          formatHostPort(socket.remote.host, socket.remote.port)
        }`,
      );
      stream.respond(404, [], { endStream: true });
      // Read what the client is still sending (bounded) so it sees the 404 rather than a reset;
      // past the bound, RST_STREAM NO_ERROR asks it to stop (RFC 9113 §8.1).
      discard(stream);
      return;
    }
    stream.respond(200, [["cache-control", "no-store"]]);
    const accepted: Accepted = {
      duplex: new StreamDuplex(stream),
      remote: forwardedSource(
        req.headers.find(([name]) => name === "x-forwarded-for")?.[1],
        socket.remote,
      ),
      local: socket.local,
    };
    this.#streams.offer(accepted);
  }

  /**
   * Stops accepting: no new sockets, GOAWAY on every connection (no new streams). Resolves once
   * the connections have ended — after the streams already accepted are closed by whoever took
   * them (the inbound server does, after its grace period), bounded by SHUTDOWN_BOUND_MS.
   */
  close(): Promise<void> {
    return this.#streams.close(() => [...this.#conns].map((c) => c.shutdown(SHUTDOWN_BOUND_MS)));
  }
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

/**
 * One request stream as a Duplex: `readable` is the request body (uplink), `writable` the
 * response body (downlink); closing it ends the response (END_STREAM). `close()` stops reading
 * the request and ends the response: cleanly when nothing was sent yet — a refused request looks
 * like v2ray's, an empty 200 — and with RST_STREAM otherwise, so a cut download is visible as one.
 * `reset()` is the relay's abortive close: RST_STREAM always, even before the first downlink byte.
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

  /** The relay gives a lent chunk back once its write resolved. */
  get copiesWrites(): boolean {
    return this.#stream.copiesWrites;
  }

  /** A cut (the target reset, the uplink was cut): CANCEL, never an empty complete response. */
  reset(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream.reset();
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
