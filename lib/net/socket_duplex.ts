/**
 * A node:net or node:tls socket as a {@link Duplex}, with a real abortive close (`reset()`).
 *
 * Where node sockets serve: TLS (node:tls can turn Nagle off, Deno's TLS listener cannot), and
 * plain TCP inbounds where conn_reset.ts cannot reset a `Deno.Conn` (not Linux, no --allow-ffi):
 * a `Deno.Conn`'s close() always shuts the write side down (FIN) before closing, so a peer would
 * read a clean EOF where a stream was cut short. node sockets offer `resetAndDestroy()` (SO_LINGER
 * 0).
 */
import type { Socket } from "node:net";
import tls from "node:tls";
import { RESET_DELAY_MS } from "./conn_reset.ts";
import type { Duplex } from "./duplex.ts";

/** Bytes the readable queues ahead of its reader before the socket is paused. */
const READ_QUEUE_BYTES = 128 * 1024;

/** The part of a libuv stream handle that starts and stops reading from the kernel. */
interface ReadControl {
  readStart(): number;
  readStop(): number;
}

/**
 * The TCP handle under a node socket (for TLS: under its TLS layer), when we can reach it.
 *
 * Deno 2.9's `TLSSocket.pause()` does not bound memory: its TLS layer keeps reading the TCP socket
 * and queues the decrypted bytes, so a peer that sends faster than we consume grows our heap
 * without limit (measured: 700 MiB for a paused socket). It also loses the peer's EOF when it
 * arrives while paused. Starting and stopping the TCP handle's reads instead leaves the data in
 * the kernel, where TCP flow control slows the sender, and the TLS layer sees EOF normally.
 */
function tcpHandleOf(socket: Socket): ReadControl | undefined {
  const internals = socket as unknown as {
    _handle?: Partial<ReadControl> & { _nativeTcpHandle?: Partial<ReadControl> };
    _parent?: { _handle?: Partial<ReadControl> };
  };
  // A TLS socket's own handle is its TLS layer, whose reads must not be stopped (see above).
  const handle = socket instanceof tls.TLSSocket
    ? internals._handle?._nativeTcpHandle ?? internals._parent?._handle
    : internals._handle;
  if (typeof handle?.readStart === "function" && typeof handle.readStop === "function") {
    return handle as ReadControl;
  }
  return undefined;
}

/**
 * A node socket (TCP or TLS) as a {@link Duplex} whose streams are backed by the socket without
 * copies: reads pause the socket while the readable's queue is full, a write resolves once node
 * has taken the bytes, closing the writable sends FIN (TLS: close_notify + FIN) while reading goes
 * on, and `reset()` sends a TCP RST.
 */
export class SocketDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** A write resolves on node's callback, once the TLS layer is done with the chunk. */
  readonly copiesWrites = true;
  readonly #socket: Socket;
  readonly #stopReading: () => void;
  #resetTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(socket: Socket) {
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
    this.#stopReading = stopReading;
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
            reject(failure ?? new Deno.errors.BrokenPipe("socket is closed"));
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
    // A reset on its way must not turn into a FIN (the server closes every served connection).
    if (this.#resetTimer !== undefined) return;
    this.#destroy();
  }

  #destroy(): void {
    try {
      this.#socket.destroy();
    } catch {
      // Destroying twice is not an error for us.
    }
  }

  /**
   * Closes with a TCP RST (SO_LINGER 0), so the peer reads ECONNRESET instead of EOF: how a relay
   * says the stream it was copying was cut short. A TLS socket's RST goes out on the TCP socket
   * under it, without close_notify.
   *
   * A RST discards what is still in the kernel's send queue, and nothing tells us when that queue
   * is empty (no SIOCOUTQ here): the RST goes out RESET_DELAY_MS later, time for a reading client
   * to take the bytes already written. Reads stop at once. close() meanwhile does not turn it into
   * a FIN.
   */
  reset(): void {
    if (this.#resetTimer !== undefined || this.#socket.destroyed) return;
    this.#stopReading();
    this.#resetTimer = setTimeout(() => {
      const tcp = (this.#socket as unknown as { _parent?: Socket })._parent ?? this.#socket;
      try {
        if (typeof tcp.resetAndDestroy === "function") tcp.resetAndDestroy();
      } catch {
        // Already gone: destroy() below is all there is left to do.
      }
      this.#destroy();
    }, RESET_DELAY_MS);
  }
}
