/**
 * The server side's one seam: a Listener yields accepted byte streams — TCP sockets, TLS sessions,
 * or streams inside another protocol (the v2ray http transport's HTTP/2 requests) — with who is on
 * the other end. The inbound server serves any of them with one accept loop.
 */
import type { Logger } from "../log.ts";
import { AcceptQueue } from "../net/accept_queue.ts";
import { ConnDuplex } from "../net/conn_duplex.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { detectConnReset } from "../net/conn_reset.ts";
import { DenoTcpListener } from "../net/deno_tcp_listener.ts";
import type { HostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { TcpListener, type TcpListenerOptions } from "../net/tcp_listener.ts";
import { TlsListener, type TlsListenerOptions } from "../net/tls_listener.ts";
import { acceptEach } from "./accept_each.ts";

/** One accepted stream. */
export interface Accepted {
  duplex: Duplex;
  /** The client's address (for a stream inside HTTP/2: its X-Forwarded-For IP when given). */
  remote: HostPort;
  /** The address the client connected to. */
  local: HostPort;
}

export interface Listener {
  readonly addr: Deno.NetAddr;
  /** The next stream; rejects (Deno.errors.BadResource) once the listener is closed. */
  accept(): Promise<Accepted>;
  /**
   * Stops accepting. Resolves once what the listener itself owns has ended — for a listener of
   * streams inside connections, once those connections have, after their streams were closed.
   */
  close(): Promise<void>;
}

/** Binds a TCP listener now; every socket a ConnDuplex with Nagle off. */
export function listenTcp(options: { hostname?: string; port: number }): Listener {
  const l = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
    transport: "tcp",
  });
  return {
    addr: l.addr,
    accept: async () => {
      const conn = await l.accept();
      try {
        // Small writes (a proxy reply, an HTTP/2 WINDOW_UPDATE) must not wait for an ACK.
        conn.setNoDelay(true);
      } catch {
        // Already reset by the peer; the handler will see that.
      }
      return {
        duplex: new ConnDuplex(conn),
        remote: { host: conn.remoteAddr.hostname, port: conn.remoteAddr.port },
        local: { host: conn.localAddr.hostname, port: conn.localAddr.port },
      };
    },
    close: () => {
      closeQuietly(l);
      return Promise.resolve();
    },
  };
}

/** The part of our listeners (DenoTcpListener, TcpListener, TlsListener) that a Listener wraps. */
interface NetListener {
  readonly addr: { hostname: string; port: number };
  accept(): Promise<{ duplex: Duplex; remoteAddr: NetAddress; localAddr: NetAddress }>;
  close(): void;
}

interface NetAddress {
  hostname: string;
  port: number;
}

function asListener(l: NetListener): Listener {
  return {
    addr: { transport: "tcp", ...l.addr },
    accept: async () => {
      const a = await l.accept();
      return {
        duplex: a.duplex,
        remote: { host: a.remoteAddr.hostname, port: a.remoteAddr.port },
        local: { host: a.localAddr.hostname, port: a.localAddr.port },
      };
    },
    close: () => {
      l.close();
      return Promise.resolve();
    },
  };
}

/**
 * Binds a TCP listener whose connections a relay can reset (RST) when the stream it copies was cut
 * short, with TCP_NODELAY: on `Deno.listen` (DenoTcpListener) where conn_reset.ts can send the
 * RST (Linux, --allow-ffi), else on node:net (TcpListener), whose sockets can but cost more CPU.
 * Which one is decided once per process; `logger` hears which at debug level.
 */
export async function listenResettableTcp(
  options: TcpListenerOptions & { logger?: Logger; what?: string },
): Promise<Listener> {
  const support = await detectConnReset();
  const what = options.what ?? "TCP listener";
  if (support.supported) {
    options.logger?.debug(`${what}: plain TCP on Deno.listen (resets through libc)`);
    return asListener(await DenoTcpListener.listen(options));
  }
  options.logger?.debug(`${what}: plain TCP on node:net, since ${support.reason}`);
  return asListener(await TcpListener.listen(options));
}

/**
 * Binds a TLS listener (node:tls, TlsListener): every socket has TCP_NODELAY — Deno's own TLS
 * listener cannot turn Nagle off (~40 ms per write-write-read round trip) — and a client that does
 * not finish its handshake within `handshakeTimeout` is dropped before anyone sees it.
 */
export async function listenTls(options: TlsListenerOptions): Promise<Listener> {
  return asListener(await TlsListener.listen(options));
}

/**
 * The shared half of a Listener of streams built on a Listener of sockets (WsServer's WebSockets,
 * V2rayHttpServer's HTTP/2 streams): runs the accept loop, hands each socket to `serve`, queues
 * the streams `offer`ed for accept(), and closes in order — sockets, the handshakes still under
 * way, the queue — then waits for every `serve` to end.
 */
export class SocketStreams {
  readonly #sockets: Listener;
  /** Sockets accepted whose handshake has not finished yet: closing closes them. */
  readonly handshaking = new Set<Duplex>();
  readonly #queue = new AcceptQueue<Accepted>();
  readonly #serving = new Set<Promise<void>>();
  readonly #acceptDone: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    sockets: Listener,
    serve: (socket: Accepted) => Promise<void>,
    options: { logger: Logger; what: string },
  ) {
    this.#sockets = sockets;
    this.#acceptDone = acceptEach(sockets, (a) => {
      const task = serve(a);
      this.#serving.add(task);
      task.finally(() => this.#serving.delete(task));
    }, { ...options, stopped: () => this.closing });
  }

  get addr(): Deno.NetAddr {
    return this.#sockets.addr;
  }

  /** Whether close() was called. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  accept(): Promise<Accepted> {
    return this.#queue.take();
  }

  /** Queues a stream for accept() (closed at once after close()). */
  offer(stream: Accepted): void {
    this.#queue.offer(stream);
  }

  /** Idempotent; `drain` (called once) adds what else closing waits for. */
  close(drain: () => Promise<void>[] = () => []): Promise<void> {
    this.#closing ??= this.#close(drain);
    return this.#closing;
  }

  async #close(drain: () => Promise<void>[]): Promise<void> {
    const stopped = this.#sockets.close();
    for (const d of this.handshaking) d.close();
    this.#queue.close();
    await Promise.all([stopped, this.#acceptDone, ...drain(), ...this.#serving]);
  }
}
