import { BufferLender, POOL_BUFFER_SIZE } from "./buffer_lender.ts";
import { closeQuietly } from "./close_quietly.ts";
import { canResetConn, resetConn } from "./conn_reset.ts";
import type { Duplex } from "./duplex.ts";

/** Most bytes one read may return; large reads keep per-chunk overhead low on bulk transfers. */
const READ_SIZE = POOL_BUFFER_SIZE;
/**
 * Reads land in a shared slab and are handed out as views of it. A fresh buffer per read costs
 * more than the read itself: TLS returns one 16 KiB record per read, and allocating (and zeroing)
 * a 64 KiB buffer for each measured about half the throughput of reusing memory (~300 vs
 * ~600 MiB/s here). A slab is retired once less than READ_SIZE is left; its memory is freed when
 * the last chunk cut from it has been consumed.
 *
 * An idle or interactive connection would pin a whole slab under its pending read, so reads start
 * in a small standalone buffer and move to the slab only once a read comes back large.
 *
 * Better than a slab: reading into buffers that come back. When the consumer writes our chunks to
 * a sink that gives them back (buffer_lender.ts: a relay into a socket or an HTTP/2 stream), bulk
 * reads cycle through a few pooled buffers of READ_SIZE and allocate nothing; the slab is only for
 * consumers that keep views. A consumer that owns its read memory (an HTTP/2 endpoint) skips
 * `readable` and calls `read(buf)`.
 */
const SLAB_SIZE = 256 * 1024;
/**
 * An idle connection's pending read holds this much (512 idle proxied connections: 1 MiB, where
 * 8 KiB cost 4 MiB). A read that fills it switches to bulk reads.
 */
const SMALL_READ = 2 * 1024;
/** Bulk reads go on while they return at least this much. */
const BULK_MIN = 4 * 1024;
/** One chunk being written, one waiting for the writer, one being read into. */
const LENT_BUFFERS = 3;
const EMPTY = new Uint8Array(0);

/**
 * Adapts a `Deno.Conn` (TCP, TLS or Unix) to a {@link Duplex} with real half-close.
 *
 * Deno's own `conn.writable` closes the whole socket when the stream closes, which would cut the
 * other direction; here closing `writable` calls `closeWrite()` (TCP FIN / TLS close_notify) so the
 * peer sees EOF while we keep reading its reply.
 *
 * `reset()` closes with a TCP RST where conn_reset.ts can (a connection accepted from
 * `Deno.listen` on Linux with FFI), else it is close().
 */
export class ConnDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly conn: Deno.Conn;
  /** A socket write copies the bytes out before it resolves. */
  readonly copiesWrites = true;
  #closed = false;
  /** A reset is under way: no more reads, and close() leaves the socket to it. */
  #resetting = false;
  /** Bytes read off the conn before it was wrapped (after a PROXY header): the first to read. */
  #head: Uint8Array | undefined;
  #slab = EMPTY;
  #offset = 0;
  #bulk = false;
  #lender = new BufferLender(LENT_BUFFERS);

  constructor(conn: Deno.Conn, options: { head?: Uint8Array } = {}) {
    this.conn = conn;
    if (options.head && options.head.byteLength > 0) this.#head = options.head;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (this.#head) {
          controller.enqueue(this.#head);
          this.#head = undefined;
          return;
        }
        if (this.#closed || this.#resetting) {
          controller.close();
          return;
        }
        let buf: Uint8Array;
        let own: Uint8Array | undefined;
        if (this.#bulk) {
          own = this.#lender.take();
          if (own) {
            buf = own;
          } else {
            if (this.#slab.byteLength - this.#offset < READ_SIZE) {
              this.#slab = new Uint8Array(SLAB_SIZE);
              this.#offset = 0;
            }
            buf = this.#slab.subarray(this.#offset, this.#offset + READ_SIZE);
          }
        } else {
          buf = new Uint8Array(SMALL_READ);
        }
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch (err) {
          if (own) this.#lender.put(own);
          if (this.#closed || this.#resetting) {
            controller.close();
            return;
          }
          throw err;
        }
        if (n === null) {
          if (own) this.#lender.put(own);
          this.#idle();
          controller.close();
          return;
        }
        if (this.#bulk && !own) this.#offset += n;
        this.#bulk = this.#bulk ? n >= BULK_MIN : n >= SMALL_READ;
        if (!this.#bulk) this.#idle();
        const chunk = buf.subarray(0, n);
        if (own) this.#lender.lend(chunk, own);
        controller.enqueue(chunk);
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

  /**
   * Reads into the caller's buffer: the byte count, or null at EOF (and once closed). For a
   * consumer that owns its read memory and reuses it from read to read (an HTTP/2 endpoint: it
   * copies whatever it keeps), instead of `readable`'s chunks; use one or the other, not both.
   */
  async read(buf: Uint8Array): Promise<number | null> {
    const head = this.#head;
    if (head) {
      const n = Math.min(head.byteLength, buf.byteLength);
      buf.set(head.subarray(0, n));
      this.#head = n < head.byteLength ? head.subarray(n) : undefined;
      return n;
    }
    if (this.#closed || this.#resetting) return null;
    try {
      return await this.conn.read(buf);
    } catch (err) {
      if (this.#closed || this.#resetting) return null;
      throw err;
    }
  }

  /** Back to small reads: a quiet connection must not pin a slab. */
  #idle(): void {
    this.#slab = EMPTY;
    this.#offset = 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idle();
    this.#head = undefined;
    // A reset on its way must not turn into a FIN (the server closes every served connection);
    // it closes the conn itself once the RST is out.
    if (!this.#resetting) closeQuietly(this.conn);
  }

  /**
   * Closes with a TCP RST, so the peer reads ECONNRESET instead of EOF: how a relay says the
   * stream it was copying was cut short. Reads stop at once; the RST waits (bounded, see
   * resetConn) until the peer has acknowledged what was written, since it discards the send
   * queue; then the conn is closed. close() meanwhile does not turn it into a FIN. Where the conn
   * cannot be reset (not accepted from `Deno.listen`, no FFI, not Linux) this is close().
   */
  reset(): void {
    if (this.#resetting) return;
    if (this.#closed || !canResetConn(this.conn)) {
      this.close();
      return;
    }
    this.#resetting = true;
    this.#idle();
    this.#head = undefined;
    resetConn(this.conn).catch(() => false).finally(() => {
      this.#closed = true;
      closeQuietly(this.conn);
    });
  }
}
