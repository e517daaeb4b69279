/**
 * The static Huffman code of RFC 7541 §5.2 / Appendix B, used for HPACK string literals.
 *
 * The code is canonical: codes of one length are consecutive, ordered by symbol, and each length
 * starts where the previous one ended, shifted. So the 257 code lengths of Appendix B are the
 * whole table; the codes are rebuilt from them at module load (tests check them against values
 * printed in the RFC).
 *
 * Decoding is a byte-at-a-time state machine: a state is an internal node of the code tree (there
 * are exactly 256 of them), and one table lookup per input byte gives the next state and the zero,
 * one or two symbols completed on the way (the shortest code is 5 bits, so a byte completes at
 * most two). The table is built once, on first use.
 */

import { ConnectionError, ErrorCode } from "./errors.ts";

/** RFC 7541 Appendix B: code length in bits of symbols 0..255 and EOS (256). */
// deno-fmt-ignore
const LENGTHS = new Uint8Array([
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
]);

const EOS = 256;

/** Canonical codes, right-aligned (the "code as hex" column of Appendix B). */
const CODES = buildCanonicalCodes(LENGTHS);

function buildCanonicalCodes(lengths: Uint8Array): Uint32Array {
  const order = Array.from(lengths.keys()).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  let prevLength = lengths[order[0]];
  for (let i = 0; i < order.length; i++) {
    const sym = order[i];
    if (i > 0) code = ((code + 1) * 2 ** (lengths[sym] - prevLength)) >>> 0;
    prevLength = lengths[sym];
    codes[sym] = code;
  }
  return codes;
}

/** The Appendix B code of `symbol` (0..256, 256 = EOS), right-aligned, and its length in bits. */
export function huffmanCode(symbol: number): { code: number; length: number } {
  if (!(symbol >= 0 && symbol <= EOS)) {
    throw new RangeError(`Huffman symbol must be 0-256, got ${symbol}`);
  }
  return { code: CODES[symbol], length: LENGTHS[symbol] };
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Number of bytes `bytes` takes Huffman-coded (RFC 7541 §5.2: padded to a whole octet). */
export function huffmanEncodedLength(bytes: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < bytes.length; i++) bits += LENGTHS[bytes[i]];
  return (bits + 7) >>> 3;
}

/**
 * Like `huffmanEncodedLength`, for a string taken as latin1 (one byte per code unit); -1 when a
 * code unit is above 0xff, so the caller learns in the same pass that the string is not bytes.
 */
export function huffmanEncodedLengthLatin1(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return -1;
    bits += LENGTHS[c];
  }
  return (bits + 7) >>> 3;
}

export function huffmanEncode(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(huffmanEncodedLength(bytes));
  huffmanEncodeInto(bytes, out, 0);
  return out;
}

// The encoder keeps codes MSB-first in a 32-bit accumulator that holds fewer than 8 pending bits
// between symbols. A code longer than 24 bits would not fit next to 7 pending bits, so it goes in
// as its top bits, then its low 16 bits. Bytes and latin1 strings share it through a symbol
// callback: measured ~0.02 µs more per header string than two copies, nothing per connection.

/**
 * Writes the code of `bytes` into `out` from `offset` (which must have room for
 * `huffmanEncodedLength(bytes)` bytes); returns the offset after the last byte written.
 */
export function huffmanEncodeInto(bytes: Uint8Array, out: Uint8Array, offset: number): number {
  return encodeSymbols(bytes.length, (i) => bytes[i], out, offset);
}

/** Like `huffmanEncodeInto`, for a string taken as latin1 (code units above 0xff are masked). */
export function huffmanEncodeLatin1Into(s: string, out: Uint8Array, offset: number): number {
  return encodeSymbols(s.length, (i) => s.charCodeAt(i) & 0xff, out, offset);
}

/** Writes the codes of symbols `symbolAt(0 .. count-1)` at `offset`; returns the end offset. */
function encodeSymbols(
  count: number,
  symbolAt: (i: number) => number,
  out: Uint8Array,
  offset: number,
): number {
  let acc = 0;
  let bits = 0;
  let p = offset;
  for (let i = 0; i < count; i++) {
    const sym = symbolAt(i);
    let code = CODES[sym];
    let length = LENGTHS[sym];
    if (length > 24) {
      acc = (acc << (length - 16)) | (code >>> 16);
      bits += length - 16;
      while (bits >= 8) out[p++] = acc >>> (bits -= 8);
      code &= 0xffff;
      length = 16;
    }
    acc = (acc << length) | code;
    bits += length;
    while (bits >= 8) out[p++] = acc >>> (bits -= 8);
    acc &= (1 << bits) - 1;
  }
  return padTail(out, p, acc, bits);
}

/** RFC 7541 §5.2: pad with the most significant bits of EOS (all ones) to an octet boundary. */
function padTail(out: Uint8Array, p: number, acc: number, bits: number): number {
  if (bits === 0) return p;
  const pad = 8 - bits;
  out[p++] = (acc << pad) | ((1 << pad) - 1);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Decoding

// A 4-bit state machine: a nibble completes at most one symbol, since the shortest code is 5
// bits. Entry (Uint16): bits 0-7 next state, 8-15 the completed symbol; flags below. A byte-wide
// table would decode in one step per byte, but it is 256 KiB and took ~18 ms to build at start-up,
// while header strings are a few dozen bytes: two steps per byte cost nothing measurable.
const HAS_SYM = 1 << 16;
const FAIL_EOS = 1 << 17;

// End-of-string verdict per state (RFC 7541 §5.2).
const END_OK = 0;
const END_PADDING_TOO_LONG = 1;
const END_PADDING_NOT_EOS = 2;

let transitions: Uint32Array | undefined;
let endVerdict: Uint8Array | undefined;

function buildDecoder(): void {
  // The code tree: internal nodes 0..255 (0 is the root); a child >= 256 is the leaf of symbol
  // child - 256.
  const child0 = new Uint16Array(256);
  const child1 = new Uint16Array(256);
  const hasChild = new Uint8Array(256 * 2);
  // Depth of runs of ones from the root, for nodes on the all-ones path; -1 elsewhere.
  const onesDepth = new Int8Array(256).fill(-1);
  onesDepth[0] = 0;
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const code = CODES[sym];
    const length = LENGTHS[sym];
    let node = 0;
    for (let b = length - 1; b >= 0; b--) {
      const bit = (code >>> b) & 1;
      const slot = node * 2 + bit;
      const children = bit ? child1 : child0;
      if (b === 0) {
        children[node] = 256 + sym;
      } else {
        if (!hasChild[slot]) {
          hasChild[slot] = 1;
          children[node] = nodes;
          if (bit === 1 && onesDepth[node] >= 0) onesDepth[nodes] = onesDepth[node] + 1;
          nodes++;
        }
        node = children[node];
      }
    }
  }
  if (nodes !== 256) throw new Error(`Huffman tree has ${nodes} internal nodes, expected 256`);

  const nibbles = new Uint32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const next = (nibble >>> b) & 1 ? child1[node] : child0[node];
        if (next < 256) {
          node = next;
        } else if (next - 256 === EOS) {
          entry = FAIL_EOS;
          break;
        } else {
          entry = ((next - 256) << 8) | HAS_SYM;
          node = 0;
        }
      }
      nibbles[state * 16 + nibble] = entry | node;
    }
  }

  const verdict = new Uint8Array(256);
  for (let state = 0; state < 256; state++) {
    const d = onesDepth[state];
    verdict[state] = d < 0 ? END_PADDING_NOT_EOS : d > 7 ? END_PADDING_TOO_LONG : END_OK;
  }
  transitions = nibbles;
  endVerdict = verdict;
}

/** The most bytes `encodedLength` Huffman-coded bytes can decode to (the shortest code is 5 bits). */
export function huffmanMaxDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 8) / 5);
}

export function huffmanDecode(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(huffmanMaxDecodedLength(bytes.length));
  const n = huffmanDecodeInto(bytes, 0, bytes.length, out);
  return out.slice(0, n);
}

/**
 * Decodes `src[start..end)` into `out` from index 0 (which must hold
 * `huffmanMaxDecodedLength(end - start)` bytes); returns the decoded length. Error messages give
 * offsets as indexes into `src`, so an HPACK block passed whole gets block offsets.
 */
export function huffmanDecodeInto(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
): number {
  if (transitions === undefined) buildDecoder();
  const table = transitions!;
  let state = 0;
  let o = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    const hi = table[(state << 4) | (byte >>> 4)];
    const lo = table[((hi & 0xff) << 4) | (byte & 15)];
    if ((hi | lo) & FAIL_EOS) {
      // RFC 7541 §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be
      // treated as a decoding error."
      throw new ConnectionError(
        ErrorCode.COMPRESSION_ERROR,
        `HPACK: Huffman string contains the EOS symbol at offset ${i}`,
      );
    }
    if (hi & HAS_SYM) out[o++] = hi >>> 8;
    if (lo & HAS_SYM) out[o++] = lo >>> 8;
    state = lo & 0xff;
  }
  const verdict = endVerdict![state];
  if (verdict === END_PADDING_TOO_LONG) {
    // RFC 7541 §5.2: "A padding strictly longer than 7 bits MUST be treated as a decoding error."
    throw new ConnectionError(
      ErrorCode.COMPRESSION_ERROR,
      `HPACK: Huffman string padding is longer than 7 bits (string at offset ${start})`,
    );
  }
  if (verdict === END_PADDING_NOT_EOS) {
    // RFC 7541 §5.2: "A padding not corresponding to the most significant bits of the code for
    // the EOS symbol MUST be treated as a decoding error."
    throw new ConnectionError(
      ErrorCode.COMPRESSION_ERROR,
      `HPACK: Huffman string padding is not all ones (string at offset ${start})`,
    );
  }
  return o;
}
