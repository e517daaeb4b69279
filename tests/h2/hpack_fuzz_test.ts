/**
 * Fuzz-style checks of the HPACK decoder and the Huffman decoder: random, structured, truncated
 * and bit-flipped input never hangs (every loop here is a fixed count; each decode is linear in
 * its block), never throws anything but ConnectionError, and never leaves the dynamic table in a
 * state that breaks its invariants. A deterministic xorshift PRNG makes every failure reproducible
 * from the printed seed and iteration.
 */

import assert from "node:assert/strict";
import { ConnectionError, ErrorCode } from "../../lib/h2/errors.ts";
import { HpackDecoder, HpackEncoder } from "../../lib/h2/hpack.ts";
import { huffmanDecode, huffmanEncode } from "../../lib/h2/huffman.ts";

class Xorshift {
  #x: number;
  constructor(seed: number) {
    this.#x = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.#x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x;
  }
  /** 0 <= n < max */
  below(max: number): number {
    return this.next() % max;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

const LIST_LIMIT = 16 * 1024;

/**
 * Decodes and checks the outcome: a header list within limits, or a ConnectionError of one of the
 * two codes HPACK uses, with an "HPACK: " message that names an offset inside (or at the end of)
 * the block. Returns whether it decoded.
 */
function decodeChecked(decoder: HpackDecoder, block: Uint8Array, context: string): boolean {
  let headers: Array<[string, string]>;
  try {
    headers = decoder.decode(block);
  } catch (e) {
    if (!(e instanceof ConnectionError)) {
      throw new Error(`${context}: threw ${e} instead of ConnectionError`, { cause: e });
    }
    assert.ok(
      e.code === ErrorCode.COMPRESSION_ERROR || e.code === ErrorCode.ENHANCE_YOUR_CALM,
      `${context}: code ${e.code}`,
    );
    assert.match(e.message, /^HPACK: /, context);
    const offset = /offset (\d+)/.exec(e.message);
    assert.ok(offset !== null, `${context}: no offset in "${e.message}"`);
    assert.ok(Number(offset[1]) <= block.length, `${context}: offset past the block`);
    return false;
  }
  let size = 0;
  for (const [name, value] of headers) {
    assert.equal(typeof name, "string");
    assert.equal(typeof value, "string");
    size += name.length + value.length + 32;
  }
  assert.ok(size <= LIST_LIMIT, `${context}: list of ${size} bytes`);
  let tableSize = 0;
  for (const [name, value] of decoder.tableEntries()) tableSize += name.length + value.length + 32;
  assert.equal(decoder.tableSize, tableSize, context);
  assert.ok(decoder.tableSize <= decoder.tableCapacity, context);
  assert.ok(decoder.tableCapacity <= decoder.maxTableSize, context);
  return true;
}

/** A decoder whose dynamic table has a few entries, so dynamic indexes can hit. */
function primedDecoder(maxTableSize = 4096): HpackDecoder {
  const decoder = new HpackDecoder({ maxTableSize, maxHeaderListSize: LIST_LIMIT });
  // RFC 7541 C.3.1-C.3.3: three entries, 164 bytes.
  decoder.decode(hex("828684410f7777772e6578616d706c652e636f6d"));
  decoder.decode(hex("828684be58086e6f2d6361636865"));
  decoder.decode(hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"));
  return decoder;
}

Deno.test("HpackDecoder.decode() survives 20 000 random blocks", () => {
  const rng = new Xorshift(0xdecade);
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const block = rng.bytes(rng.below(i % 10 === 0 ? 400 : 48));
    const decoder = i % 2 ? primedDecoder() : new HpackDecoder({ maxHeaderListSize: LIST_LIMIT });
    if (decodeChecked(decoder, block, `random #${i}`)) decoded++;
  }
  // Some blocks decode (empty ones at least), most do not; both paths ran.
  assert.ok(decoded > 0 && decoded < 20_000, `${decoded} decoded`);
});

/** Writes an RFC 7541 §5.1 integer, for the structured generator. */
function int(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  value -= max;
  while (value >= 128) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

/** A block of plausible representations with plausible and implausible numbers. */
function structuredBlock(rng: Xorshift): Uint8Array {
  const out: number[] = [];
  const n = rng.below(8);
  const number = () => {
    switch (rng.below(6)) {
      case 0:
        return rng.below(2 ** 31); // huge: lengths and indexes far past anything
      case 1:
        return rng.below(1 << 14);
      default:
        return rng.below(80);
    }
  };
  const string = () => {
    const huffman = rng.below(2) === 1;
    const text = rng.bytes(rng.below(30));
    const body = huffman && rng.below(4) !== 0 ? huffmanEncode(text) : text;
    const claimed = rng.below(8) === 0 ? number() : body.length;
    int(out, claimed, 7, huffman ? 0x80 : 0);
    out.push(...body);
  };
  for (let i = 0; i < n; i++) {
    switch (rng.below(5)) {
      case 0:
        int(out, number(), 7, 0x80);
        break;
      case 1: {
        const index = rng.below(3) === 0 ? 0 : number();
        int(out, index, 6, 0x40);
        if (index === 0) string();
        string();
        break;
      }
      case 2:
        int(out, rng.below(3) === 0 ? number() : rng.below(5000), 5, 0x20);
        break;
      default: {
        const index = rng.below(3) === 0 ? 0 : number();
        int(out, index, 4, rng.below(2) ? 0x10 : 0);
        if (index === 0) string();
        string();
      }
    }
  }
  return Uint8Array.from(out);
}

Deno.test("HpackDecoder.decode() survives 10 000 structured blocks with wild numbers", () => {
  const rng = new Xorshift(0x5eed);
  let decoded = 0;
  for (let i = 0; i < 10_000; i++) {
    const decoder = primedDecoder(rng.below(2) ? 4096 : 256);
    // Two blocks on one decoder, so table changes from the first meet indexes in the second.
    if (decodeChecked(decoder, structuredBlock(rng), `structured #${i}a`)) {
      if (decodeChecked(decoder, structuredBlock(rng), `structured #${i}b`)) decoded++;
    }
  }
  assert.ok(decoded > 100, `${decoded} decoded`);
});

Deno.test("HpackDecoder.decode() refuses huge claimed string lengths without allocating them", () => {
  const rng = new Xorshift(0xb16);
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < 2_000; i++) {
    const claimed = 1_000_000 + rng.below(2 ** 31 - 1_000_001);
    const out: number[] = [0x00]; // literal without indexing, new name
    int(out, claimed, 7, rng.below(2) ? 0x80 : 0);
    out.push(...rng.bytes(rng.below(16)));
    const block = Uint8Array.from(out);
    assert.throws(() => new HpackDecoder().decode(block), (e: unknown) => {
      assert.ok(e instanceof ConnectionError);
      assert.equal(e.code, ErrorCode.COMPRESSION_ERROR);
      assert.match(
        e.message,
        new RegExp(`^HPACK: name string length ${claimed} exceeds the \\d+ bytes left`),
      );
      return true;
    });
  }
  // 2 000 lengths of at least 1 MB were claimed; had any been allocated, the heap would show GBs.
  const grown = Deno.memoryUsage().heapUsed - before;
  assert.ok(grown < 256 * 1024 * 1024, `heap grew by ${grown} bytes`);
});

// ---------------------------------------------------------------------------------------------
// Mutated corpus blocks

interface Story {
  name: string;
  cases: Array<{ tableSize: number | null; block: Uint8Array }>;
}

function loadStories(encoder: string): Story[] {
  const dir = new URL(`../testdata/hpack-test-case/${encoder}/`, import.meta.url);
  const stories: Story[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.endsWith(".json")) continue;
    const json = JSON.parse(Deno.readTextFileSync(new URL(entry.name, dir))) as {
      cases: Array<{ header_table_size?: number | null; wire: string }>;
    };
    stories.push({
      name: `${encoder}/${entry.name}`,
      cases: json.cases.map((c) => ({
        tableSize: c.header_table_size ?? null,
        block: hex(c.wire),
      })),
    });
  }
  return stories.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** A decoder in the state the story has just before case `k`. */
function decoderBefore(story: Story, k: number): HpackDecoder {
  const decoder = new HpackDecoder({
    maxTableSize: story.cases[0].tableSize ?? 4096,
    maxHeaderListSize: LIST_LIMIT,
  });
  for (let i = 0; i < k; i++) {
    const c = story.cases[i];
    if (c.tableSize !== null) decoder.setMaxTableSize(c.tableSize);
    decoder.decode(c.block);
  }
  const c = story.cases[k];
  if (c.tableSize !== null) decoder.setMaxTableSize(c.tableSize);
  return decoder;
}

function mutate(rng: Xorshift, block: Uint8Array, other: Uint8Array): [string, Uint8Array] {
  const b = block.slice();
  switch (rng.below(5)) {
    case 0:
      return ["truncated", block.subarray(0, rng.below(Math.max(block.length, 1)))];
    case 1: {
      const flips = 1 + rng.below(3);
      for (let i = 0; i < flips && b.length > 0; i++) b[rng.below(b.length)] ^= 1 << rng.below(8);
      return ["bit-flipped", b];
    }
    case 2:
      if (b.length > 0) b[rng.below(b.length)] = rng.next() & 0xff;
      return ["byte-replaced", b];
    case 3: {
      const at = rng.below(b.length + 1);
      return [
        "bytes-inserted",
        Uint8Array.from([...b.subarray(0, at), ...rng.bytes(1 + rng.below(4)), ...b.subarray(at)]),
      ];
    }
    default: {
      const at = rng.below(b.length + 1);
      const from = rng.below(other.length + 1);
      return ["spliced", Uint8Array.from([...b.subarray(0, at), ...other.subarray(from)])];
    }
  }
}

Deno.test("HpackDecoder.decode() survives 5 000 truncated and bit-flipped corpus blocks", () => {
  const stories = [
    ...loadStories("swift-nio-hpack-huffman"),
    ...loadStories("nghttp2-change-table-size"),
  ];
  const rng = new Xorshift(0xc0ffee);
  const outcomes = new Map<string, [number, number]>();
  for (let i = 0; i < 5_000; i++) {
    const story = stories[rng.below(stories.length)];
    // Cases early in a story, so the replay before each mutation stays short.
    const k = rng.below(Math.min(story.cases.length, 24));
    const decoder = decoderBefore(story, k);
    const other = stories[rng.below(stories.length)].cases[0].block;
    const [kind, block] = mutate(rng, story.cases[k].block, other);
    const context = `${kind} ${story.name} #${k} (iteration ${i})`;
    const ok = decodeChecked(decoder, block, context);
    // The next genuine block on a decoder that accepted a mutation: any outcome but a crash.
    if (ok && k + 1 < story.cases.length) {
      decodeChecked(decoder, story.cases[k + 1].block, `${context}, then #${k + 1}`);
    }
    const tally = outcomes.get(kind) ?? [0, 0];
    tally[ok ? 0 : 1]++;
    outcomes.set(kind, tally);
  }
  // Every kind of mutation ran and hit the error path; truncations at boundaries decode.
  assert.equal(outcomes.size, 5);
  for (const [kind, [, failed]] of outcomes) assert.ok(failed > 0, `${kind} never failed`);
});

// ---------------------------------------------------------------------------------------------
// Huffman

Deno.test("huffmanDecode() on 20 000 random strings either round-trips or throws ConnectionError", () => {
  const rng = new Xorshift(0xface);
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    // Mostly short strings, where valid padding is likeliest; some built from real codes.
    const input = i % 4 === 0
      ? huffmanEncode(rng.bytes(rng.below(20))).map((
        b,
        j,
        a,
      ) => (j === a.length - 1 ? b ^ (1 << rng.below(8)) : b))
      : rng.bytes(rng.below(i % 3 === 0 ? 64 : 6));
    let out: Uint8Array;
    try {
      out = huffmanDecode(input);
    } catch (e) {
      assert.ok(e instanceof ConnectionError, `iteration ${i}: ${e}`);
      assert.equal(e.code, ErrorCode.COMPRESSION_ERROR);
      assert.match(e.message, /EOS symbol|padding is longer than 7 bits|padding is not all ones/);
      continue;
    }
    // A string that decodes has exactly the encoder's padding, so it re-encodes to itself.
    assert.deepEqual(huffmanEncode(out), input, `iteration ${i}`);
    decoded++;
  }
  assert.ok(decoded > 100 && decoded < 20_000, `${decoded} decoded`);
});

Deno.test("HpackEncoder.encode() output of random lists decodes back, fuzzed limits aside", () => {
  const rng = new Xorshift(0xe1c0de);
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
  for (let i = 0; i < 2_000; i++) {
    const headers: Array<[string, string]> = [];
    for (let j = rng.below(10); j > 0; j--) {
      const name = String.fromCharCode(...rng.bytes(1 + rng.below(12)));
      const value = String.fromCharCode(...rng.bytes(rng.below(rng.below(8) === 0 ? 300 : 30)));
      headers.push([name, value]);
    }
    if (rng.below(50) === 0) {
      const size = rng.below(4097);
      encoder.setMaxTableSize(size);
      decoder.setMaxTableSize(size);
    }
    assert.deepEqual(decoder.decode(encoder.encode(headers)), headers, `iteration ${i}`);
  }
});
