import type { Duplex } from "./duplex.ts";

/** Size of each read from the socket; large reads keep per-chunk overhead low on bulk transfers. */
const READ_SIZE = 64 * 1024;

/**
 * Adapts a `Deno.Conn` (TCP, TLS or Unix) to a {@link Duplex} with real half-close.
 *
 * Deno's own `conn.writable` closes the whole socket when the stream closes, which would cut the
 * other direction; here closing `writable` calls `closeWrite()` (TCP FIN / TLS close_notify) so the
 * peer sees EOF while we keep reading its reply.
 */
export class ConnDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly conn: Deno.Conn;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const buf = new Uint8Array(READ_SIZE);
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch (err) {
          if (this.#closed) {
            controller.close();
            return;
          }
          throw err;
        }
        if (n === null) {
          controller.close();
          return;
        }
        // A small read would pin a whole READ_SIZE buffer while it waits in a queue; copy it out.
        controller.enqueue(n < READ_SIZE / 4 ? buf.slice(0, n) : buf.subarray(0, n));
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        let off = 0;
        while (off < chunk.byteLength) off += await conn.write(chunk.subarray(off));
      },
      close: async () => {
        try {
          await conn.closeWrite();
        } catch {
          // Already closed or reset: the peer cannot be told about EOF any more, nothing to do.
        }
      },
      abort: () => this.close(),
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Closing an already-closed resource is not an error for us.
    }
  }
}
