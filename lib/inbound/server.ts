import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { Policy } from "../dispatch/policy.ts";
import { errorMessage } from "../error_message.ts";
import type { Logger } from "../log.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { Deadlines } from "../net/deadline_queue.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { ServerCertificate } from "../net/certificate_selector.ts";
import { waitAtMost } from "../net/wait_at_most.ts";
import { acceptEach } from "../transport/accept_each.ts";
import {
  type Accepted,
  type Listener,
  listenResettableTcp,
  listenTcp,
  listenTls,
} from "../transport/listener.ts";
import { V2rayHttpServer } from "../transport/v2ray_http_server.ts";
import { WsServer, type WsServerOptions } from "../transport/ws_server.ts";
import type { DatagramHandler, InboundContext, InboundHandler, InboundResult } from "./inbound.ts";

export interface InboundServerOptions {
  /** The inbound's tag, for the access log. */
  tag: string;
  /** Listen address; default 127.0.0.1. */
  hostname?: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /** Serves each accepted TCP connection (or HTTP/2 stream with `http`, WebSocket with `ws`). */
  handler?: InboundHandler;
  /**
   * Serve TLS on the TCP port (certificate chain and key as PEM text; `sniCertificates` for
   * clients whose SNI names them, see TlsListenerOptions). Only with
   * `InboundServer.listen()` (node:tls): it turns Nagle off on every socket and bounds the
   * handshake by TLS_HANDSHAKE_TIMEOUT_MS before the handler sees the connection.
   */
  tls?: {
    cert: string;
    key: string;
    sniCertificates?: ServerCertificate[];
    alpnProtocols?: string[];
  };
  /**
   * Serve v2ray's http transport (HTTP/2, h2c without `tls`): every request stream whose Host and
   * path match is one connection for the handler. Only with `InboundServer.listen()`.
   */
  http?: { host?: string[]; path?: string };
  /**
   * Serve the WebSocket transport (over TLS with `tls`): every upgraded WebSocket is one
   * connection for the handler. Only with `InboundServer.listen()`.
   */
  ws?: Omit<WsServerOptions, "tag" | "logger">;
  /**
   * Every TCP connection starts with a PROXY protocol header (before TLS), whose source address
   * is the client's for the access log and routing (v2ray's `acceptProxyProtocol`). Not with
   * `http`; only with `InboundServer.listen()`.
   */
  acceptProxyProtocol?: boolean;
  /** Serves a UDP socket on the same address (tunnel with network "udp"). */
  datagramHandler?: DatagramHandler;
  /** Where handlers hand their connections: the only way to an outbound. */
  dispatcher: Dispatcher;
  policy: Policy;
  logger: Logger;
}

/**
 * How long a TLS client may take to finish its handshake (the TlsListener path). The VLESS header
 * deadline (policy.handshake) starts only after it, as in v2ray, whose TLS handshake runs before
 * the inbound reads the header.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * One inbound: serves any {@link Listener} (TCP, TLS, the v2ray http transport's streams,
 * WebSockets) with one accept loop, hands every connection to the handler, keeps any failure
 * inside its connection, and closes gracefully.
 */
export class InboundServer {
  readonly tag: string;
  #listener: Listener | undefined;
  #udp: Deno.DatagramConn | undefined;
  #options: InboundServerOptions;
  #shutdown = new AbortController();
  /** Handshake deadlines of every connection, on a timer per length (closed with the server). */
  #deadlines = new Deadlines({ keepTimer: true });
  #conns = new Set<Duplex>();
  #tasks = new Set<Promise<void>>();
  #loops: Promise<void>[] = [];
  #closing: Promise<void> | undefined;

  /**
   * Serves `listener`, or binds plain TCP/UDP at once with `Deno.listen` (errors such as
   * `Deno.errors.AddrInUse` are thrown here), whose connections are reset only once
   * detectConnReset() has found out that they can be: else a download cut short upstream reaches
   * the client as a FIN. The app uses `InboundServer.listen()`.
   */
  constructor(options: InboundServerOptions, listener?: Listener) {
    this.tag = options.tag;
    this.#options = options;
    const hostname = options.hostname ?? "127.0.0.1";
    if (!options.handler && !options.datagramHandler) {
      throw new TypeError(`Cannot start inbound "${options.tag}": no handler`);
    }
    if (listener) {
      this.#listener = listener;
    } else if (options.handler) {
      if (options.tls || options.http || options.ws) {
        throw new TypeError(
          `Cannot start inbound "${options.tag}": TLS, http and ws need InboundServer.listen(), ` +
            `not the constructor`,
        );
      }
      this.#listener = listenTcp({ hostname, port: options.port });
    }
    if (options.datagramHandler) {
      const port = this.#listener ? this.#listener.addr.port : options.port;
      try {
        this.#udp = Deno.listenDatagram({ hostname, port, transport: "udp" });
      } catch (err) {
        this.#listener?.close();
        throw err;
      }
    }
    if (!isLoopback(hostname) && !(options.handler?.requiresAuth ?? false)) {
      options.logger.warn(
        `inbound "${options.tag}" listens on ${hostname} without authentication: ` +
          `anyone who can reach ${formatHostPort(hostname, this.port)} can use this proxy`,
      );
    }
    if (this.#listener) {
      this.#loops.push(acceptEach(this.#listener, (a) => {
        const task = this.#serve(a);
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }, {
        logger: options.logger,
        what: `inbound "${this.tag}"`,
        stopped: () => this.#shutdown.signal.aborted || this.#closing !== undefined,
      }));
    }
    if (this.#udp) this.#loops.push(this.#serveUdp(this.#udp));
  }

  /**
   * Binds and resolves once listening. With `tls` the TCP port is served by node:tls: every
   * socket has TCP_NODELAY, and a client that does not finish its handshake within
   * TLS_HANDSHAKE_TIMEOUT_MS is dropped before any handler runs. With `http`, the sockets carry
   * v2ray's http transport and each HTTP/2 stream is one connection (h2c over `Deno.listen`
   * without `tls`: HTTP/2 resets streams itself). With `ws`, each upgraded WebSocket is one
   * connection (over a resettable TCP or a TLS listener, PROXY header first if asked). Plain TCP
   * connections can be reset by a relay when the stream it copies is cut short: accepted on
   * `Deno.listen` where a Deno.Conn can be reset (Linux, --allow-ffi), else on node:net
   * (listenResettableTcp; a debug line says which). UDP-only inbounds: the same as the
   * constructor.
   */
  static async listen(options: InboundServerOptions): Promise<InboundServer> {
    const { tls, http, ws, handler, logger, tag, acceptProxyProtocol } = options;
    if (!handler) return new InboundServer(options);
    if (acceptProxyProtocol && http) {
      throw new TypeError(
        `Cannot start inbound "${tag}": the http transport has no PROXY protocol`,
      );
    }
    if (http && ws) {
      throw new TypeError(`Cannot start inbound "${tag}": both the http and the ws transport`);
    }
    const hostname = options.hostname ?? "127.0.0.1";
    const badProxyHeader = (err: Error, remote: { hostname: string; port: number }) =>
      logger.info(
        `inbound "${tag}": closed ${formatHostPort(remote.hostname, remote.port)}: ` +
          errorMessage(err),
      );
    let listener = tls
      ? await listenTls({
        hostname,
        port: options.port,
        cert: tls.cert,
        key: tls.key,
        sniCertificates: tls.sniCertificates,
        // The http transport only speaks HTTP/2.
        alpnProtocols: http ? ["h2"] : tls.alpnProtocols,
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
        acceptProxyProtocol,
        onError: (err, remote) => {
          // A client's failed handshake is its own business; a connection we closed because
          // nobody took it in time is ours.
          if (remote && err instanceof Deno.errors.InvalidData) {
            badProxyHeader(err, remote);
          } else if (err instanceof Deno.errors.TimedOut) {
            logger.warn(`inbound "${tag}": ${errorMessage(err)}`);
          } else {
            logger.debug(
              `inbound "${tag}": TLS handshake with ${
                remote ? formatHostPort(remote.hostname, remote.port) : "a client"
              } failed: ${errorMessage(err)}`,
            );
          }
        },
      })
      : http
      ? listenTcp({ hostname, port: options.port })
      : await listenResettableTcp({
        hostname,
        port: options.port,
        acceptProxyProtocol,
        logger,
        what: `inbound "${tag}"`,
        onError: (err, remote) => {
          if (remote) badProxyHeader(err, remote);
          else logger.warn(`inbound "${tag}": accept failed: ${errorMessage(err)}`);
        },
      });
    if (http) listener = new V2rayHttpServer(listener, { tag, ...http, logger });
    else if (ws) listener = new WsServer(listener, { tag, ...ws, logger });
    try {
      return new InboundServer(options, listener);
    } catch (err) {
      await listener.close();
      throw err;
    }
  }

  /** The bound address (the TCP one when both are open). */
  get addr(): Deno.NetAddr {
    return this.#listener ? this.#listener.addr : this.#udp!.addr as Deno.NetAddr;
  }

  get port(): number {
    return this.addr.port;
  }

  /** Connections (or HTTP/2 streams) being served right now. */
  get active(): number {
    return this.#conns.size;
  }

  async #serve(conn: Accepted): Promise<void> {
    const { handler, logger, dispatcher, policy, tag } = this.#options;
    const { duplex } = conn;
    this.#conns.add(duplex);
    const ctx: InboundContext = {
      tag,
      source: conn.remote,
      localAddress: conn.local.host,
      dispatcher,
      policy,
      logger,
      signal: this.#shutdown.signal,
      deadlines: this.#deadlines,
    };
    try {
      await serveOne(handler!, duplex, ctx);
    } finally {
      duplex.close();
      this.#conns.delete(duplex);
    }
  }

  async #serveUdp(socket: Deno.DatagramConn): Promise<void> {
    const { datagramHandler, logger, dispatcher, policy, tag } = this.#options;
    try {
      await datagramHandler!.serveDatagrams(socket, {
        tag,
        dispatcher,
        policy,
        logger,
        signal: this.#shutdown.signal,
        localAddress: (socket.addr as Deno.NetAddr).hostname,
      });
    } catch (err) {
      logger.error(`inbound "${tag}" udp: ${errorMessage(err)}`);
    }
  }

  /**
   * Stops accepting, lets open connections finish for up to `graceMs`, then closes the rest and
   * waits for their handlers (and the listener) to end.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const stopped = this.#listener?.close();
    if (graceMs > 0 && this.#tasks.size > 0) {
      await waitAtMost(Promise.all([...this.#tasks]), graceMs);
    }
    this.#shutdown.abort(new Deno.errors.Interrupted("inbound closing"));
    for (const c of this.#conns) c.close();
    closeQuietly(this.#udp);
    await Promise.all([...this.#tasks, ...this.#loops, stopped]);
    this.#deadlines.close();
  }
}

/**
 * Serves one connection (or HTTP/2 stream) with `handler`. Never throws: a handler that throws is
 * a bug, logged, and kept inside its connection. The dispatcher writes the access lines of what
 * it carried; a connection refused before it asked for a destination gets its line here.
 */
async function serveOne(
  handler: InboundHandler,
  conn: Duplex,
  ctx: InboundContext,
): Promise<void> {
  const started = Date.now();
  const source = formatHostPort(ctx.source.host, ctx.source.port);
  let result: InboundResult;
  try {
    result = await handler.handle(conn, ctx);
  } catch (err) {
    ctx.logger.error(`inbound "${ctx.tag}" ${source}: handler failed: ${errorMessage(err)}`);
    result = { destination: "", result: errorMessage(err), up: 0, down: 0 };
  }
  if (result.outbound !== undefined) return;
  ctx.dispatcher.logUnrouted({
    inboundTag: ctx.tag,
    source,
    destination: result.destination,
    result: result.result,
    up: result.up,
    down: result.down,
  }, started);
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === "::1" ||
    hostname === "localhost" || /^::ffff:127\./i.test(hostname);
}
