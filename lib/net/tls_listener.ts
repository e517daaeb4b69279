/**
 * A TLS listener for dray's server side, built on `node:tls` so that every accepted socket can run
 * with TCP_NODELAY.
 *
 * Why not `Deno.listenTls`: its accepted connections offer no `setNoDelay()`, so Nagle's algorithm
 * stays on. A reply written in two pieces then waits for the client's delayed ACK — about 40 ms per
 * round trip of a write-write-read exchange, and HTTP/2's small WINDOW_UPDATE and HEADERS frames
 * are held the same way. node:tls sockets can turn Nagle off before the handshake starts.
 *
 * The shape follows `Deno.Listener`: `accept()`, async iteration, `close()`, `addr`. Every accepted
 * connection is a {@link Duplex} whose streams are backed by the node socket without copies:
 * reads pause the socket while the readable's queue is full, a write resolves once node has taken
 * the bytes, closing the writable sends close_notify + FIN while reading goes on.
 */
import net, { type Socket } from "node:net";
import tls from "node:tls";
import { AcceptQueue } from "./accept_queue.ts";
import { CertificateSelector, type ServerCertificate } from "./certificate_selector.ts";
import { closeQuietly } from "./close_quietly.ts";
import type { Duplex } from "./duplex.ts";
import { readProxyHeader } from "./proxy_header_reader.ts";
import { listenServer } from "./listen_server.ts";
import { SocketDuplex } from "./socket_duplex.ts";

export interface TlsListenerOptions {
  hostname: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /** Certificate chain (PEM text). */
  cert: string;
  /** Private key (PEM text). */
  key: string;
  /**
   * More certificates, each served to clients whose SNI names it (v2ray's rule, see
   * CertificateSelector); `cert`/`key` serve everyone else.
   */
  sniCertificates?: ServerCertificate[];
  /** ALPN protocols offered, in order of preference; the client's pick is `alpnProtocol`. */
  alpnProtocols?: string[];
  /** A client that has not finished the handshake after this many ms is dropped. Default 10 000. */
  handshakeTimeout?: number;
  /**
   * A connection whose handshake finished but that nobody accepted within this many ms is closed
   * and reported through `onError` (a `Deno.errors.TimedOut`). Default: `handshakeTimeout`.
   */
  acceptTimeout?: number;
  /**
   * Every connection starts with a PROXY protocol header (v1 or v2) before its TLS handshake, as
   * v2ray's `acceptProxyProtocol`; the header's source address becomes `remoteAddr`. A connection
   * without a valid header within `handshakeTimeout` is closed and reported through `onError`.
   */
  acceptProxyProtocol?: boolean;
  /**
   * Handshake failures and connections closed unaccepted (never seen by `accept()`), and server
   * errors (`remote` null), for the caller's log.
   */
  onError?: (err: Error, remote: NetAddress | null) => void;
}

export interface NetAddress {
  hostname: string;
  port: number;
}

export interface AcceptedTls {
  duplex: Duplex;
  remoteAddr: NetAddress;
  localAddr: NetAddress;
  /** The ALPN protocol both sides agreed on, or null when none was negotiated. */
  alpnProtocol: string | null;
}

/** Long enough for a slow client on a bad link; v2ray's inbound handshake policy is 4 s. */
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

export class TlsListener implements AsyncIterable<AcceptedTls> {
  readonly addr: NetAddress;
  readonly #server: tls.Server;
  /** With acceptProxyProtocol: the listening server, which hands sockets to `#server` after the header. */
  readonly #front: net.Server | undefined;
  /** Sources from PROXY headers, by the socket's remote "address port", until its handshake ends. */
  readonly #sources = new Map<string, NetAddress>();
  /**
   * Connections whose handshake finished, in order, until accept() takes them. Not bounded in
   * count: node:tls accepts every TCP connection and runs its handshake at once, so what waits
   * here is what finished out of those — bursts of hundreds finish between two turns of an accept
   * loop (a 128 cap once closed them unseen: 512 parallel v2ray clients lost up to 193). Bounded
   * in time instead, like the handshakes: `acceptTimeout`.
   */
  readonly #queue = new AcceptQueue<AcceptedTls>();
  /** The expiry timer of each connection waiting in the queue. */
  readonly #expiries = new Map<AcceptedTls, ReturnType<typeof setTimeout>>();
  readonly #acceptTimeout: number;
  readonly #onError: TlsListenerOptions["onError"];

  private constructor(
    server: tls.Server,
    addr: NetAddress,
    opts: TlsListenerOptions & { front?: net.Server },
  ) {
    this.#server = server;
    this.#front = opts.front;
    opts.front?.on("connection", (socket: Socket) => this.#readProxyHeader(socket, opts));
    this.addr = addr;
    this.#acceptTimeout = opts.acceptTimeout ?? opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    this.#onError = opts.onError;
    server.on("secureConnection", (socket: tls.TLSSocket) => this.#onSecure(socket));
  }

  /** Binds and listens; rejects as `Deno.listen` would (e.g. `Deno.errors.AddrInUse`). */
  static async listen(opts: TlsListenerOptions): Promise<TlsListener> {
    const { onError } = opts;
    const server = tls.createServer({
      cert: opts.cert,
      key: opts.key,
      SNICallback: sniCallback(opts),
      ALPNProtocols: opts.alpnProtocols,
      // A client's close_notify/FIN ends our readable only; we may still write the rest.
      allowHalfOpen: true,
      // Off before the handshake: TLS 1.3 session tickets would otherwise wait for a delayed ACK.
      noDelay: true,
      handshakeTimeout: opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
    });
    server.on("connection", (socket: Socket) => {
      // `noDelay` above is not honoured everywhere; setting it again is harmless.
      try {
        socket.setNoDelay(true);
      } catch {
        // Reset already; the handshake will fail and be reported below.
      }
    });
    server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      const remote = socket.remoteAddress === undefined
        ? null
        : { hostname: socket.remoteAddress, port: socket.remotePort ?? 0 };
      socket.destroy();
      try {
        onError?.(err, remote);
      } catch {
        // The caller's logger failing must not take the listener down.
      }
    });
    // With the PROXY protocol a plain server listens, reads each header, then hands the socket
    // to the TLS server (node's documented `emit("connection")`), which never listens itself.
    const front = opts.acceptProxyProtocol
      ? net.createServer({ allowHalfOpen: true, noDelay: true })
      : undefined;
    const bound: net.Server = front ?? server;
    // Later server errors (accept failing with EMFILE…) are reported, never thrown.
    const addr = await listenServer(bound, {
      hostname: opts.hostname,
      port: opts.port,
      onError: (err) => onError?.(err, null),
    });
    return new TlsListener(server, addr, { ...opts, front });
  }

  /** The header first; then the TLS server takes the socket, its source noted for `#onSecure`. */
  #readProxyHeader(socket: Socket, opts: TlsListenerOptions): void {
    try {
      socket.setNoDelay(true);
    } catch {
      // Reset already; reading the header fails below.
    }
    const remote = { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    const timeoutMs = opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    readProxyHeader(socket, { timeoutMs }).then((header) => {
      if (this.#queue.closed) {
        socket.destroy();
        return;
      }
      const key = sourceKey(socket);
      if (header.source) {
        this.#sources.set(key, { hostname: header.source.host, port: header.source.port });
        socket.once("close", () => this.#sources.delete(key));
      }
      this.#server.emit("connection", socket);
    }, (err: Error) => {
      socket.destroy();
      try {
        this.#onError?.(err, remote);
      } catch {
        // The caller's logger failing must not take the listener down.
      }
    });
  }

  #onSecure(socket: tls.TLSSocket): void {
    if (this.#queue.closed) {
      socket.destroy();
      return;
    }
    let source: NetAddress | undefined;
    if (this.#front) {
      const key = sourceKey(socket);
      source = this.#sources.get(key);
      this.#sources.delete(key);
    }
    const accepted: AcceptedTls = {
      duplex: new SocketDuplex(socket),
      remoteAddr: source ??
        { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
      localAddr: { hostname: socket.localAddress ?? "", port: socket.localPort ?? 0 },
      alpnProtocol: typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : null,
    };
    if (this.#queue.offer(accepted)) return;
    this.#expiries.set(accepted, setTimeout(() => this.#expire(accepted), this.#acceptTimeout));
  }

  /** Closes a connection nobody accepted in time, and says so. */
  #expire(accepted: AcceptedTls): void {
    this.#expiries.delete(accepted);
    if (!this.#queue.remove(accepted)) return;
    accepted.duplex.close();
    const { hostname, port } = accepted.remoteAddr;
    try {
      this.#onError?.(
        new Deno.errors.TimedOut(
          `connection from ${hostname}:${port} was not accepted within ${this.#acceptTimeout} ms ` +
            `after its TLS handshake; closed`,
        ),
        accepted.remoteAddr,
      );
    } catch {
      // The caller's logger failing must not take the listener down.
    }
  }

  /** The next connection whose handshake finished. Rejects with `BadResource` once closed. */
  async accept(): Promise<AcceptedTls> {
    const accepted = await this.#queue.take();
    clearTimeout(this.#expiries.get(accepted));
    this.#expiries.delete(accepted);
    return accepted;
  }

  /** Stops listening, rejects pending `accept()`s, drops connections nobody accepted. */
  close(): void {
    if (this.#queue.closed) return;
    if (this.#front) closeQuietly(this.#front);
    else closeQuietly(this.#server);
    for (const timer of this.#expiries.values()) clearTimeout(timer);
    this.#expiries.clear();
    this.#queue.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<AcceptedTls> {
    for (;;) {
      let a: AcceptedTls;
      try {
        a = await this.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource) return;
        throw err;
      }
      yield a;
    }
  }
}

/** A socket's remote address and port: the same for the TLS socket as for the TCP one under it. */
function sourceKey(socket: Socket): string {
  return `${socket.remoteAddress} ${socket.remotePort}`;
}

/** Picks a certificate per SNI when there are several; undefined (node's default) for one. */
function sniCallback(
  opts: TlsListenerOptions,
): ((name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void) | undefined {
  if (!opts.sniCertificates || opts.sniCertificates.length === 0) return undefined;
  const selector = new CertificateSelector([
    { cert: opts.cert, key: opts.key },
    ...opts.sniCertificates,
  ]);
  // Built once: a context per handshake would parse the key every time.
  const contexts = selector.certificates.map((c) => tls.createSecureContext(c));
  return (name, cb) => cb(null, contexts[selector.indexFor(name)]);
}
