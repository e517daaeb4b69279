/**
 * A plain TCP listener on `node:net` whose connections can be reset: every accepted connection is
 * a {@link SocketDuplex} with TCP_NODELAY, real half-close and `reset()` (TCP RST).
 *
 * The fallback for DenoTcpListener (on `Deno.listen`, cheaper per byte), which needs conn_reset.ts
 * to reset a `Deno.Conn` (Linux, --allow-ffi): elsewhere a Deno.Conn has no abortive close (its
 * close() sends FIN first, and Deno has no SO_LINGER), so a proxy on it could not tell a client
 * that the download it was relaying was cut short — the client would read a clean EOF and keep a
 * truncated file.
 *
 * The shape follows `Deno.Listener`: `accept()`, `close()`, `addr`.
 */
import net from "node:net";
import { AcceptQueue } from "./accept_queue.ts";
import { closeQuietly } from "./close_quietly.ts";
import type { Duplex } from "./duplex.ts";
import { readProxyHeader } from "./proxy_header_reader.ts";
import { SocketDuplex } from "./socket_duplex.ts";
import { listenServer } from "./listen_server.ts";

export interface TcpListenerOptions {
  hostname: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /**
   * Every connection starts with a PROXY protocol header (v1 or v2), whose source address becomes
   * `remoteAddr` (v2ray's `acceptProxyProtocol`). A connection without a valid one within
   * `proxyHeaderTimeout` is closed and reported through `onError` with its socket address.
   */
  acceptProxyProtocol?: boolean;
  /** Default PROXY_HEADER_TIMEOUT_MS. */
  proxyHeaderTimeout?: number;
  /**
   * Server errors after listening (accept failing with EMFILE…; `remote` absent), and connections
   * closed for a bad PROXY header (`remote` their socket address), for the caller's log.
   */
  onError?: (err: Error, remote?: Deno.NetAddr) => void;
}

/** How long a connection may take to send its PROXY protocol header. */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;

export interface AcceptedTcp {
  duplex: Duplex;
  remoteAddr: Deno.NetAddr;
  localAddr: Deno.NetAddr;
}

export class TcpListener {
  readonly addr: Deno.NetAddr;
  readonly #server: net.Server;
  readonly #queue = new AcceptQueue<AcceptedTcp>();
  readonly #opts: TcpListenerOptions;

  private constructor(server: net.Server, addr: Deno.NetAddr, opts: TcpListenerOptions) {
    this.#server = server;
    this.addr = addr;
    this.#opts = opts;
    server.on("connection", (socket: net.Socket) => {
      if (opts.acceptProxyProtocol) this.#readProxyHeader(socket);
      else this.#onConnection(socket);
    });
  }

  /** Binds and listens; rejects as `Deno.listen` would (e.g. `Deno.errors.AddrInUse`). */
  static async listen(opts: TcpListenerOptions): Promise<TcpListener> {
    // allowHalfOpen: a client's FIN ends our readable only; we may still write the rest.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const a = await listenServer(server, opts);
    return new TcpListener(server, { transport: "tcp", ...a }, opts);
  }

  /** The header first; then the connection is accepted as coming from the header's source. */
  #readProxyHeader(socket: net.Socket): void {
    const remote: Deno.NetAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    const timeoutMs = this.#opts.proxyHeaderTimeout ?? PROXY_HEADER_TIMEOUT_MS;
    readProxyHeader(socket, { timeoutMs }).then((header) => {
      const source = header.source &&
        { transport: "tcp" as const, hostname: header.source.host, port: header.source.port };
      this.#onConnection(socket, source);
      // readProxyHeader left it paused with the rest put back; the duplex reads from here on.
      socket.resume();
    }, (err: Error) => {
      socket.destroy();
      try {
        this.#opts.onError?.(err, remote);
      } catch {
        // The caller's logger failing must not take the listener down.
      }
    });
  }

  #onConnection(socket: net.Socket, source?: Deno.NetAddr): void {
    if (this.#queue.closed) {
      socket.destroy();
      return;
    }
    try {
      socket.setNoDelay(true);
    } catch {
      // Reset already; the handler will see that.
    }
    const accepted: AcceptedTcp = {
      duplex: new SocketDuplex(socket),
      remoteAddr: source ?? {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      },
      localAddr: {
        transport: "tcp",
        hostname: socket.localAddress ?? "",
        port: socket.localPort ?? 0,
      },
    };
    // The inbound's accept loop takes connections as fast as they come; the kernel's backlog
    // bounds what waits before node sees it.
    this.#queue.offer(accepted);
  }

  /** The next connection. Rejects with `BadResource` once closed. */
  accept(): Promise<AcceptedTcp> {
    return this.#queue.take();
  }

  /** Stops listening, rejects pending `accept()`s, drops connections nobody accepted. */
  close(): void {
    if (this.#queue.closed) return;
    closeQuietly(this.#server);
    this.#queue.close();
  }
}
