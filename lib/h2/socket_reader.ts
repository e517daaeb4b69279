/**
 * The read side of an HTTP/2 connection, for either role: the bytes the peer sent, read into
 * memory the connection owns whenever the duplex offers `read(buf)` (a `ConnDuplex`), else the
 * duplex's `readable` chunks.
 *
 * Reusing one buffer is safe here and nowhere else: the read loop handles every frame cut from a
 * read before it reads again, and whatever outlives the handler (bodies, header-block fragments) is
 * copied. So the duplex never lends us memory, and nobody has to give any back.
 */
import { BufferLender, poisonReused, POOL_BUFFER_SIZE } from "../net/buffer_lender.ts";
import type { Duplex } from "../net/duplex.ts";

/** A duplex that can read into the caller's buffer (null at EOF), as `Deno.Conn` does. */
export interface ReadInto {
  read(buf: Uint8Array): Promise<number | null>;
}

/** Bulk reads: large enough that a fast transfer pays little per read. */
const READ_SIZE = POOL_BUFFER_SIZE;
/**
 * What an idle connection's pending read holds (512 idle connections: 1 MiB, where 8 KiB cost
 * 4 MiB). A read that fills it switches to bulk reads.
 */
const SMALL_READ = 2 * 1024;
/** Bulk reads go on while they return at least this much. */
const BULK_MIN = 4 * 1024;

function chunkOf(r: ReadableStreamReadResult<Uint8Array>): Uint8Array | null {
  return r.done ? null : r.value;
}

export class SocketReader {
  #source: ReadInto | undefined;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #small: Uint8Array | undefined;
  /** The bulk buffer, while reads are bulk; from the pool, so quiet connections hold none. */
  #bulk: Uint8Array | undefined;
  #lender: BufferLender | undefined;
  /** The last read says the next one should be bulk. */
  #bulkNext = false;
  /** The buffer of the read in progress. */
  #buf: Uint8Array | undefined;

  constructor(duplex: Duplex & Partial<ReadInto>) {
    if (typeof duplex.read === "function") this.#source = duplex as ReadInto;
    else this.#reader = duplex.readable.getReader();
  }

  /**
   * The next bytes read, valid until the next call; null at EOF. Rejects with what the read threw.
   * Not an async function: every read of a download went through here, and an async layer's
   * promise and suspended frame per read were the client's largest source of garbage
   * (memory_probe.ts --alloc-profile: ~175 bytes per KiB downloaded from a v2ray server).
   */
  read(): Promise<Uint8Array | null> {
    if (this.#reader) return this.#reader.read().then(chunkOf);
    // The caller is done with the last read's bytes: its buffer may change now.
    if (this.#bulk !== undefined && !this.#bulkNext) {
      this.#lender!.put(this.#bulk);
      this.#bulk = undefined;
    } else if (this.#bulk === undefined && this.#bulkNext) {
      this.#lender ??= new BufferLender(1);
      this.#bulk = this.#lender.take() ?? new Uint8Array(READ_SIZE);
    }
    this.#buf = this.#bulk ?? (this.#small ??= new Uint8Array(SMALL_READ));
    // Debug guard (off: a no-op): a view of the last read kept past this point reads garbage.
    poisonReused(this.#buf);
    return this.#source!.read(this.#buf).then(this.#received);
  }

  /** What a read into `#buf` returned, as the bytes it read. */
  readonly #received = (n: number | null): Uint8Array | null => {
    if (n === null) return null;
    const buf = this.#buf!;
    this.#bulkNext = this.#bulk !== undefined ? n >= BULK_MIN : n === SMALL_READ;
    return n === buf.byteLength ? buf : buf.subarray(0, n);
  };

  /** Stops reading (the read loop is over): cancels the readable, or returns the bulk buffer. */
  release(): void {
    if (this.#reader) {
      this.#reader.cancel().catch(() => {});
      this.#reader.releaseLock();
      this.#reader = undefined;
      return;
    }
    if (this.#bulk) this.#lender!.put(this.#bulk);
    this.#bulk = undefined;
  }
}
