import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { TcpListener } from "../net/tcp_listener.ts";
import { TlsListener } from "../net/tls_listener.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { Policy } from "../dispatch/policy.ts";
import { errorMessage } from "../error_message.ts";
import type { Logger } from "../log.ts";
import type { DatagramHandler, InboundContext, InboundHandler, InboundResult } from "./inbound.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { waitAtMost } from "../net/wait_at_most.ts";

export interface InboundServerOptions {
  /** The inbound's tag, for the access log. */
  tag: string;
  /** Listen address; default 127.0.0.1. */
  hostname?: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /** Serves each accepted TCP connection. */
  handler?: InboundHandler;
  /**
   * Serve TLS on the TCP port (certificate chain and key as PEM text). Only with
   * `InboundServer.listen()` (node:tls, TlsListener): it turns Nagle off on every socket and bounds
   * the handshake by TLS_HANDSHAKE_TIMEOUT_MS before the handler sees the connection.
   */
  tls?: { cert: string; key: string; alpnProtocols?: string[] };
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

/** One accepted connection, whatever listener it came from. */
interface Accepted {
  duplex: Duplex;
  remote: Deno.NetAddr;
  local: Deno.NetAddr;
}

/** The part of a listener the accept loop uses (a Deno.Listener or a TlsListener). */
interface Acceptor {
  readonly addr: Deno.NetAddr;
  accept(): Promise<Accepted>;
  close(): void;
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
  #listener: Acceptor | undefined;
  #udp: Deno.DatagramConn | undefined;
  #options: InboundServerOptions;
  #shutdown = new AbortController();
  #conns = new Set<Duplex>();
  #tasks = new Set<Promise<void>>();
  #loops: Promise<void>[] = [];
  #closing: Promise<void> | undefined;

  /**
   * Binds at once (errors such as `Deno.errors.AddrInUse` are thrown here) with `Deno.listen`.
   * Plain TCP/UDP only, and its connections cannot be reset: a download cut short upstream reaches
   * the client as a FIN. The app uses `InboundServer.listen()`: node sockets that can send a RST,
   * and for TLS TCP_NODELAY — Deno's own TLS listener offers no way to turn Nagle off (~40 ms per
   * write-write-read round trip).
   */
  constructor(options: InboundServerOptions, listener?: Acceptor) {
    this.tag = options.tag;
    this.#options = options;
    const hostname = options.hostname ?? "127.0.0.1";
    if (!options.handler && !options.datagramHandler) {
      throw new TypeError(`Cannot start inbound "${options.tag}": no handler`);
    }
    if (listener) {
      this.#listener = listener;
    } else if (options.handler) {
      if (options.tls) {
        throw new TypeError(
          `Cannot start inbound "${options.tag}": TLS needs InboundServer.listen(), not the constructor`,
        );
      }
      this.#listener = denoAcceptor(
        Deno.listen({ hostname, port: options.port, transport: "tcp" }),
      );
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
    if (this.#listener) this.#loops.push(this.#acceptLoop(this.#listener));
    if (this.#udp) this.#loops.push(this.#serveUdp(this.#udp));
  }

  /**
   * Binds and resolves once listening. With `tls` the TCP port is served by node:tls
   * (TlsListener): every socket has TCP_NODELAY, and a client that does not finish its handshake
   * within TLS_HANDSHAKE_TIMEOUT_MS is dropped before any handler runs. Without `tls`, a node:net
   * listener (TcpListener) whose connections a relay can reset when the stream it copies is cut
   * short. UDP-only inbounds: the same as the constructor.
   */
  static async listen(options: InboundServerOptions): Promise<InboundServer> {
    const { tls, handler, logger, tag } = options;
    if (!handler) return new InboundServer(options);
    if (!tls) {
      const tcp = await TcpListener.listen({
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port,
        onError: (err) => logger.warn(`inbound "${tag}": accept failed: ${errorMessage(err)}`),
      });
      const acceptor: Acceptor = {
        addr: tcp.addr,
        accept: async () => {
          const a = await tcp.accept();
          return { duplex: a.duplex, remote: a.remoteAddr, local: a.localAddr };
        },
        close: () => tcp.close(),
      };
      try {
        return new InboundServer(options, acceptor);
      } catch (err) {
        tcp.close();
        throw err;
      }
    }
    const listener = await TlsListener.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port,
      cert: tls.cert,
      key: tls.key,
      alpnProtocols: tls.alpnProtocols,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      onError: (err, remote) =>
        logger.debug(
          `inbound "${tag}": TLS handshake with ${
            remote ? formatHostPort(remote.hostname, remote.port) : "a client"
          } failed: ${errorMessage(err)}`,
        ),
    });
    const acceptor: Acceptor = {
      addr: { transport: "tcp", ...listener.addr },
      accept: async () => {
        const a = await listener.accept();
        return {
          duplex: a.duplex,
          remote: { transport: "tcp", ...a.remoteAddr },
          local: { transport: "tcp", ...a.localAddr },
        };
      },
      close: () => listener.close(),
    };
    try {
      return new InboundServer(options, acceptor);
    } catch (err) {
      listener.close();
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

  /** Connections being served right now. */
  get active(): number {
    return this.#conns.size;
  }

  async #acceptLoop(listener: Acceptor): Promise<void> {
    let errors = 0;
    for (let n = 0; n < Number.MAX_SAFE_INTEGER; n++) {
      let conn: Accepted;
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

  async #serve(conn: Accepted): Promise<void> {
    const { handler, logger, dispatcher, policy, tag } = this.#options;
    const { duplex } = conn;
    this.#conns.add(duplex);
    const ctx: InboundContext = {
      tag,
      source: { host: conn.remote.hostname, port: conn.remote.port },
      localAddress: conn.local.hostname,
      dispatcher,
      policy,
      logger,
      signal: this.#shutdown.signal,
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
   * waits for their handlers to return.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    closeQuietly(this.#listener);
    if (graceMs > 0 && this.#tasks.size > 0) {
      await waitAtMost(Promise.all([...this.#tasks]), graceMs);
    }
    this.#shutdown.abort(new Deno.errors.Interrupted("inbound closing"));
    for (const c of this.#conns) c.close();
    closeQuietly(this.#udp);
    await Promise.all([...this.#tasks, ...this.#loops]);
  }
}

/** A Deno TCP listener as an Acceptor: every connection a ConnDuplex with Nagle off. */
function denoAcceptor(
  listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>,
): Acceptor {
  return {
    addr: listener.addr,
    accept: async () => {
      const conn = await listener.accept();
      try {
        conn.setNoDelay(true);
      } catch {
        // Already reset by the peer; the handler will see that.
      }
      return {
        duplex: new ConnDuplex(conn),
        remote: conn.remoteAddr,
        local: conn.localAddr,
      };
    },
    close: () => listener.close(),
  };
}

/**
 * Serves one connection (or HTTP/2 stream) with `handler`. Never throws: a handler that throws is
 * a bug, logged, and kept inside its connection. The dispatcher writes the access lines of what
 * it carried; a connection refused before it asked for a destination gets its line here.
 */
export async function serveOne(
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
