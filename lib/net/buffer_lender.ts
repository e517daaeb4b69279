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
 * Buffers given back wait in one process-wide pool (at most {@link POOL_FREE_MAX} of them), not
 * with their reader: an idle connection pins nothing but its pending read.
 */

/** The size of every pooled buffer: one bulk read, one piece of buffered HTTP/2 DATA. */
export const POOL_BUFFER_SIZE = 64 * 1024;
/**
 * Free buffers kept for the next reads (4 MiB, one stream window); beyond that, given-back
 * buffers go to the GC. With 32, one download from a v2ray server through a slow consumer still
 * allocated ~125 MiB of pieces per 256 MiB (its in-flight count swings by more than 32); with 64,
 * 8 MiB.
 */
export const POOL_FREE_MAX = 64;

const free: Uint8Array[] = [];
/** The fewest free buffers since the last releaseIdleBuffers(): that many were not needed. */
let lowWater = 0;

/**
 * Lets go of the free buffers no reader took since the last call (the pool's low-water mark), so
 * that after a burst the pool does not keep 4 MiB for good; the GC frees them. Returns how many.
 * A busy process keeps what it keeps taking. Call it every few seconds (HeapTrimmer does).
 */
export function releaseIdleBuffers(): number {
  const idle = Math.min(lowWater, free.length);
  free.splice(0, idle);
  lowWater = free.length;
  return idle;
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
 * One reader's share of the pool: at most `max` of its buffers are out (being read into, or lent)
 * at a time. A consumer that never gives chunks back uses up the share after `max` reads, and
 * `take()` then returns undefined for good: the reader falls back to its own allocation, having
 * lost `max` buffers once rather than one per read.
 */
export class BufferLender {
  readonly #max: number;
  #out = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** A whole {@link POOL_BUFFER_SIZE} buffer, or undefined when `max` are out already. */
  take(): Uint8Array | undefined {
    if (this.#out >= this.#max) return undefined;
    this.#out++;
    const buffer = free.pop();
    if (free.length < lowWater) lowWater = free.length;
    return buffer ?? new Uint8Array(POOL_BUFFER_SIZE);
  }

  /** Lends `chunk`, a view of `buffer` (from `take()`); it comes back through `giveBack()`. */
  lend(chunk: Uint8Array, buffer: Uint8Array): void {
    loans.set(chunk, { lender: this, buffer });
  }

  /** Returns a buffer from `take()`: not lent after all, or given back. */
  put(buffer: Uint8Array): void {
    this.#out--;
    if (free.length < POOL_FREE_MAX) free.push(buffer);
  }
}
