/**
 * The client side of the WebSocket transport (`network: "ws"`): one WebSocket per proxied
 * connection, over TCP or TLS (SNI from `tlsSettings.serverName`, ALPN http/1.1), as v2ray 4.34's
 * dialer. The request goes to `path` with Host from `wsSettings.headers.Host` (else the address,
 * with the port unless it is the scheme's default) and the other configured headers.
 *
 * Early data, when configured: `open()` returns once the socket is connected (so the outbound's
 * attempt deadline, racing and server health judge the connect), and the first write sends the
 * opening handshake, its first `maxBytes` bytes (the VLESS header and the first payload) carried
 * base64url in the request — in Sec-WebSocket-Protocol (Xray's `?ed=N`) or another named header, or
 * appended to the path (v2fly with no header name) — so the server can dial before the handshake
 * round trip ends.
 */
import { ConnDuplex } from "../net/conn_duplex.ts";
import { ByteReader } from "../net/byte_reader.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { Logger } from "../log.ts";
import { type Headers, parseResponseHead } from "../http1/message.ts";
import { readHead } from "../http1/read_head.ts";
import { encodeEarlyData } from "../ws/early_data.ts";
import { checkUpgradeResponse, encodeUpgradeRequest, newClientKey } from "../ws/handshake.ts";
import { connectTcp } from "./tcp.ts";
import { connectTls, type TlsOptions } from "./tls.ts";
import type { ServerAddress, Transport } from "./transport.ts";
import { WsConnection } from "./ws_connection.ts";
import { messageOf } from "../error_message.ts";

export interface WsEarlyData {
  /** Most bytes carried in the request. */
  maxBytes: number;
  /** The header that carries them; undefined = appended to the path (v2fly). */
  headerName?: string;
}

export interface WsTransportOptions {
  /** wss: TLS with these options; absent = plain ws. */
  tls?: TlsOptions;
  /** `wsSettings.path` (without Xray's `ed` query, which the config turns into `earlyData`). */
  path?: string;
  /** `wsSettings.headers`; a Host among them is the Host header. */
  headers?: Record<string, string>;
  earlyData?: WsEarlyData;
  /** Keep-alive Ping after this many idle ms (0 = none). Default WS_PING_INTERVAL_MS. */
  pingIntervalMs?: number;
  /** Bounds the opening handshake (v2ray's dialer: 8 s). */
  handshakeTimeoutMs?: number;
  logger?: Logger;
}

/**
 * An idle WebSocket gets a Ping after this long: CDNs drop idle WebSockets (Cloudflare after
 * 100 s), and a NAT mapping may go sooner. v2ray 4.34 sends none; its server answers them.
 */
export const WS_PING_INTERVAL_MS = 30_000;
/** v2ray 4.34's dialer gives the opening handshake 8 s (HandshakeTimeout). */
export const WS_HANDSHAKE_TIMEOUT_MS = 8_000;

/** v2ray's rule for the path: empty → "/", else a leading "/" is added when missing. */
export function normalizeWsPath(path: string | undefined): string {
  if (!path) return "/";
  return path.startsWith("/") ? path : `/${path}`;
}

export class WsTransport implements Transport {
  readonly name = "ws";
  readonly #options: WsTransportOptions;
  readonly #path: string;
  readonly #headers: Headers;
  readonly #host: string | undefined;

  constructor(options: WsTransportOptions = {}) {
    this.#options = options;
    this.#path = normalizeWsPath(options.path);
    const entries = Object.entries(options.headers ?? {});
    this.#host = entries.find(([n]) => n.toLowerCase() === "host")?.[1];
    this.#headers = entries.filter(([n]) => n.toLowerCase() !== "host");
  }

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    const socket = await this.#connect(server, signal);
    const ed = this.#options.earlyData;
    if (ed && ed.maxBytes > 0) {
      // Only the opening handshake waits for the first write (it carries the early data): the
      // connect happens now, inside the outbound's attempt, so its deadline, racing and server
      // health judge it — a dead server fails here, not later in the relay. The early data saves
      // the handshake's round trip, not the connect's, which must come first anyway.
      return new DeferredWs(
        ed.maxBytes,
        socket,
        (first) => this.#handshake(server, socket, first, signal),
      );
    }
    return await this.#handshake(server, socket, undefined, signal);
  }

  /** The TCP connection (and TLS session) under the WebSocket. */
  async #connect(server: ServerAddress, signal?: AbortSignal): Promise<WsSocketDuplex> {
    const { tls } = this.#options;
    return tls
      ? (await connectTls(server, {
        tls: { ...tls, alpn: tls.alpn && tls.alpn.length > 0 ? tls.alpn : ["http/1.1"] },
        signal,
      })).duplex
      : new ConnDuplex(await connectTcp(server, signal));
  }

  /** Runs the opening handshake (with early data) on `socket`, returns the open WebSocket. */
  async #handshake(
    server: ServerAddress,
    socket: WsSocketDuplex,
    early: Uint8Array | undefined,
    signal?: AbortSignal,
  ): Promise<WsConnection> {
    const { tls, logger } = this.#options;
    const where = formatHostPort(server.address, server.port);
    const timeoutMs = this.#options.handshakeTimeoutMs ?? WS_HANDSHAKE_TIMEOUT_MS;
    const timer = setTimeout(() => closeQuietly(socket), timeoutMs);
    const onAbort = () => closeQuietly(socket);
    signal?.addEventListener("abort", onAbort, { once: true });
    const writer = socket.writable.getWriter();
    const bytes = new ByteReader(socket.readable);
    try {
      signal?.throwIfAborted();
      const key = newClientKey();
      const headers = [...this.#headers];
      let path = this.#path;
      let protocol: string | undefined;
      if (early && early.byteLength > 0) {
        const text = encodeEarlyData(early);
        const name = this.#options.earlyData!.headerName;
        if (!name) path += text;
        else headers.push([name, text]);
        if (name?.toLowerCase() === "sec-websocket-protocol") protocol = text;
      }
      const defaultPort = tls ? 443 : 80;
      const host = this.#host ??
        (server.port === defaultPort ? hostLiteral(server.address) : where);
      await writer.write(encodeUpgradeRequest({ path, host, key, headers }));
      const head = await readHead(bytes, 502);
      if (head === null) throw new Error("the server closed the connection before answering");
      checkUpgradeResponse(parseResponseHead(head), key, protocol);
    } catch (err) {
      closeQuietly(socket);
      if (signal?.aborted) throw signal.reason;
      const why = messageOf(err);
      const timedOut = bytes.buffered === 0 && why.includes("closed")
        ? ` (or no answer within ${timeoutMs} ms)`
        : "";
      throw new Error(`WebSocket to ${where}${this.#path}: ${why}${timedOut}`, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
    // Bytes that came with the 101 answer go first; then reads go into WsConnection's own
    // buffers (ConnDuplex.read), not `readable`'s record-sized chunks.
    const prefix = bytes.buffered > 0 ? await bytes.read() ?? undefined : undefined;
    return new WsConnection(
      {
        reader: bytes.restReader(),
        writer,
        close: () => socket.close(),
        read: readerOf(socket),
        prefix,
      },
      {
        role: "client",
        pingIntervalMs: this.#options.pingIntervalMs ?? WS_PING_INTERVAL_MS,
        copiesWrites: true,
        logger,
        label: `ws to ${where}`,
      },
    );
  }

  close(): void {
    // Nothing pooled: every WebSocket belongs to its proxied connection.
  }
}

/** A connected socket under a WebSocket; `read(buf)` when it reads into our buffers. */
type WsSocketDuplex = Duplex & { read?(buf: Uint8Array): Promise<number | null> };

/**
 * `read(buf)` on the socket, straight on the Deno.Conn when there is one: a download from v2ray's
 * server is one read per ~4 KiB TLS record, and every async layer in between costs (measured ~0.1
 * CPU s/GiB for two). A read failing after our close is ignored by WsConnection, which closed it.
 */
function readerOf(
  socket: WsSocketDuplex,
): ((buf: Uint8Array) => Promise<number | null>) | undefined {
  if (socket instanceof ConnDuplex) {
    const conn = socket.conn;
    return (buf) => conn.read(buf);
  }
  return socket.read && ((buf) => socket.read!(buf));
}

/** An IPv6 literal goes in brackets in Host. */
function hostLiteral(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

/**
 * A WebSocket whose opening handshake is sent with its first write (early data), over a socket
 * already connected. Reads wait for it; a failed handshake fails both directions with its error.
 */
class DeferredWs implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly copiesWrites = true;
  readonly #opened = Promise.withResolvers<WsConnection>();
  #ws: WsConnection | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #socket: Duplex;
  #closed = false;

  constructor(
    maxEarly: number,
    socket: Duplex,
    dial: (early: Uint8Array) => Promise<WsConnection>,
  ) {
    this.#socket = socket;
    // The read side waits for the open; a failure is reported there too.
    this.#opened.promise.catch(() => {});
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        reader ??= (await this.#opened.promise).readable.getReader();
        const r = await reader.read();
        if (r.done) c.close();
        else c.enqueue(r.value);
      },
      cancel: (reason) => {
        if (reader) return reader.cancel(reason);
        this.close();
      },
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (this.#writer) return this.#writer.write(chunk);
        if (this.#closed) throw new Deno.errors.BrokenPipe("WebSocket closed before it opened");
        // Up to maxEarly bytes ride in the request (as v2fly's dialer; Xray's sends a first write
        // longer than `ed` as a frame instead, which its server reads all the same).
        let ws: WsConnection;
        try {
          ws = await dial(chunk.subarray(0, maxEarly));
        } catch (err) {
          this.#opened.reject(err);
          throw err;
        }
        if (this.#closed) {
          ws.close();
          throw new Deno.errors.BrokenPipe("WebSocket closed while it opened");
        }
        this.#ws = ws;
        this.#writer = ws.writable.getWriter();
        this.#opened.resolve(ws);
        if (chunk.byteLength > maxEarly) await this.#writer.write(chunk.subarray(maxEarly));
      },
      close: () => {
        if (this.#writer) return this.#writer.close();
        // Nothing was ever written: there is no WebSocket to tell.
      },
      abort: () => this.close(),
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opened.reject(new Deno.errors.BrokenPipe("WebSocket closed before it opened"));
    if (this.#ws) this.#ws.close();
    else closeQuietly(this.#socket);
  }

  /** The abortive close: a cut the peer must not take for a clean end (see WsConnection.reset). */
  reset(): void {
    if (this.#ws) {
      this.#closed = true;
      return this.#ws.reset();
    }
    this.close();
  }
}
