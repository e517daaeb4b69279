import assert from "node:assert/strict";
import { ConnectionError, ErrorCode } from "../../lib/h2/errors.ts";
import {
  huffmanCode,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanEncodedLengthLatin1,
  huffmanEncodeLatin1Into,
  huffmanMaxDecodedLength,
} from "../../lib/h2/huffman.ts";

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array) => String.fromCharCode(...b);
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Huffman-coded string literals from RFC 7541 Appendix C.4 and C.6. */
const RFC_STRINGS: Array<[string, string]> = [
  ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
  ["no-cache", "a8eb 1064 9cbf"],
  ["custom-key", "25a8 49e9 5ba9 7d7f"],
  ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
  ["302", "6402"],
  ["private", "aec3 771a 4b"],
  ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
  ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
  ["307", "640e ff"],
  ["Mon, 21 Oct 2013 20:13:22 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff"],
  ["gzip", "9bd9 ab"],
  [
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
  ],
];

function assertCompressionError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConnectionError, `expected ConnectionError, got ${e}`);
    assert.equal(e.code, ErrorCode.COMPRESSION_ERROR);
    assert.match(e.message, pattern);
    return true;
  });
}

/** Deterministic xorshift32, so a failure reproduces. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

Deno.test("huffmanCode() matches codes printed in RFC 7541 Appendix B", () => {
  const printed: Array<[number, number, number]> = [
    [0, 0x1ff8, 13],
    [1, 0x7fffd8, 23],
    [9, 0xffffea, 24],
    [10, 0x3ffffffc, 30],
    [13, 0x3ffffffd, 30],
    [22, 0x3ffffffe, 30],
    [32, 0x14, 6],
    [48, 0x0, 5],
    [58, 0x5c, 7],
    [97, 0x3, 5],
    [116, 0x9, 5],
    [127, 0xffffffc, 28],
    [128, 0xfffe6, 20],
    [200, 0x3ffffe2, 26],
    [249, 0xffffffe, 28],
    [255, 0x3ffffee, 26],
    [256, 0x3fffffff, 30],
  ];
  for (const [sym, code, length] of printed) {
    assert.deepEqual(huffmanCode(sym), { code, length }, `symbol ${sym}`);
  }
  assert.throws(() => huffmanCode(257), RangeError);
});

Deno.test("huffmanCode() is a complete prefix code (Kraft sum 1)", () => {
  let sum = 0;
  for (let s = 0; s <= 256; s++) sum += 2 ** -huffmanCode(s).length;
  assert.equal(sum, 1);
});

Deno.test("huffmanEncode() produces the RFC 7541 Appendix C strings", () => {
  for (const [plain, coded] of RFC_STRINGS) {
    const bytes = latin1(plain);
    assert.equal(toHex(huffmanEncode(bytes)), toHex(hex(coded)), plain);
    assert.equal(huffmanEncodedLength(bytes), hex(coded).length, plain);
    assert.equal(huffmanEncodedLengthLatin1(plain), hex(coded).length, plain);
    const out = new Uint8Array(hex(coded).length + 3);
    assert.equal(huffmanEncodeLatin1Into(plain, out, 3), out.length, plain);
    assert.equal(toHex(out.subarray(3)), toHex(hex(coded)), plain);
  }
});

Deno.test("huffmanDecode() decodes the RFC 7541 Appendix C strings", () => {
  for (const [plain, coded] of RFC_STRINGS) assert.equal(text(huffmanDecode(hex(coded))), plain);
});

Deno.test("huffmanDecode() round-trips every byte value, alone and all together", () => {
  const all = new Uint8Array(256).map((_, i) => i);
  assert.deepEqual(huffmanDecode(huffmanEncode(all)), all);
  const reversed = all.slice().reverse();
  assert.deepEqual(huffmanDecode(huffmanEncode(reversed)), reversed);
  for (let b = 0; b < 256; b++) {
    const one = Uint8Array.of(b);
    assert.deepEqual(huffmanDecode(huffmanEncode(one)), one, `byte ${b}`);
    const run = new Uint8Array(9).fill(b);
    assert.deepEqual(huffmanDecode(huffmanEncode(run)), run, `run of byte ${b}`);
  }
});

Deno.test("huffmanDecode() round-trips random strings", () => {
  const next = xorshift(0x5eed1234);
  for (let i = 0; i < 2000; i++) {
    const len = next() % 120;
    const s = new Uint8Array(len);
    // Half the strings printable ASCII (short codes), half any byte (long codes).
    const printable = i % 2 === 0;
    for (let j = 0; j < len; j++) s[j] = printable ? 32 + (next() % 95) : next() & 0xff;
    const coded = huffmanEncode(s);
    assert.ok(coded.length <= Math.ceil((len * 30) / 8));
    assert.ok(huffmanMaxDecodedLength(coded.length) >= len);
    assert.deepEqual(huffmanDecode(coded), s);
  }
});

Deno.test("huffmanEncodedLengthLatin1() returns -1 for a code unit above 0xff", () => {
  assert.equal(huffmanEncodedLengthLatin1("caf\u00e9"), huffmanEncodedLength(latin1("caf\u00e9")));
  assert.equal(huffmanEncodedLengthLatin1("caf\u0100"), -1);
  assert.equal(huffmanEncodedLengthLatin1("\u{1f600}"), -1);
});

Deno.test("huffmanDecode() of an empty string is empty", () => {
  assert.equal(huffmanDecode(new Uint8Array(0)).length, 0);
  assert.equal(huffmanEncode(new Uint8Array(0)).length, 0);
});

Deno.test("huffmanDecode() rejects a string containing EOS", () => {
  // EOS is 30 one bits; 32 ones hold it whole.
  assertCompressionError(() => huffmanDecode(hex("ffffffff")), /EOS symbol at offset 3/);
  // 'a' (00011) then EOS then padding: 5 + 30 + 5 bits.
  const bits = "00011" + "1".repeat(30) + "11111";
  const bytes = Uint8Array.from(bits.match(/.{8}/g)!, (b) => parseInt(b, 2));
  assertCompressionError(() => huffmanDecode(bytes), /EOS/);
});

Deno.test("huffmanDecode() rejects padding longer than 7 bits", () => {
  // 'a' = 00011, padded with 11 ones: 16 bits.
  assertCompressionError(() => huffmanDecode(hex("1fff")), /padding is longer than 7 bits/);
  // A whole byte of padding alone.
  assertCompressionError(() => huffmanDecode(hex("ff")), /padding is longer than 7 bits/);
  // But 7 bits of padding is fine: '0' (00000) + '0' (00000) + 6 ones = 2 bytes.
  assert.equal(text(huffmanDecode(hex("003f"))), "00");
});

Deno.test("huffmanDecode() rejects padding that is not all ones", () => {
  // 'a' = 00011 then 110 instead of 111.
  assertCompressionError(() => huffmanDecode(hex("1e")), /padding is not all ones/);
  // Byte 0's 13-bit code 11111111|11000, then 000 as padding.
  assertCompressionError(() => huffmanDecode(hex("ffc0")), /padding is not all ones/);
});

Deno.test("huffmanDecode() errors name the offset of the bad byte", () => {
  // Two good bytes, then EOS.
  const coded = new Uint8Array([...huffmanEncode(latin1("ab")), 0xff, 0xff, 0xff, 0xff]);
  assertCompressionError(() => huffmanDecode(coded), /at offset \d+/);
});
