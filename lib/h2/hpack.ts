/**
 * HPACK (RFC 7541): the header compression of HTTP/2.
 *
 * `HpackDecoder` decodes header blocks from the peer: the static table, a dynamic table with
 * eviction, Huffman and raw string literals, dynamic table size updates, and limits on integers,
 * strings and the decoded header list. `HpackEncoder` encodes our headers (either role's) with
 * indexed fields for exact static-table matches and literals without indexing otherwise, so it
 * never inserts into the peer's dynamic table.
 *
 * Header names and values are bytes on the wire; they are mapped to strings one byte per UTF-16
 * code unit (latin1), so any byte sequence round-trips. Names are returned as decoded: checking
 * their case is the connection layer's job.
 *
 * Errors: every malformed block is `ConnectionError(COMPRESSION_ERROR)` (RFC 9113 §4.3), its
 * message naming the problem and the byte offset in the block. Going over `maxHeaderListSize` or
 * `maxStringLength` is `ConnectionError(ENHANCE_YOUR_CALM)`: decoding stops right there, so memory
 * stays bounded by the block, and the dynamic table, now out of step with the peer's, ends the
 * connection (RFC 9113 §10.5.1: the block "MUST be processed to ensure a consistent connection
 * state, unless the connection is closed").
 */
import { ConnectionError, ErrorCode } from "./errors.ts";
import {
  huffmanDecodeInto,
  huffmanEncodedLengthLatin1,
  huffmanEncodeLatin1Into,
  huffmanMaxDecodedLength,
} from "./huffman.ts";

/** RFC 7541 Appendix A. Index i of the spec is element i - 1. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61

/** RFC 7541 §4.1: an entry's size is its name and value lengths in octets plus 32. */
export const ENTRY_OVERHEAD = 32;

/** RFC 9113 §6.5.2: SETTINGS_HEADER_TABLE_SIZE starts at 4096. */
export const DEFAULT_TABLE_SIZE = 4096;
export const DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024;

/**
 * Integers above this are rejected: every HPACK integer is an index, a length or a table size,
 * and none of those is meaningful past 2^31 - 1 (nor does JS bit arithmetic stay exact).
 */
const MAX_INTEGER = 0x7fffffff;
/** 2^31 needs at most 5 continuation octets of 7 bits after the prefix. */
const MAX_CONTINUATION_BYTES = 5;

const CHUNK = 4096;

/**
 * Bytes to a string, one code unit per byte. Up to 12 bytes a loop is quickest (V8 keeps strings
 * that short flat rather than as concatenation trees); past that, fromCharCode over chunks.
 */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 12) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
    return s;
  }
  if (n <= CHUNK) {
    return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  const parts: string[] = [];
  for (let i = start; i < end; i += CHUNK) {
    const stop = Math.min(i + CHUNK, end);
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, stop) as unknown as number[]));
  }
  return parts.join("");
}

function compressionError(message: string): ConnectionError {
  return new ConnectionError(ErrorCode.COMPRESSION_ERROR, `HPACK: ${message}`);
}

export interface HpackDecoderOptions {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertise (RFC 9113 §6.5.2); default 4096. */
  maxTableSize?: number;
  /** Largest decoded header list, sum of name + value + 32 per field (RFC 9113 §10.5.1); default 64 KiB. */
  maxHeaderListSize?: number;
  /** Longest decoded name or value; default `maxHeaderListSize`. */
  maxStringLength?: number;
}

export class HpackDecoder {
  /** The limit we advertise; size updates may not exceed it (RFC 7541 §6.3). */
  #limit: number;
  /** The maximum size the peer's encoder chose, by size updates (starts at the limit). */
  #capacity: number;
  /** Set when our limit fell below #capacity: the next block must start with a size update. */
  #updateRequired = false;
  #maxHeaderListSize: number;
  #maxStringLength: number;

  // The dynamic table, a ring of parallel arrays; the newest entry is at #head.
  #names: string[] = new Array(16);
  #values: string[] = new Array(16);
  #mask = 15;
  #head = 0;
  #count = 0;
  #size = 0;

  /** Reused output buffer for Huffman-coded strings. */
  #scratch = new Uint8Array(256);
  /** The read position in the block being decoded. */
  #pos = 0;

  constructor(opts: HpackDecoderOptions = {}) {
    this.#limit = checkSize("maxTableSize", opts.maxTableSize ?? DEFAULT_TABLE_SIZE);
    this.#capacity = this.#limit;
    this.#maxHeaderListSize = checkSize(
      "maxHeaderListSize",
      opts.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE,
    );
    this.#maxStringLength = checkSize(
      "maxStringLength",
      opts.maxStringLength ?? this.#maxHeaderListSize,
    );
  }

  /** Bytes in the dynamic table, by the RFC 7541 §4.1 measure. */
  get tableSize(): number {
    return this.#size;
  }

  /** The dynamic table's current maximum size, as last set by the peer (≤ `maxTableSize`). */
  get tableCapacity(): number {
    return this.#capacity;
  }

  /** The limit we advertise as SETTINGS_HEADER_TABLE_SIZE. */
  get maxTableSize(): number {
    return this.#limit;
  }

  /** A copy of the dynamic table, newest first (index 62 first). */
  tableEntries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head - i) & this.#mask;
      out.push([this.#names[slot], this.#values[slot]]);
    }
    return out;
  }

  /**
   * Call when the peer has acknowledged a new SETTINGS_HEADER_TABLE_SIZE we sent. When it is
   * below the size the peer's encoder is using, the peer's next block must start with a size
   * update that fits (RFC 7541 §4.2).
   */
  setMaxTableSize(n: number): void {
    this.#limit = checkSize("maxTableSize", n);
    if (this.#limit < this.#capacity) this.#updateRequired = true;
  }

  /** Decodes one complete header block (HEADERS + CONTINUATION payloads, joined). */
  decode(block: Uint8Array): Array<[string, string]> {
    const headers: Array<[string, string]> = [];
    const end = block.length;
    let listSize = 0;
    let fieldSeen = false;
    this.#pos = 0;
    while (this.#pos < end) {
      const start = this.#pos;
      const b = block[start];
      let name: string;
      let value: string;
      if (b & 0x80) {
        // RFC 7541 §6.1: Indexed Header Field, 7-bit prefix.
        if (this.#updateRequired) this.#missingUpdate(start);
        const index = this.#readInt(block, 0x7f);
        name = this.#nameAt(index, start);
        value = index <= STATIC_COUNT
          ? STATIC_TABLE[index - 1][1]
          : this.#values[(this.#head - (index - STATIC_COUNT - 1)) & this.#mask];
      } else if (b & 0x40) {
        // RFC 7541 §6.2.1: Literal Header Field with Incremental Indexing, 6-bit prefix.
        if (this.#updateRequired) this.#missingUpdate(start);
        const index = this.#readInt(block, 0x3f);
        name = index === 0 ? this.#readString(block, "name") : this.#nameAt(index, start);
        value = this.#readString(block, "value");
        this.#insert(name, value);
      } else if (b & 0x20) {
        // RFC 7541 §6.3: Dynamic Table Size Update, 5-bit prefix.
        // RFC 7541 §4.2: "This dynamic table size update MUST occur at the beginning of the
        // first header block following the change to the dynamic table size."
        if (fieldSeen) {
          throw compressionError(
            `dynamic table size update after a header field at offset ${start}`,
          );
        }
        const size = this.#readInt(block, 0x1f);
        // RFC 7541 §6.3: "The new maximum size MUST be lower than or equal to the limit
        // determined by the protocol using HPACK."
        if (size > this.#limit) {
          throw compressionError(
            `dynamic table size update to ${size} exceeds the limit ${this.#limit} at offset ${start}`,
          );
        }
        this.#capacity = size;
        this.#evictTo(size);
        this.#updateRequired = false;
        continue;
      } else {
        // RFC 7541 §6.2.2 / §6.2.3: Literal Header Field without Indexing (0000) or Never
        // Indexed (0001), 4-bit prefix. Neither touches the dynamic table.
        if (this.#updateRequired) this.#missingUpdate(start);
        const index = this.#readInt(block, 0x0f);
        name = index === 0 ? this.#readString(block, "name") : this.#nameAt(index, start);
        value = this.#readString(block, "value");
      }
      fieldSeen = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.#maxHeaderListSize) {
        throw new ConnectionError(
          ErrorCode.ENHANCE_YOUR_CALM,
          `HPACK: header list exceeds ${this.#maxHeaderListSize} bytes at the field at offset ${start}`,
        );
      }
      headers.push([name, value]);
    }
    if (this.#updateRequired) this.#missingUpdate(end);
    return headers;
  }

  #missingUpdate(offset: number): never {
    throw compressionError(
      `expected a dynamic table size update at most ${this.#limit} (our lowered ` +
        `SETTINGS_HEADER_TABLE_SIZE) before the first field, found none at offset ${offset}`,
    );
  }

  /** The name at a (1-based) static-or-dynamic index; errors name the representation's offset. */
  #nameAt(index: number, offset: number): string {
    if (index === 0) {
      // RFC 7541 §6.1: "The index value of 0 is not used. It MUST be treated as a decoding
      // error if found in an indexed header field representation."
      throw compressionError(`index 0 at offset ${offset}`);
    }
    if (index <= STATIC_COUNT) return STATIC_TABLE[index - 1][0];
    const i = index - STATIC_COUNT - 1;
    if (i >= this.#count) {
      // RFC 7541 §2.3.3: "Indices strictly greater than the sum of the lengths of both tables
      // MUST be treated as a decoding error."
      throw compressionError(
        `index ${index} out of range (static ${STATIC_COUNT} + dynamic ${this.#count}) at offset ${offset}`,
      );
    }
    return this.#names[(this.#head - i) & this.#mask];
  }

  /**
   * RFC 7541 §5.1: an integer with an N-bit prefix (`prefixMax` = 2^N - 1), at #pos, which moves
   * past it.
   */
  #readInt(block: Uint8Array, prefixMax: number): number {
    const start = this.#pos;
    let value = block[start] & prefixMax;
    let p = start + 1;
    if (value === prefixMax) {
      let shift = 1; // 2^(7k) as a float: exact up to the limits below
      for (let k = 0;; k++) {
        if (k === MAX_CONTINUATION_BYTES) {
          throw compressionError(
            `integer at offset ${start} has more than ${MAX_CONTINUATION_BYTES} continuation bytes`,
          );
        }
        if (p >= block.length) throw compressionError(`truncated integer at offset ${start}`);
        const c = block[p++];
        value += (c & 0x7f) * shift;
        if (value > MAX_INTEGER) {
          throw compressionError(`integer at offset ${start} exceeds 2^31-1`);
        }
        if ((c & 0x80) === 0) break;
        shift *= 128;
      }
    }
    this.#pos = p;
    return value;
  }

  /** RFC 7541 §5.2: a string literal at #pos (H flag, 7-bit-prefix length, octets). */
  #readString(block: Uint8Array, what: "name" | "value"): string {
    const start = this.#pos;
    if (start >= block.length) {
      throw compressionError(`block ends where a ${what} string should start at offset ${start}`);
    }
    const huffman = (block[start] & 0x80) !== 0;
    const length = this.#readInt(block, 0x7f);
    const p = this.#pos;
    const left = block.length - p;
    if (length > left) {
      throw compressionError(
        `${what} string length ${length} exceeds the ${left} bytes left in the block at offset ${start}`,
      );
    }
    this.#pos = p + length;
    if (!huffman) {
      if (length > this.#maxStringLength) this.#stringTooLong(what, length, start);
      return latin1(block, p, p + length);
    }
    const bound = huffmanMaxDecodedLength(length);
    if (this.#scratch.length < bound) {
      this.#scratch = new Uint8Array(Math.max(bound, this.#scratch.length * 2));
    }
    const n = huffmanDecodeInto(block, p, p + length, this.#scratch);
    if (n > this.#maxStringLength) this.#stringTooLong(what, n, start);
    return latin1(this.#scratch, 0, n);
  }

  #stringTooLong(what: string, length: number, offset: number): never {
    throw new ConnectionError(
      ErrorCode.ENHANCE_YOUR_CALM,
      `HPACK: ${what} string of ${length} bytes exceeds the limit ${this.#maxStringLength} at offset ${offset}`,
    );
  }

  /** RFC 7541 §4.4: evict from the end until the new entry fits, then add it at the front. */
  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.#capacity) {
      // RFC 7541 §4.4: "an attempt to add an entry larger than the maximum size causes the table
      // to be emptied of all existing entries and results in an empty table."
      this.#evictTo(0);
      return;
    }
    this.#evictTo(this.#capacity - size);
    if (this.#count === this.#names.length) this.#grow();
    this.#head = (this.#head + 1) & this.#mask;
    this.#names[this.#head] = name;
    this.#values[this.#head] = value;
    this.#count++;
    this.#size += size;
  }

  /** RFC 7541 §4.3: evict oldest entries until the table size is at most `max`. */
  #evictTo(max: number): void {
    while (this.#size > max) {
      const slot = (this.#head - this.#count + 1) & this.#mask;
      this.#size -= this.#names[slot].length + this.#values[slot].length + ENTRY_OVERHEAD;
      this.#names[slot] = "";
      this.#values[slot] = "";
      this.#count--;
    }
  }

  #grow(): void {
    const cap = this.#names.length * 2;
    const names: string[] = new Array(cap);
    const values: string[] = new Array(cap);
    // Oldest first, so the newest lands at count - 1.
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head - this.#count + 1 + i) & this.#mask;
      names[i] = this.#names[slot];
      values[i] = this.#values[slot];
    }
    this.#names = names;
    this.#values = values;
    this.#mask = cap - 1;
    this.#head = this.#count - 1;
  }
}

/** Static-table lookup for the encoder: name → its first index and its exact (value → index) matches. */
const STATIC_INDEX = new Map<string, { index: number; values: Map<string, number> }>();
STATIC_TABLE.forEach(([name, value], i) => {
  let entry = STATIC_INDEX.get(name);
  if (entry === undefined) STATIC_INDEX.set(name, entry = { index: i + 1, values: new Map() });
  entry.values.set(value, i + 1);
});

/**
 * Credentials go out as never-indexed literals (RFC 7541 §7.1.3), so an intermediary that
 * re-encodes them must not put them in a table either.
 */
const NEVER_INDEXED = new Set(["authorization", "proxy-authorization", "cookie"]);

const SLAB_SIZE = 16 * 1024;
/** Encoded literals of names and values kept: the same few recur on every stream (a tunnel's). */
const STRING_CACHE_LIMIT = 64;
const STRING_CACHE_MAX_LENGTH = 64;

export interface HpackEncoderOptions {
  /** The peer's SETTINGS_HEADER_TABLE_SIZE as first known; default 4096. */
  maxTableSize?: number;
}

export class HpackEncoder {
  /** The dynamic table maximum size the peer's decoder believes we use. We insert nothing. */
  #capacity: number;
  /** A size update owed at the start of the next block, or -1. */
  #pendingUpdate = -1;
  // Blocks are written into a slab and returned as views of it, one after another: most encodes
  // allocate nothing. A full slab is left to the views still using it and replaced.
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(SLAB_SIZE);
  /** Where the block being encoded starts in #buf; the next block starts at its end. */
  #start = 0;
  #pos = 0;
  #strings = new Map<string, Uint8Array>();

  constructor(opts: HpackEncoderOptions = {}) {
    this.#capacity = checkSize("maxTableSize", opts.maxTableSize ?? DEFAULT_TABLE_SIZE);
  }

  /**
   * Call with the peer's SETTINGS_HEADER_TABLE_SIZE when it changes. When it falls below the size
   * the peer thinks we use, the next block starts with a size update (RFC 7541 §4.2: "the
   * encoder MUST signal this change"; several changes between blocks signal the smallest, which
   * is the last one here because our size only ever goes down). A rise needs nothing: we never
   * insert, so a smaller table costs us nothing.
   */
  setMaxTableSize(n: number): void {
    checkSize("maxTableSize", n);
    if (n < this.#capacity) {
      this.#capacity = n;
      this.#pendingUpdate = n;
    }
  }

  /**
   * Encodes one header list as a header block. Names and values are byte strings (one code unit
   * per byte, as `HpackDecoder` returns them); a code unit above 0xff is a `TypeError`.
   *
   * The block is a view into a slab shared with other blocks (mind `byteOffset`); later calls
   * never overwrite it. Transferring its buffer is allowed but wastes the rest of the slab.
   */
  encode(headers: ReadonlyArray<readonly [string, string]>): Uint8Array<ArrayBuffer> {
    // A consumer that transferred a returned block's buffer detached the slab (length 0).
    if (this.#buf.length === 0) {
      this.#buf = new Uint8Array(SLAB_SIZE);
      this.#pos = 0;
    }
    this.#start = this.#pos;
    if (this.#pendingUpdate >= 0) {
      // RFC 7541 §6.3: Dynamic Table Size Update, 001 + 5-bit prefix.
      this.#reserve(6);
      this.#writeInt(this.#pendingUpdate, 0x1f, 0x20);
    }
    for (let i = 0; i < headers.length; i++) {
      const [name, value] = headers[i];
      this.#reserve(12 + name.length + value.length);
      const stat = STATIC_INDEX.get(name);
      if (stat !== undefined) {
        const exact = stat.values.get(value);
        if (exact !== undefined) {
          // RFC 7541 §6.1: Indexed Header Field; every static index fits the 7-bit prefix.
          this.#buf[this.#pos++] = 0x80 | exact;
          continue;
        }
        // RFC 7541 §6.2.2 / §6.2.3 with an indexed name: 0000 or 0001 + 4-bit prefix.
        this.#writeInt(stat.index, 0x0f, NEVER_INDEXED.has(name) ? 0x10 : 0x00);
      } else {
        this.#buf[this.#pos++] = 0x00; // §6.2.2, new name
        this.#writeCached(name, name);
      }
      if (NEVER_INDEXED.has(name)) this.#writeString(value, name); // secrets are not kept
      else this.#writeCached(value, name);
    }
    // Only now: a block that threw (TypeError) was never sent, so the update is still owed.
    this.#pendingUpdate = -1;
    return this.#buf.subarray(this.#start, this.#pos);
  }

  #writeCached(s: string, header: string): void {
    const cached = this.#strings.get(s);
    if (cached !== undefined) {
      this.#buf.set(cached, this.#pos);
      this.#pos += cached.length;
      return;
    }
    const start = this.#pos;
    this.#writeString(s, header);
    if (s.length <= STRING_CACHE_MAX_LENGTH && this.#strings.size < STRING_CACHE_LIMIT) {
      this.#strings.set(s, this.#buf.slice(start, this.#pos));
    }
  }

  /** RFC 7541 §5.2: a string literal, Huffman-coded only when that is shorter. */
  #writeString(s: string, header: string): void {
    const huffmanLength = huffmanEncodedLengthLatin1(s);
    if (huffmanLength < 0) {
      let i = 0;
      while (s.charCodeAt(i) <= 0xff) i++;
      throw new TypeError(
        `Cannot encode header "${header}": code unit U+${
          s.charCodeAt(i).toString(16).padStart(4, "0")
        } at index ${i} is not a byte (headers are latin1 strings)`,
      );
    }
    const buf = this.#buf;
    if (huffmanLength < s.length) {
      this.#writeInt(huffmanLength, 0x7f, 0x80);
      this.#pos = huffmanEncodeLatin1Into(s, buf, this.#pos);
    } else {
      this.#writeInt(s.length, 0x7f, 0x00);
      let p = this.#pos;
      for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
      this.#pos = p;
    }
  }

  /** RFC 7541 §5.1: `value` with a prefix of `prefixMax` = 2^N - 1, `flags` in the high bits. */
  #writeInt(value: number, prefixMax: number, flags: number): void {
    const buf = this.#buf;
    let p = this.#pos;
    if (value < prefixMax) {
      buf[p++] = flags | value;
    } else {
      buf[p++] = flags | prefixMax;
      value -= prefixMax;
      while (value >= 128) {
        buf[p++] = (value % 128) | 0x80;
        value = Math.floor(value / 128);
      }
      buf[p++] = value;
    }
    this.#pos = p;
  }

  /** Room for `n` more bytes; each header reserves its worst case (raw strings, 5-byte lengths). */
  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const written = this.#pos - this.#start;
    const slab = new Uint8Array(Math.max(SLAB_SIZE, 2 * (written + n)));
    slab.set(this.#buf.subarray(this.#start, this.#pos));
    this.#buf = slab;
    this.#start = 0;
    this.#pos = written;
  }
}

function checkSize(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_INTEGER) {
    throw new RangeError(`HPACK ${what} must be an integer 0-${MAX_INTEGER}, got ${n}`);
  }
  return n;
}
