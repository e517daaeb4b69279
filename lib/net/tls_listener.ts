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
import type { Socket } from "node:net";
import tls from "node:tls";
import type { Duplex } from "./duplex.ts";
import { closeQuietly } from "./close_quietly.ts";

export interface TlsListenerOptions {
  hostname: string;
  /** 0 picks a free port (see `addr`). */
  port: number;
  /** Certificate chain (PEM text). */
  cert: string;
  /** Private key (PEM text). */
  key: string;
  /** ALPN protocols offered, in order of preference; the client's pick is `alpnProtocol`. */
  alpnProtocols?: string[];
  /** A client that has not finished the handshake after this many ms is dropped. Default 10 000. */
  handshakeTimeout?: number;
  /** Handshake failures (never seen by `accept()`), for the caller's log. */
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
/**
 * Connections that finished their handshake but nobody accepted yet. Beyond this, new ones are
 * dropped: an owner that stops calling accept() must not make us hold sockets without bound.
 */
const ACCEPT_QUEUE = 128;
/** Bytes the readable queues ahead of its reader before the socket is paused. */
const READ_QUEUE_BYTES = 128 * 1024;

export class TlsListener implements AsyncIterable<AcceptedTls> {
  readonly addr: NetAddress;
  readonly #server: tls.Server;
  readonly #queue: AcceptedTls[] = [];
  readonly #waiters: PromiseWithResolvers<AcceptedTls>[] = [];
  #closed = false;

  private constructor(server: tls.Server, addr: NetAddress) {
    this.#server = server;
    this.addr = addr;
    server.on("secureConnection", (socket: tls.TLSSocket) => this.#onSecure(socket));
  }

  /** Binds and listens; rejects as `Deno.listen` would (e.g. `Deno.errors.AddrInUse`). */
  static async listen(opts: TlsListenerOptions): Promise<TlsListener> {
    const { onError } = opts;
    const server = tls.createServer({
      cert: opts.cert,
      key: opts.key,
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
    const listening = Promise.withResolvers<void>();
    const onListenError = (err: Error) => listening.reject(toDenoError(err));
    server.once("error", onListenError);
    server.listen({ host: opts.hostname, port: opts.port }, () => listening.resolve());
    try {
      await listening.promise;
    } catch (err) {
      server.close();
      throw err;
    }
    server.off("error", onListenError);
    // Later server errors (accept failing with EMFILE…) are reported, never thrown.
    server.on("error", (err: Error) => {
      try {
        onError?.(err, null);
      } catch {
        // As above.
      }
    });
    const a = server.address();
    if (a === null || typeof a === "string") {
      server.close();
      throw new TypeError(`Cannot listen on ${opts.hostname}:${opts.port}: no TCP address`);
    }
    return new TlsListener(server, { hostname: a.address, port: a.port });
  }

  #onSecure(socket: tls.TLSSocket): void {
    if (this.#closed || (this.#waiters.length === 0 && this.#queue.length >= ACCEPT_QUEUE)) {
      socket.destroy();
      return;
    }
    const accepted: AcceptedTls = {
      duplex: new TlsSocketDuplex(socket),
      remoteAddr: { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
      localAddr: { hostname: socket.localAddress ?? "", port: socket.localPort ?? 0 },
      alpnProtocol: typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : null,
    };
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(accepted);
    else this.#queue.push(accepted);
  }

  /** The next connection whose handshake finished. Rejects with `BadResource` once closed. */
  accept(): Promise<AcceptedTls> {
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("Listener has been closed"));
    }
    const waiter = Promise.withResolvers<AcceptedTls>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  /** Stops listening, rejects pending `accept()`s, drops connections nobody accepted. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#server);
    for (const a of this.#queue.splice(0)) a.duplex.close();
    for (const w of this.#waiters.splice(0)) {
      w.reject(new Deno.errors.BadResource("Listener has been closed"));
    }
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

/** Node's bind errors carry a code; callers of a Deno-shaped listener expect Deno's classes. */
function toDenoError(err: Error): Error {
  const code = (err as { code?: string }).code;
  const message = err.message;
  switch (code) {
    case "EADDRINUSE":
      return new Deno.errors.AddrInUse(message, { cause: err });
    case "EADDRNOTAVAIL":
      return new Deno.errors.AddrNotAvailable(message, { cause: err });
    case "EACCES":
    case "EPERM":
      return new Deno.errors.PermissionDenied(message, { cause: err });
    default:
      return err;
  }
}

/** The part of a libuv stream handle that starts and stops reading from the kernel. */
interface ReadControl {
  readStart(): number;
  readStop(): number;
}

/**
 * The TCP handle under a node TLS socket, when we can reach it.
 *
 * Deno 2.9's `TLSSocket.pause()` does not bound memory: its TLS layer keeps reading the TCP socket
 * and queues the decrypted bytes, so a peer that sends faster than we consume grows our heap
 * without limit (measured: 700 MiB for a paused socket). It also loses the peer's EOF when it
 * arrives while paused. Starting and stopping the TCP handle's reads instead leaves the data in
 * the kernel, where TCP flow control slows the sender, and the TLS layer sees EOF normally.
 */
function tcpHandleOf(socket: tls.TLSSocket): ReadControl | undefined {
  const internals = socket as unknown as {
    _handle?: { _nativeTcpHandle?: Partial<ReadControl> };
    _parent?: { _handle?: Partial<ReadControl> };
  };
  const handle = internals._handle?._nativeTcpHandle ?? internals._parent?._handle;
  if (typeof handle?.readStart === "function" && typeof handle.readStop === "function") {
    return handle as ReadControl;
  }
  return undefined;
}

/** A node TLS socket as a {@link Duplex}. */
class TlsSocketDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** A write resolves on node's callback, once the TLS layer is done with the chunk. */
  readonly copiesWrites = true;
  readonly #socket: tls.TLSSocket;

  constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    // The socket may fail before anyone reads or writes; without a listener node would throw.
    let failure: Error | undefined;
    socket.on("error", (err: Error) => (failure ??= err));

    const tcp = tcpHandleOf(socket);
    let done = false;
    let reading = true;
    const stopReading = () => {
      if (!reading) return;
      reading = false;
      if (tcp) tcp.readStop();
      else socket.pause();
    };
    const startReading = () => {
      if (reading || done || socket.destroyed) return;
      reading = true;
      if (tcp) tcp.readStart();
      else socket.resume();
    };

    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        socket.on("data", (chunk: Uint8Array) => {
          if (done) return;
          // A plain view of node's Buffer (no copy): Buffer#slice would not copy for a consumer.
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) stopReading();
        });
        socket.on("end", () => {
          if (done) return;
          done = true;
          controller.close();
        });
        socket.on("close", () => {
          if (done) return;
          done = true;
          if (failure) controller.error(failure);
          // Destroyed without an error (our own close()): the reader sees EOF.
          else controller.close();
        });
      },
      pull: startReading,
      cancel: () => {
        done = true;
        this.close();
      },
    }, { highWaterMark: READ_QUEUE_BYTES, size: (chunk) => chunk.byteLength });

    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) =>
        new Promise<void>((resolve, reject) => {
          if (socket.destroyed) {
            reject(failure ?? new Deno.errors.BrokenPipe("TLS socket is closed"));
            return;
          }
          // Node keeps a reference to `chunk` until its callback; we resolve only then, so the
          // caller may reuse its buffer afterwards and at most one chunk is in node's hands.
          socket.write(chunk, (err?: Error | null) => {
            if (err) return reject(failure ?? err);
            resolve();
          });
        }),
      close: () =>
        new Promise<void>((resolve) => {
          if (socket.destroyed || socket.writableEnded) {
            resolve();
            return;
          }
          // close_notify + FIN; 'finish' once they are flushed. A reset meanwhile ends it too:
          // the peer can no longer be told about EOF, nothing more to do.
          const settle = () => {
            socket.off("finish", settle);
            socket.off("close", settle);
            resolve();
          };
          socket.once("finish", settle);
          socket.once("close", settle);
          socket.end();
        }),
      abort: () => this.close(),
    });
  }

  close(): void {
    try {
      this.#socket.destroy();
    } catch {
      // Destroying twice is not an error for us.
    }
  }
}
