import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Logger } from "../log.ts";
import type { Outbound } from "../outbound/outbound.ts";
import {
  type DatagramHandler,
  errorMessage,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  type Policy,
} from "./inbound.ts";

export interface InboundServerOptions {
  /** The inbound's tag, for the access log. */
  tag: string;
  /** Listen address; default 127.0.0.1. */
  hostname?: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /** Serves each accepted TCP connection. */
  handler?: InboundHandler & { readonly requiresAuth?: boolean };
  /**
   * Serve TLS on the TCP port (certificate chain and key as PEM text). The handshake runs on the
   * handler's first read, so the handler's handshake deadline bounds it too.
   */
  tls?: { cert: string; key: string; alpnProtocols?: string[] };
  /** Serves a UDP socket on the same address (tunnel with network "udp"). */
  datagramHandler?: DatagramHandler;
  outbound: Outbound;
  policy: Policy;
  logger: Logger;
}

/** Accept failures in a row (EMFILE…) before the loop pauses; keeps it from spinning. */
const ACCEPT_ERRORS_BEFORE_PAUSE = 8;
const ACCEPT_PAUSE_MS = 200;

/**
 * The accept loop of one inbound: hands every connection to the handler, writes one access-log
 * line per connection, keeps any failure inside its connection, and closes gracefully.
 */
export class InboundServer {
  readonly tag: string;
  #listener: Deno.Listener<Deno.TcpConn | Deno.TlsConn, Deno.NetAddr> | undefined;
  #udp: Deno.DatagramConn | undefined;
  #options: InboundServerOptions;
  #shutdown = new AbortController();
  #conns = new Set<ConnDuplex>();
  #tasks = new Set<Promise<void>>();
  #loops: Promise<void>[] = [];
  #closing: Promise<void> | undefined;

  constructor(options: InboundServerOptions) {
    this.tag = options.tag;
    this.#options = options;
    const hostname = options.hostname ?? "127.0.0.1";
    if (!options.handler && !options.datagramHandler) {
      throw new TypeError(`Cannot start inbound "${options.tag}": no handler`);
    }
    if (options.handler) {
      const { tls } = options;
      this.#listener = tls
        ? Deno.listenTls({ hostname, port: options.port, transport: "tcp", ...tls })
        : Deno.listen({ hostname, port: options.port, transport: "tcp" });
    }
    if (options.datagramHandler) {
      const port = this.#listener ? (this.#listener.addr as Deno.NetAddr).port : options.port;
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
    if (this.#listener) this.#loops.push(this.#acceptLoop(this.#listener));
    if (this.#udp) this.#loops.push(this.#serveUdp(this.#udp));
  }

  /** The bound address (the TCP one when both are open). */
  get addr(): Deno.NetAddr {
    return (this.#listener ?? this.#udp)!.addr as Deno.NetAddr;
  }

  get port(): number {
    return this.addr.port;
  }

  /** Connections being served right now. */
  get active(): number {
    return this.#conns.size;
  }

  async #acceptLoop(
    listener: Deno.Listener<Deno.TcpConn | Deno.TlsConn, Deno.NetAddr>,
  ): Promise<void> {
    let errors = 0;
    for (let n = 0; n < Number.MAX_SAFE_INTEGER; n++) {
      let conn: Deno.TcpConn | Deno.TlsConn;
      try {
        conn = await listener.accept();
        errors = 0;
      } catch (err) {
        if (this.#shutdown.signal.aborted || err instanceof Deno.errors.BadResource) return;
        this.#options.logger.warn(`inbound "${this.tag}": accept failed: ${errorMessage(err)}`);
        if (++errors >= ACCEPT_ERRORS_BEFORE_PAUSE) {
          await new Promise((r) => setTimeout(r, ACCEPT_PAUSE_MS));
          errors = 0;
        }
        continue;
      }
      const task = this.#serve(conn);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #serve(conn: Deno.TcpConn | Deno.TlsConn): Promise<void> {
    const { handler, logger, outbound, policy, tag } = this.#options;
    const started = Date.now();
    const remote = conn.remoteAddr as Deno.NetAddr;
    const source = formatHostPort(remote.hostname, remote.port);
    try {
      // A TlsConn has no setNoDelay in Deno's API.
      if ("setNoDelay" in conn) conn.setNoDelay(true);
    } catch {
      // Already reset by the peer; the handler will see that.
    }
    const duplex = new ConnDuplex(conn);
    this.#conns.add(duplex);
    const ctx: InboundContext = {
      source,
      localAddress: (conn.localAddr as Deno.NetAddr).hostname,
      outbound,
      policy,
      logger,
      signal: this.#shutdown.signal,
    };
    let result: InboundResult;
    try {
      result = await handler!.handle(duplex, ctx);
    } catch (err) {
      // Handlers report failures in their result; this is a bug, but it stays in its connection.
      logger.error(`inbound "${tag}" ${source}: handler failed: ${errorMessage(err)}`);
      result = { destination: "", result: errorMessage(err), up: 0, down: 0 };
    } finally {
      duplex.close();
      this.#conns.delete(duplex);
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

  async #serveUdp(socket: Deno.DatagramConn): Promise<void> {
    const { datagramHandler, logger, outbound, policy, tag } = this.#options;
    try {
      await datagramHandler!.serveDatagrams(socket, {
        outbound,
        policy,
        logger,
        signal: this.#shutdown.signal,
        localAddress: (socket.addr as Deno.NetAddr).hostname,
        report: (source, result, ms) =>
          logger.access({
            inbound: tag,
            source,
            destination: result.destination || "-",
            outbound: outbound.tag,
            result: result.result,
            up: result.up,
            down: result.down,
            ms,
          }),
      });
    } catch (err) {
      logger.error(`inbound "${tag}" udp: ${errorMessage(err)}`);
    }
  }

  /**
   * Stops accepting, lets open connections finish for up to `graceMs`, then closes the rest and
   * waits for their handlers to return.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    if (graceMs > 0 && this.#tasks.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      await Promise.race([Promise.all([...this.#tasks]), expired]);
      clearTimeout(timer);
    }
    this.#shutdown.abort(new Deno.errors.Interrupted("inbound closing"));
    for (const c of this.#conns) c.close();
    try {
      this.#udp?.close();
    } catch {
      // already closed
    }
    await Promise.all([...this.#tasks, ...this.#loops]);
  }
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === "::1" ||
    hostname === "localhost" || /^::ffff:127\./i.test(hostname);
}
