/**
 * The server side of the WebSocket transport: an {@link InboundHandler} that sits between the
 * accept loop (InboundServer, over TCP or TLS) and the VLESS handler. It reads the opening
 * request, upgrades it, and hands the WebSocket to the inner handler as a Duplex. Being a handler,
 * it lives in inbound/ (transport/ sits below inbound/); as a Listener of WebSockets over a
 * Listener of sockets, like V2rayHttpServer, it would join its client half in transport/.
 *
 * As v2ray 4.34's listener (transport/internet/websocket/hub.go): the request path must equal the
 * configured one exactly (the query is not part of it), otherwise 404 (for any request); on the
 * path, a request that is not a valid upgrade gets 400 (426 for another WebSocket version); the head must arrive within
 * 4 s (ReadHeaderTimeout); an X-Forwarded-For IP is the source in logs. Unlike 4.34, early data is
 * accepted as Xray's and v2fly's servers take it: base64url in Sec-WebSocket-Protocol (echoed back),
 * in `earlyDataHeaderName`, or, with `maxEarlyData` and no header name, after the path.
 */
import { addressKind, formatHostPort, type HostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { ByteReader } from "../net/byte_reader.ts";
import {
  encodeErrorResponse,
  getHeader,
  HttpError,
  parseRequestHead,
  type RequestHead,
} from "../http1/message.ts";
import { readHead } from "../http1/read_head.ts";
import { errorMessage } from "../error_message.ts";
import type { InboundContext, InboundHandler, InboundResult } from "./inbound.ts";
import { lingeringClose } from "./lingering_close.ts";
import { decodeEarlyData } from "../ws/early_data.ts";
import { encodeUpgradeResponse, parseUpgradeRequest } from "../ws/handshake.ts";
import { normalizeWsPath } from "../transport/ws.ts";
import { WsConnection } from "../transport/ws_connection.ts";

/** v2ray's listener: http.Server{ReadHeaderTimeout: 4 s}. */
export const WS_HEAD_TIMEOUT_MS = 4_000;
/** The largest early data we take from a header or the path (v2fly's MaxEarlyData is a config). */
const MAX_EARLY_BYTES = 8 * 1024;

export interface WsServerOptions {
  /** `wsSettings.path`: requests must ask for exactly this path. */
  path?: string;
  /** v2fly's `maxEarlyData` (> 0 turns on early data from the named header or the path). */
  maxEarlyData?: number;
  /** v2fly's `earlyDataHeaderName`. */
  earlyDataHeaderName?: string;
  /** Serves each WebSocket (a VlessInbound). */
  handler: InboundHandler;
  /** Server: the hold before our Close (tests shorten it). */
  closeHoldMs?: number;
}

export class WsServerHandler implements InboundHandler {
  readonly #options: WsServerOptions;
  readonly #path: string;

  constructor(options: WsServerOptions) {
    this.#options = options;
    this.#path = normalizeWsPath(options.path);
  }

  async handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    const bytes = new ByteReader(conn.readable);
    const writer = conn.writable.getWriter();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, WS_HEAD_TIMEOUT_MS);
    let head: RequestHead;
    let early: Uint8Array | undefined;
    let protocol: string | undefined;
    let key: string;
    try {
      const raw = await readHead(bytes);
      if (raw === null) {
        clearTimeout(timer);
        conn.close();
        return { destination: "", result: "closed before a request", up: 0, down: 0 };
      }
      head = parseRequestHead(raw);
      // The path first, as v2ray: another path is 404 whatever the request; on the path, a
      // request that is not a valid upgrade is 400 (gorilla's Upgrader).
      ({ early, protocol } = this.#earlyData(
        head,
        head.target,
        getHeader(head.headers, "sec-websocket-protocol"),
      ));
      ({ key } = parseUpgradeRequest(head));
    } catch (err) {
      clearTimeout(timer);
      if (timedOut) {
        return { destination: "", result: "WebSocket request timeout", up: 0, down: 0 };
      }
      const status = err instanceof HttpError ? err.status : 400;
      const extra: [string, string][] = status === 426 ? [["Sec-WebSocket-Version", "13"]] : [];
      const message = errorMessage(err);
      ctx.logger.info(
        `ws: ${formatHostPort(ctx.source.host, ctx.source.port)}: ${status} for ${message}`,
      );
      await writer.write(encodeErrorResponse(status, extra)).catch(() => {});
      await lingeringClose(conn, writer, { read: () => bytes.read() });
      return { destination: "", result: `${status}: ${message}`, up: 0, down: 0 };
    }
    clearTimeout(timer);
    try {
      await writer.write(encodeUpgradeResponse(key, protocol));
    } catch (err) {
      conn.close();
      return { destination: "", result: errorMessage(err), up: 0, down: 0 };
    }
    const ws = new WsConnection(
      { reader: bytes.restReader(), writer, close: () => conn.close() },
      {
        role: "server",
        earlyData: early,
        closeHoldMs: this.#options.closeHoldMs,
        copiesWrites: conn.copiesWrites === true,
        logger: ctx.logger,
        label: `ws from ${formatHostPort(ctx.source.host, ctx.source.port)}`,
      },
    );
    const result = await this.#options.handler.handle(ws, {
      ...ctx,
      source: forwardedFor(head, ctx.source),
    });
    // The held close (see WsConnection) runs after the handler: the socket stays ours until then.
    ws.close();
    await ws.closed;
    return result;
  }

  /**
   * Finds early data and checks the path. Returns the early bytes and the subprotocol to echo.
   * Throws HttpError 404 for another path.
   */
  #earlyData(
    head: RequestHead,
    target: string,
    protocol: string | undefined,
  ): { early: Uint8Array | undefined; protocol: string | undefined } {
    const { maxEarlyData = 0, earlyDataHeaderName } = this.#options;
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

/** The client's address for logs: the first X-Forwarded-For entry when it is an IP, as v2ray. */
function forwardedFor(head: RequestHead, source: HostPort): HostPort {
  const forwarded = getHeader(head.headers, "x-forwarded-for")?.split(",")[0].trim();
  if (forwarded && addressKind(forwarded) !== "domain") return { host: forwarded, port: 0 };
  return source;
}
