/**
 * The server side of the WebSocket transport: a {@link Listener} of WebSockets over a Listener of
 * sockets (TCP or TLS; a PROXY header is already read by them), as V2rayHttpServer is for HTTP/2
 * streams. Every socket's opening request is read and upgraded here; the inbound server's one
 * accept loop hands each WebSocket, as a Duplex, to the inbound handler (VLESS) as it would a
 * socket, and closing it runs the WebSocket's held Close (see WsConnection).
 *
 * As v2ray 4.34's listener (transport/internet/websocket/hub.go): the request path must equal the
 * configured one exactly (the query is not part of it), otherwise 404 (for any request); on the
 * path, a request that is not a valid upgrade gets 400 (426 for another WebSocket version); the
 * head must arrive within 4 s (ReadHeaderTimeout); an X-Forwarded-For IP is the source in logs.
 * After a 404 the connection stays open for the next request, as Go's server keeps it, when that
 * is cheap: HTTP/1.1 without "Connection: close", and a body of at most 64 KiB by Content-Length
 * (skipped); anything else is closed. Unlike 4.34, early data is accepted as Xray's and v2fly's
 * servers take it: base64url in Sec-WebSocket-Protocol (echoed back), in `earlyDataHeaderName`,
 * or, with `maxEarlyData` and no header name, after the path.
 */
import { errorMessage } from "../error_message.ts";
import {
  encodeErrorResponse,
  encodeHead,
  getHeader,
  headerTokens,
  HttpError,
  parseRequestHead,
  type RequestHead,
} from "../http1/message.ts";
import { requestFraming } from "../http1/framing.ts";
import { readHead } from "../http1/read_head.ts";
import type { Logger } from "../log.ts";
import { ByteReader } from "../net/byte_reader.ts";
import { formatHostPort, forwardedSource } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { lingeringClose } from "../net/lingering_close.ts";
import { decodeEarlyData } from "../ws/early_data.ts";
import { encodeUpgradeResponse, parseUpgradeRequest } from "../ws/handshake.ts";
import { type Accepted, type Listener, SocketStreams } from "./listener.ts";
import { normalizeWsPath } from "./ws.ts";
import { WsConnection } from "./ws_connection.ts";

/** v2ray's listener: http.Server{ReadHeaderTimeout: 4 s}. */
export const WS_HEAD_TIMEOUT_MS = 4_000;
/** The largest early data we take from a header or the path (v2fly's MaxEarlyData is a config). */
const MAX_EARLY_BYTES = 8 * 1024;
/** A refused request's body we still read past to keep the connection (by Content-Length). */
const MAX_SKIPPED_BODY = 64 * 1024;
/** Refused requests on one connection before it is closed: a scanner gets no endless session. */
const MAX_REFUSED_REQUESTS = 100;

export interface WsServerOptions {
  /** The inbound's tag, for logs. */
  tag: string;
  /** `wsSettings.path`: requests must ask for exactly this path. */
  path?: string;
  /** v2fly's `maxEarlyData` (> 0 turns on early data from the named header or the path). */
  maxEarlyData?: number;
  /** v2fly's `earlyDataHeaderName`. */
  earlyDataHeaderName?: string;
  /** The hold before our Close after the downlink's end (default WS_CLOSE_HOLD_MS). */
  closeHoldMs?: number;
  /** How long a socket may take to send a request head (default WS_HEAD_TIMEOUT_MS). */
  headTimeoutMs?: number;
  logger: Logger;
}

/** A valid upgrade request on our path. */
interface Upgrade {
  head: RequestHead;
  key: string;
  protocol: string | undefined;
  early: Uint8Array | undefined;
}

export class WsServer implements Listener {
  readonly #options: WsServerOptions;
  readonly #path: string;
  /** WebSockets upgraded and not yet closed (their held Close may still run). */
  readonly #open = new Set<WsConnection>();
  readonly #streams: SocketStreams;

  /** Upgrades the opening request of every socket `sockets` accepts. */
  constructor(sockets: Listener, options: WsServerOptions) {
    this.#options = options;
    this.#path = normalizeWsPath(options.path);
    this.#streams = new SocketStreams(sockets, (a) => this.#serveSocket(a), {
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

  async #serveSocket(a: Accepted): Promise<void> {
    const conn = a.duplex;
    const source = formatHostPort(a.remote.host, a.remote.port);
    const bytes = new ByteReader(conn.readable);
    const writer = conn.writable.getWriter();
    this.#streams.handshaking.add(conn);
    let upgrade: Upgrade | undefined;
    try {
      upgrade = await this.#readUpgrade({ conn, bytes, writer, source });
      if (!upgrade) return;
      if (this.#streams.closing) {
        conn.close();
        return;
      }
      await writer.write(encodeUpgradeResponse(upgrade.key, upgrade.protocol));
    } catch (err) {
      this.#options.logger.debug(
        `inbound "${this.#options.tag}": WebSocket upgrade for ${source} failed: ${
          errorMessage(err)
        }`,
      );
      conn.close();
      return;
    } finally {
      this.#streams.handshaking.delete(conn);
    }
    const ws = new WsConnection(
      { reader: bytes.restReader(), writer, close: () => conn.close() },
      {
        role: "server",
        earlyData: upgrade.early,
        closeHoldMs: this.#options.closeHoldMs,
        copiesWrites: conn.copiesWrites === true,
        logger: this.#options.logger,
        label: `ws from ${source}`,
      },
    );
    this.#open.add(ws);
    ws.closed.then(() => this.#open.delete(ws));
    if (this.#streams.closing) {
      ws.close();
      await ws.closed;
      return;
    }
    const accepted: Accepted = {
      duplex: ws,
      remote: forwardedSource(getHeader(upgrade.head.headers, "x-forwarded-for"), a.remote),
      local: a.local,
    };
    this.#streams.offer(accepted);
  }

  /**
   * Reads requests until one is a valid upgrade on our path (returned), answering the others.
   * Returns undefined once the socket is answered and closed, or gone.
   */
  async #readUpgrade(s: {
    conn: Duplex;
    bytes: ByteReader;
    writer: WritableStreamDefaultWriter<Uint8Array>;
    source: string;
  }): Promise<Upgrade | undefined> {
    const { logger, tag } = this.#options;
    for (let refused = 0;; refused++) {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        s.conn.close();
      }, this.#options.headTimeoutMs ?? WS_HEAD_TIMEOUT_MS);
      let head: RequestHead | undefined;
      let failure: unknown;
      try {
        const raw = await readHead(s.bytes);
        if (raw === null) {
          s.conn.close();
          return undefined;
        }
        head = parseRequestHead(raw);
        // The path first, as v2ray: another path is 404 whatever the request; on the path, a
        // request that is not a valid upgrade is 400 (gorilla's Upgrader).
        const { early, protocol } = this.#earlyData(head);
        const { key } = parseUpgradeRequest(head);
        return { head, key, protocol, early };
      } catch (err) {
        failure = err;
        if (timedOut) {
          logger.debug(`inbound "${tag}": no WebSocket request from ${s.source} in time`);
          return undefined;
        }
        const status = err instanceof HttpError ? err.status : 400;
        logger.info(`inbound "${tag}": ${status} for ${s.source}: ${errorMessage(err)}`);
        // Still within the head deadline: a slow body ends the connection like a slow head.
        const skip = status === 404 && head && refused + 1 < MAX_REFUSED_REQUESTS
          ? keptAliveBody(head)
          : undefined;
        if (skip !== undefined && await skipBody(s.bytes, skip) && !timedOut) {
          await s.writer.write(NOT_FOUND_KEEP_ALIVE);
          continue;
        }
      } finally {
        clearTimeout(timer);
      }
      if (timedOut) return undefined;
      const status = failure instanceof HttpError ? failure.status : 400;
      const extra: [string, string][] = status === 426 ? [["Sec-WebSocket-Version", "13"]] : [];
      await s.writer.write(encodeErrorResponse(status, extra)).catch(() => {});
      await lingeringClose(s.conn, s.writer, { read: () => s.bytes.read() });
      return undefined;
    }
  }

  /**
   * Finds early data and checks the path. Returns the early bytes and the subprotocol to echo.
   * Throws HttpError 404 for another path.
   */
  #earlyData(head: RequestHead): { early: Uint8Array | undefined; protocol: string | undefined } {
    const { maxEarlyData = 0, earlyDataHeaderName } = this.#options;
    const target = head.target;
    const protocol = getHeader(head.headers, "sec-websocket-protocol");
    const pathname = target.split(/[?#]/, 1)[0];
    if (maxEarlyData > 0 && !earlyDataHeaderName) {
      // v2fly: the early data follows the configured path in the request target.
      if (!target.startsWith(this.#path)) throw notFound(pathname);
      const tail = target.slice(this.#path.length);
      const early = tail === "" ? undefined : decodeEarlyData(tail);
      if (early === null) throw notFound(pathname);
      return { early: bounded(early), protocol: undefined };
    }
    // v2ray 4.34: "request.URL.Path != h.path" → 404.
    if (pathname !== this.#path) throw notFound(pathname);
    if (maxEarlyData > 0 && earlyDataHeaderName) {
      const value = getHeader(head.headers, earlyDataHeaderName);
      const early = value ? decodeEarlyData(value) : undefined;
      const echo = earlyDataHeaderName.toLowerCase() === "sec-websocket-protocol"
        ? protocol
        : undefined;
      return { early: bounded(early ?? undefined), protocol: echo };
    }
    // Xray's server: a Sec-WebSocket-Protocol that decodes as base64url is early data, echoed back
    // (a browser's WebSocket requires the echo); anything else is not echoed.
    if (protocol !== undefined) {
      const early = decodeEarlyData(protocol);
      if (early !== null) return { early: bounded(early), protocol };
    }
    return { early: undefined, protocol: undefined };
  }

  /**
   * Stops accepting: no new sockets, requests not yet answered are cut, WebSockets not yet taken
   * are closed. Resolves once every WebSocket has closed — those already taken once whoever took
   * them closes them (the inbound server does, after its grace period) and their held Close ends.
   */
  async close(): Promise<void> {
    await this.#streams.close();
    await Promise.all([...this.#open].map((ws) => ws.closed));
  }
}

/** Go's 404 on a connection kept for the next request: no "Connection: close". */
const NOT_FOUND_KEEP_ALIVE = (() => {
  const body = "404 Not Found\n";
  const head = encodeHead("HTTP/1.1 404 Not Found", [
    ["Content-Type", "text/plain"],
    ["Content-Length", String(body.length)],
  ]);
  const out = new Uint8Array(head.byteLength + body.length);
  out.set(head);
  out.set(new TextEncoder().encode(body), head.byteLength);
  return out;
})();

/**
 * The body length to skip before the next request on a refused request's connection, or
 * undefined when the connection should close: HTTP/1.0, "Connection: close", chunked, or a body
 * longer than MAX_SKIPPED_BODY.
 */
function keptAliveBody(head: RequestHead): number | undefined {
  if (head.version !== "1.1") return undefined;
  if (headerTokens(getHeader(head.headers, "connection")).includes("close")) return undefined;
  let framing;
  try {
    framing = requestFraming(head.headers);
  } catch {
    return undefined;
  }
  if (framing.kind === "none") return 0;
  if (framing.kind === "length" && framing.length <= MAX_SKIPPED_BODY) return framing.length;
  return undefined;
}

/** Reads past `n` body bytes; false if the socket ended (or failed) first. */
async function skipBody(bytes: ByteReader, n: number): Promise<boolean> {
  if (n === 0) return true;
  try {
    return (await bytes.readExact(n)) !== null;
  } catch {
    return false;
  }
}

function notFound(pathname: string): HttpError {
  return new HttpError(404, `WebSocket path "${pathname.slice(0, 80)}" is not served here`);
}

function bounded(early: Uint8Array | undefined): Uint8Array | undefined {
  if (early && early.byteLength > MAX_EARLY_BYTES) {
    throw new HttpError(400, `WebSocket early data of ${early.byteLength} bytes is too long`);
  }
  return early;
}
