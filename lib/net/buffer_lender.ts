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

/**
 * The debug guard, for tests and load checks: `DRAY_POISON_BUFFERS=1` in the environment (read
 * with --allow-env) or setBufferPoisoning(true). Every buffer that comes back is filled with
 * {@link POISON_BYTE} first, so a consumer still holding a view of memory given back reads garbage
 * and its sha256 check fails, instead of another connection's bytes that may happen to match (the
 * test patterns are often the same for every connection). take() checks that a free buffer is
 * still all poison (a late writer: a read landing in memory given back) and put() that it is not
 * in the pool already (given back twice: two readers would share it); either throws. Off, it
 * costs a test of one variable per put and take.
 */
export const POISON_BYTE = 0xdb;
let poisoning = poisonFromEnv();
/** Buffers in the free lists, while poisoning (a second put() of one is a bug). */
let inPool = new WeakSet<Uint8Array>();

function poisonFromEnv(): boolean {
  const name = "DRAY_POISON_BUFFERS";
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return false;
    }
    const value = Deno.env.get(name);
    return value !== undefined && value !== "" && value !== "0";
  } catch {
    return false;
  }
}

/**
 * Turns the debug guard on or off; returns whether it was on. Turning it on lets go of the free
 * buffers (they were given back unpoisoned).
 */
export function setBufferPoisoning(on: boolean): boolean {
  const was = poisoning;
  if (on && !was) {
    for (const list of lists) {
      list.buffers = [];
      list.lowWater = 0;
    }
    freeBytes = 0;
    inPool = new WeakSet();
  }
  poisoning = on;
  return was;
}

/**
 * For a reader that reuses memory of its own from read to read (SocketReader): with the guard on,
 * fills `buf` with poison before the next read into it, so that a view of the last read's bytes
 * kept past its time turns to garbage. A no-op when off.
 */
export function poisonReused(buf: Uint8Array): void {
  if (poisoning) buf.fill(POISON_BYTE);
}

/** `buffer`, leaving the pool: it must be as poisoned as it went in. */
function checkPoisoned(buffer: Uint8Array): void {
  inPool.delete(buffer);
  // Pooled buffers are whole ArrayBuffers of 4/16/64 KiB: a word at a time.
  const words = new Uint32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength >> 2);
  const word = POISON_BYTE * 0x01010101;
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== word) {
      throw new Error(
        `BufferLender.take(): a ${buffer.byteLength}-byte pooled buffer was written near byte ${
          i * 4
        } after it was given back`,
      );
    }
  }
}

/** `buffer`, coming back: poisoned; throws if it is in the pool already. */
function poison(buffer: Uint8Array): void {
  if (inPool.has(buffer)) {
    throw new Error(
      `BufferLender.put(): a ${buffer.byteLength}-byte buffer came back while already in the pool (given back twice)`,
    );
  }
  buffer.fill(POISON_BYTE);
}

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
    if (poisoning) checkPoisoned(buffer);
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
    if (poisoning) poison(buffer);
    const list = listFor(buffer.byteLength);
    if (list?.size !== buffer.byteLength || freeBytes + list.size > POOL_FREE_BYTES) return;
    list.buffers.push(buffer);
    if (poisoning) inPool.add(buffer);
    freeBytes += list.size;
  }
}
