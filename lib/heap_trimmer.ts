/**
 * Gives memory that a burst of connections freed back to the operating system.
 *
 * Every chunk a connection reads or buffers ends up in glibc's malloc heap (V8 allocates
 * ArrayBuffer memory there, and so do rustls and tokio). When the burst is over the memory is free
 * but stays in the process: glibc returns only the top of its heap, and the last allocations of a
 * burst pin it. Measured (scripts/bench/memory_probe.ts, 512 parallel 256 KiB downloads): RSS
 * stayed at ~200 MiB after every connection had closed; `malloc_trim(0)` brought it to ~100 MiB.
 *
 * So, every few seconds, the trimmer asks glibc how much free memory its heap holds (mallinfo2)
 * and, past a threshold, releases it (malloc_trim), both through Deno's FFI where that works:
 * Linux with glibc and `--allow-ffi` (the start and compile tasks grant it). glibc is opened only
 * once RSS grew by 24 MiB. Elsewhere the trimmer only lets go of the read buffers pooled for a
 * burst (releaseIdleBuffers). One unref'd interval per process: nothing per connection.
 *
 * A burst's ArrayBuffers are free only once V8 has collected them: the start task's
 * `--gc-memory-reducer-start-delay-ms=5000` has V8's memory reducer collect 5 s after the heap
 * grew rather than 30 s (measured: RSS back at ~27 s after a burst of 250 downloads with the
 * default, ~11 s with 5000).
 */

import { releaseIdleBuffers } from "./net/buffer_lender.ts";

/** How often free memory is checked. */
const CHECK_MS = 2_000;
/** Free bytes in the malloc heap worth a trim (below this, a trim gains little). */
const FREE_THRESHOLD = 8 * 1024 * 1024;
/**
 * RSS growth over the lowest seen before glibc is opened at all: the first Deno.dlopen costs ~4 MiB
 * of RSS (measured), worth paying only once there is a burst's worth to give back.
 */
const OPEN_GROWTH = 24 * 1024 * 1024;
/** mallinfo2's fields, all size_t: fordblks (free bytes in the arenas) is the ninth. */
const MALLINFO2_FIELDS = 10;
const FORDBLKS = 8;

interface Glibc {
  /** Free bytes the malloc arenas hold. */
  freeBytes(): number;
  /** Returns free memory to the OS. */
  trim(): void;
  close(): void;
}

function openGlibc(): Glibc | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    const lib = Deno.dlopen("libc.so.6", {
      mallinfo2: {
        parameters: [],
        result: { struct: Array.from({ length: MALLINFO2_FIELDS }, () => "usize" as const) },
      },
      malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: false },
    });
    return {
      freeBytes: () => {
        const info = lib.symbols.mallinfo2() as Uint8Array;
        const view = new DataView(info.buffer, info.byteOffset, info.byteLength);
        return Number(view.getBigUint64(FORDBLKS * 8, true));
      },
      trim: () => void lib.symbols.malloc_trim(0n),
      close: () => lib.close(),
    };
  } catch {
    // Not glibc (musl has neither symbol), or no FFI: nothing to trim with.
    return undefined;
  }
}

export class HeapTrimmer {
  /** Opened on first need; null where it cannot be. */
  #glibc: Glibc | null | undefined;
  #floor = Deno.memoryUsage().rss;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Free bytes at the last trim: they stay counted as free after it (only their pages went). */
  #trimmedFree = 0;

  /** Starts checking every few seconds. */
  constructor() {
    const timer = setInterval(() => this.#tick(), CHECK_MS);
    // Never what keeps the process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #tick(): void {
    releaseIdleBuffers();
    const rss = Deno.memoryUsage().rss;
    this.#floor = Math.min(this.#floor, rss);
    if (this.#glibc === undefined && rss - this.#floor < OPEN_GROWTH) return;
    this.check();
  }

  /**
   * Trims now if the heap holds at least 8 MiB of free memory and that changed by a quarter of it
   * since the last trim (an idle heap is trimmed once, not every few seconds); returns whether it
   * did.
   */
  check(): boolean {
    const glibc = this.#glibc ??= openGlibc() ?? null;
    if (!glibc) return false;
    const free = glibc.freeBytes();
    if (free < FREE_THRESHOLD || Math.abs(free - this.#trimmedFree) < FREE_THRESHOLD / 4) {
      return false;
    }
    glibc.trim();
    this.#trimmedFree = free;
    return true;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#glibc?.close();
    this.#glibc = null;
  }
}
