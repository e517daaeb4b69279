/**
 * Read buffers that come back once the bytes have been written on.
 *
 * Every bulk read used to land in fresh memory, and the old buffers became garbage that V8 frees
 * only when its external-memory heuristic starts a full GC: measured, a dray server moving 128 MiB
 * over 512 connections piled up ~250 MiB of dead ArrayBuffers, and the allocator kept the pages
 * (RSS stayed at ~360 MiB after the transfer). A relay holds a chunk only until it has written
 * it, so the memory can serve the next read as soon as the writer says it is done.
 *
 * The contract: a reader lends a chunk (`BufferLender.lend`); the relay calls `giveBack(chunk)`
 * once its write to a `copiesWrites` side (a socket, an HTTP/2 stream) has resolved. Loans are keyed
 * by the chunk object itself, so a consumer that keeps the chunk and passes on a view (`subarray`)
 * never gives the memory back: such buffers are left to the GC, as before. Code between a reader
 * and a sink must not write a lent chunk and keep using it afterwards; copying it is fine.
 *
 * Buffers given back wait in one process-wide pool, not with their reader: an idle connection pins
 * nothing but its pending read. The pool keeps whatever comes back (up to {@link POOL_FREE_BYTES}),
 * so it grows to what the busiest moment needs, and `releaseIdleBuffers()` lets go of what the
 * last few seconds did not use. A small cap made a burst allocate almost every piece anew: 512
 * parallel downloads from a v2ray server (2 KiB DATA frames) held ~600 pieces at once against a
 * pool of 64, and turned ~230 MiB of 64 KiB pieces per 256 MiB downloaded into garbage, which V8
 * collects only once ~64-100 MiB of it piled up (measured with scripts/bench/memory_probe.ts).
 *
 * Three sizes, so that a chunk holds about what it carries: 64 KiB for bulk reads and the pieces of
 * a stream whose consumer falls behind, 16 KiB and 4 KiB for the few frames a consumer that keeps
 * up takes per read.
 */

/** The size of a bulk read buffer: one read, one piece of buffered HTTP/2 DATA behind a slow consumer. */
export const POOL_BUFFER_SIZE = 64 * 1024;
/** The sizes the pool hands out, smallest first. */
export const POOL_SIZES: readonly number[] = [4 * 1024, 16 * 1024, POOL_BUFFER_SIZE];
/**
 * Free memory the pool keeps at most (all sizes together). Beyond it, buffers given back go to
 * the GC. Only a burst fills it, and releaseIdleBuffers() empties it again once the burst is over.
 */
export const POOL_FREE_BYTES = 64 * 1024 * 1024;

/** One size's free buffers. */
interface FreeList {
  size: number;
  buffers: Uint8Array[];
  /** The fewest free buffers since the last releaseIdleBuffers(): that many were not needed. */
  lowWater: number;
}

const lists: FreeList[] = POOL_SIZES.map((size) => ({ size, buffers: [], lowWater: 0 }));
let freeBytes = 0;

/** The list of the smallest size that holds `n` bytes, or undefined past the largest. */
function listFor(n: number): FreeList | undefined {
  // Indexed: a for-of allocated an iterator per call before the function was optimized.
  for (let i = 0; i < lists.length; i++) if (n <= lists[i].size) return lists[i];
  return undefined;
}

/**
 * Lets go of the free buffers no reader took since the last call (each size's low-water mark), so
 * that after a burst the pool does not keep its memory for good; the GC frees them. Returns how
 * many. A busy process keeps what it keeps taking. Call it every few seconds (HeapTrimmer does).
 */
export function releaseIdleBuffers(): number {
  let released = 0;
  for (const list of lists) {
    const idle = Math.min(list.lowWater, list.buffers.length);
    list.buffers.splice(0, idle);
    freeBytes -= idle * list.size;
    list.lowWater = list.buffers.length;
    released += idle;
  }
  return released;
}

interface Loan {
  lender: BufferLender;
  buffer: Uint8Array;
}

/** Chunk → the pooled buffer it was cut from, while lent. */
const loans = new WeakMap<Uint8Array, Loan>();

/**
 * Gives a chunk's memory back to whoever lent it (no-op for any other chunk, or a second time).
 * Call it only once the bytes have been copied out or written and nothing refers to them.
 */
export function giveBack(chunk: Uint8Array): void {
  const loan = loans.get(chunk);
  if (loan === undefined) return;
  loans.delete(chunk);
  loan.lender.put(loan.buffer);
}

/**
 * One reader's share of the pool: at most `max` of its buffers (of any size) are out (being read
 * into, or lent) at a time. A consumer that never gives chunks back uses up the share after `max` reads, and
 * `take()` then returns undefined for good: the reader falls back to its own allocation, having
 * lost `max` buffers once rather than one per read.
 */
export class BufferLender {
  readonly #max: number;
  #out = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /**
   * A whole pooled buffer of the smallest size that holds `size` bytes (at most
   * {@link POOL_BUFFER_SIZE}), or undefined when `max` are out already.
   */
  take(size: number = POOL_BUFFER_SIZE): Uint8Array | undefined {
    const list = listFor(size);
    if (list === undefined) {
      throw new RangeError(`Cannot pool ${size} bytes: at most ${POOL_BUFFER_SIZE}`);
    }
    if (this.#out >= this.#max) return undefined;
    this.#out++;
    const buffer = list.buffers.pop();
    if (buffer === undefined) return new Uint8Array(list.size);
    freeBytes -= list.size;
    if (list.buffers.length < list.lowWater) list.lowWater = list.buffers.length;
    return buffer;
  }

  /** Lends `chunk`, a view of `buffer` (from `take()`); it comes back through `giveBack()`. */
  lend(chunk: Uint8Array, buffer: Uint8Array): void {
    loans.set(chunk, { lender: this, buffer });
  }

  /** Returns a buffer from `take()`: not lent after all, or given back. */
  put(buffer: Uint8Array): void {
    this.#out--;
    const list = listFor(buffer.byteLength);
    if (list?.size !== buffer.byteLength || freeBytes + list.size > POOL_FREE_BYTES) return;
    list.buffers.push(buffer);
    freeBytes += list.size;
  }
}
