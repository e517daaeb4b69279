import assert from "node:assert/strict";
import { ConnectionError, ErrorCode } from "../../lib/h2/errors.ts";
import { HpackDecoder, HpackEncoder } from "../../lib/h2/hpack.ts";

type Headers = Array<[string, string]>;

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function assertHpackError(fn: () => unknown, code: number, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConnectionError, `expected ConnectionError, got ${e}`);
    assert.equal(e.code, code, `error code of "${e.message}"`);
    assert.match(e.message, pattern);
    return true;
  });
}
const compression = (fn: () => unknown, pattern: RegExp) =>
  assertHpackError(fn, ErrorCode.COMPRESSION_ERROR, pattern);

/** One step of an Appendix C example: the block, the headers, the table after it, its size. */
interface Step {
  wire: string;
  headers: Headers;
  table: Headers;
  size: number;
}

// ---------------------------------------------------------------------------------------------
// RFC 7541 Appendix C

const C2: Array<[string, Step]> = [
  ["C.2.1 literal with indexing", {
    wire: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    headers: [["custom-key", "custom-header"]],
    table: [["custom-key", "custom-header"]],
    size: 55,
  }],
  ["C.2.2 literal without indexing", {
    wire: "040c 2f73 616d 706c 652f 7061 7468",
    headers: [[":path", "/sample/path"]],
    table: [],
    size: 0,
  }],
  ["C.2.3 literal never indexed", {
    wire: "1008 7061 7373 776f 7264 0673 6563 7265 74",
    headers: [["password", "secret"]],
    table: [],
    size: 0,
  }],
  ["C.2.4 indexed", { wire: "82", headers: [[":method", "GET"]], table: [], size: 0 }],
];

const REQ1: Headers = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "www.example.com"],
];
const REQ2: Headers = [...REQ1, ["cache-control", "no-cache"]];
const REQ3: Headers = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const REQ_TABLES: Headers[] = [
  [[":authority", "www.example.com"]],
  [["cache-control", "no-cache"], [":authority", "www.example.com"]],
  [["custom-key", "custom-value"], ["cache-control", "no-cache"], [
    ":authority",
    "www.example.com",
  ]],
];
const REQ_SIZES = [57, 110, 164];

const C3_WIRES = [
  "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
  "8286 84be 5808 6e6f 2d63 6163 6865",
  "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];
const C4_WIRES = [
  "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
  "8286 84be 5886 a8eb 1064 9cbf",
  "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];

const RESP1: Headers = [
  [":status", "302"],
  ["cache-control", "private"],
  ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
  ["location", "https://www.example.com"],
];
const RESP2: Headers = [[":status", "307"], ...RESP1.slice(1)];
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP3: Headers = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
  ["location", "https://www.example.com"],
  ["content-encoding", "gzip"],
  ["set-cookie", COOKIE],
];
const RESP_TABLES: Headers[] = [
  [
    ["location", "https://www.example.com"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["cache-control", "private"],
    [":status", "302"],
  ],
  [
    [":status", "307"],
    ["location", "https://www.example.com"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["cache-control", "private"],
  ],
  [
    ["set-cookie", COOKIE],
    ["content-encoding", "gzip"],
    ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
  ],
];
const RESP_SIZES = [222, 222, 215];

const C5_WIRES = [
  "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a " +
  "3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
  "4803 3330 37c1 c0bf",
  "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 " +
  "677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 " +
  "553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
];
const C6_WIRES = [
  "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e " +
  "919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
  "4883 640e ffc1 c0bf",
  "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 " +
  "821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed " +
  "4ee5 b106 3d50 07",
];

const steps = (wires: string[], headers: Headers[], tables: Headers[], sizes: number[]): Step[] =>
  wires.map((wire, i) => ({ wire, headers: headers[i], table: tables[i], size: sizes[i] }));

const APPENDIX_C: Array<{ name: string; tableSize: number; steps: Step[] }> = [
  ...C2.map(([name, step]) => ({ name, tableSize: 4096, steps: [step] })),
  {
    name: "C.3 requests without Huffman",
    tableSize: 4096,
    steps: steps(C3_WIRES, [REQ1, REQ2, REQ3], REQ_TABLES, REQ_SIZES),
  },
  {
    name: "C.4 requests with Huffman",
    tableSize: 4096,
    steps: steps(C4_WIRES, [REQ1, REQ2, REQ3], REQ_TABLES, REQ_SIZES),
  },
  {
    name: "C.5 responses without Huffman",
    tableSize: 256,
    steps: steps(C5_WIRES, [RESP1, RESP2, RESP3], RESP_TABLES, RESP_SIZES),
  },
  {
    name: "C.6 responses with Huffman",
    tableSize: 256,
    steps: steps(C6_WIRES, [RESP1, RESP2, RESP3], RESP_TABLES, RESP_SIZES),
  },
];

for (const example of APPENDIX_C) {
  Deno.test(`HpackDecoder.decode() decodes RFC 7541 ${example.name}`, () => {
    const decoder = new HpackDecoder({ maxTableSize: example.tableSize });
    example.steps.forEach((step, i) => {
      assert.deepEqual(decoder.decode(hex(step.wire)), step.headers, `block ${i + 1}`);
      assert.deepEqual(decoder.tableEntries(), step.table, `table after block ${i + 1}`);
      assert.equal(decoder.tableSize, step.size, `table size after block ${i + 1}`);
    });
  });
}

Deno.test("HpackDecoder.decode() reads RFC 7541 C.1 integers through size updates", () => {
  const decoder = new HpackDecoder();
  // C.1.1: 10 in a 5-bit prefix is 0a (with the 001 size-update pattern: 2a).
  decoder.decode(hex("2a"));
  assert.equal(decoder.tableCapacity, 10);
  // C.1.2: 1337 in a 5-bit prefix is 1f 9a 0a.
  decoder.decode(hex("3f9a0a"));
  assert.equal(decoder.tableCapacity, 1337);
  // The limit itself, 4096 = 31 + 0x61 + 0x1f * 128.
  decoder.decode(hex("3fe11f"));
  assert.equal(decoder.tableCapacity, 4096);
});

// ---------------------------------------------------------------------------------------------
// Dynamic table behaviour

Deno.test("HpackDecoder.decode() empties the table for an entry larger than its maximum size", () => {
  const decoder = new HpackDecoder({ maxTableSize: 100 });
  decoder.decode(hex("4001 6101 62")); // a: b, 34 bytes
  assert.equal(decoder.tableSize, 34);
  // 70 + 32 = 102 > 100: RFC 7541 §4.4 empties the table; the field is still emitted.
  const long = "x".repeat(70);
  const block = new Uint8Array([0x40, 0x00, 0x46, ...latin1(long)]);
  assert.deepEqual(decoder.decode(block), [["", long]]);
  assert.deepEqual(decoder.tableEntries(), []);
  assert.equal(decoder.tableSize, 0);
});

Deno.test("HpackDecoder.decode() applies a size update of 0 by evicting everything", () => {
  const decoder = new HpackDecoder();
  for (const wire of C3_WIRES) decoder.decode(hex(wire));
  assert.equal(decoder.tableEntries().length, 3);
  assert.deepEqual(decoder.decode(hex("20 3fe11f 82")), [[":method", "GET"]]);
  assert.equal(decoder.tableSize, 0);
  assert.equal(decoder.tableCapacity, 4096);
  // The old dynamic indexes are gone.
  compression(() => decoder.decode(hex("be")), /index 62 out of range \(static 61 \+ dynamic 0\)/);
});

Deno.test("HpackDecoder.decode() keeps many entries in order as the table wraps and grows", () => {
  const decoder = new HpackDecoder({ maxTableSize: 4096 });
  // 300 entries of 32 + 2 + 3 = 37 bytes: the table holds floor(4096 / 37) = 110 of them.
  for (let i = 0; i < 300; i++) {
    const value = String(i).padStart(3, "0");
    decoder.decode(new Uint8Array([0x40, 0x02, 0x6b, 0x30 + (i % 10), 0x03, ...latin1(value)]));
    const entries = decoder.tableEntries();
    assert.equal(entries.length, Math.min(i + 1, 110));
    assert.deepEqual(entries[0], [`k${i % 10}`, value]);
    assert.equal(decoder.tableSize, entries.length * 37);
  }
  // Index 62 is the newest, 171 the oldest kept (entry 190).
  assert.deepEqual(decoder.decode(hex("be")), [["k9", "299"]]);
  assert.deepEqual(decoder.decode(hex("ff 2c")), [["k0", "190"]]); // 127 + 44 = 171
  compression(
    () => decoder.decode(hex("ff 2d")),
    /index 172 out of range \(static 61 \+ dynamic 110\)/,
  );
});

Deno.test("HpackDecoder.decode() maps bytes 0x00-0xff to latin1 code units both ways", () => {
  const decoder = new HpackDecoder();
  const value = new Uint8Array(256).map((_, i) => i);
  const block = new Uint8Array([0x00, 0x01, 0x78, 0x7f, 0x81, 0x01, ...value]);
  const [[name, decoded]] = decoder.decode(block);
  assert.equal(name, "x");
  assert.equal(decoded.length, 256);
  for (let i = 0; i < 256; i++) assert.equal(decoded.charCodeAt(i), i);
});

Deno.test("HpackDecoder.decode() decodes strings longer than one conversion chunk", () => {
  const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
  const value = "v".repeat(10_000);
  // Length 10000 = 127 + 9873: 9873 = 0x11 + 0x4d * 128 → 0x91 0x4d.
  const block = new Uint8Array([0x00, 0x01, 0x61, 0x7f, 0x91, 0x4d, ...latin1(value)]);
  assert.deepEqual(decoder.decode(block), [["a", value]]);
});

// ---------------------------------------------------------------------------------------------
// RFC 7541 error cases

Deno.test("HpackDecoder.decode() rejects index 0", () => {
  compression(() => new HpackDecoder().decode(hex("80")), /^HPACK: index 0 at offset 0$/);
  compression(() => new HpackDecoder().decode(hex("82 80")), /index 0 at offset 1/);
});

Deno.test("HpackDecoder.decode() rejects an index past both tables", () => {
  const decoder = new HpackDecoder();
  for (const wire of C3_WIRES) decoder.decode(hex(wire));
  // Twelve valid fields, then index 70 (0xc6) with 3 dynamic entries.
  compression(
    () => decoder.decode(hex("8282 8282 8282 8282 8282 8282 c6")),
    /^HPACK: index 70 out of range \(static 61 \+ dynamic 3\) at offset 12$/,
  );
  // The same check for a literal's indexed name: 6-bit prefix, 63 + 1 = 64.
  compression(
    () => new HpackDecoder().decode(hex("7f01 0161")),
    /index 64 out of range \(static 61 \+ dynamic 0\) at offset 0/,
  );
  // And a 4-bit prefix one: 15 + 47 = 62.
  compression(() => new HpackDecoder().decode(hex("0f2f 0161")), /index 62 out of range/);
});

Deno.test("HpackDecoder.decode() rejects integer overflow", () => {
  // 127 + 127 + 127·2^7 + 127·2^14 + 127·2^21 + 15·2^28 > 2^31 - 1.
  compression(
    () => new HpackDecoder().decode(hex("ff ffffffff0f")),
    /integer at offset 0 exceeds 2\^31-1/,
  );
  // A 10-byte continuation of zeros never overflows but is still refused.
  compression(
    () => new HpackDecoder().decode(hex("82 ff 8080808080808080 8000")),
    /integer at offset 1 has more than 5 continuation bytes/,
  );
});

Deno.test("HpackDecoder.decode() rejects a string length past the end of the block", () => {
  compression(
    () => new HpackDecoder().decode(hex("000a 6162")),
    /^HPACK: name string length 10 exceeds the 2 bytes left in the block at offset 1$/,
  );
  compression(
    () => new HpackDecoder().decode(hex("41 01")),
    /value string length 1 exceeds the 0 bytes left/,
  );
  // A huge claimed length (7·2^28 + 2^28 + 126) is refused before anything is allocated.
  compression(
    () => new HpackDecoder().decode(hex("04 7f ffffffff06")),
    /value string length 1879048318 exceeds the 0 bytes left in the block at offset 1/,
  );
  // Also when Huffman-coded.
  compression(
    () => new HpackDecoder().decode(hex("04 ff ffffffff06")),
    /value string length 1879048318 exceeds/,
  );
});

Deno.test("HpackDecoder.decode() rejects a size update after a field", () => {
  compression(
    () => new HpackDecoder().decode(hex("82 20")),
    /^HPACK: dynamic table size update after a header field at offset 1$/,
  );
});

Deno.test("HpackDecoder.decode() rejects a size update above the limit", () => {
  compression(
    () => new HpackDecoder().decode(hex("3fe21f")),
    /^HPACK: dynamic table size update to 4097 exceeds the limit 4096 at offset 0$/,
  );
  compression(
    () => new HpackDecoder({ maxTableSize: 0 }).decode(hex("21")),
    /size update to 1 exceeds the limit 0/,
  );
});

Deno.test("HpackDecoder.decode() accepts two size updates then a field", () => {
  const decoder = new HpackDecoder({ maxTableSize: 256 });
  assert.deepEqual(decoder.decode(hex("20 3f21 82")), [[":method", "GET"]]);
  assert.equal(decoder.tableCapacity, 64);
});

Deno.test("HpackDecoder.decode() rejects truncated blocks", () => {
  const cases: Array<[string, RegExp]> = [
    ["ff", /truncated integer at offset 0/],
    ["82 ff80", /truncated integer at offset 1/],
    ["3f", /truncated integer at offset 0/],
    ["40", /block ends where a name string should start at offset 1/],
    ["41", /block ends where a value string should start at offset 1/],
    ["10 01", /name string length 1 exceeds the 0 bytes left/],
    ["00 7f", /truncated integer at offset 1/],
  ];
  for (const [wire, pattern] of cases) {
    compression(() => new HpackDecoder().decode(hex(wire)), pattern);
  }
  // Cutting a block anywhere but between two representations is an error.
  const whole: Array<[string, number[]]> = [[C3_WIRES[0], [1, 2, 3]], [C5_WIRES[0], [5, 14, 45]]];
  for (const [wire, boundaries] of whole) {
    const block = hex(wire);
    for (let cut = 1; cut < block.length; cut++) {
      const decode = () => new HpackDecoder({ maxTableSize: 256 }).decode(block.subarray(0, cut));
      if (boundaries.includes(cut)) decode();
      else compression(decode, /truncated integer|exceeds the \d+ bytes left|block ends/);
    }
  }
});

Deno.test("HpackDecoder.decode() rejects bad Huffman inside a block, naming the offset", () => {
  compression(
    () => new HpackDecoder().decode(hex("00 81ff 0161")),
    /padding is longer than 7 bits \(string at offset 2\)/,
  );
  compression(() => new HpackDecoder().decode(hex("00 84ffffffff 0161")), /EOS symbol at offset 5/);
  compression(() => new HpackDecoder().decode(hex("00 811e 0161")), /padding is not all ones/);
});

Deno.test("HpackDecoder.setMaxTableSize() lower than in use requires a size update first", () => {
  const decoder = new HpackDecoder();
  for (const wire of C3_WIRES) decoder.decode(hex(wire));
  decoder.setMaxTableSize(100);
  compression(() => decoder.decode(hex("82")), /expected a dynamic table size update at most 100/);
  assert.deepEqual(decoder.decode(hex("3f45 82")), [[":method", "GET"]]);
  assert.equal(decoder.tableCapacity, 100);
  assert.deepEqual(decoder.tableEntries(), [["custom-key", "custom-value"]]);
  // A raise needs no update; the peer may then grow the table up to it.
  decoder.setMaxTableSize(8192);
  assert.deepEqual(decoder.decode(hex("82")), [[":method", "GET"]]);
  assert.deepEqual(decoder.decode(hex("3fe13f 82")), [[":method", "GET"]]);
  assert.equal(decoder.tableCapacity, 8192);
});

Deno.test("HpackDecoder.setMaxTableSize() is refused on a block of only the wrong update", () => {
  const decoder = new HpackDecoder();
  decoder.decode(hex(C3_WIRES[0]));
  decoder.setMaxTableSize(32);
  compression(() => decoder.decode(hex("3f21")), /size update to 64 exceeds the limit 32/);
});

// ---------------------------------------------------------------------------------------------
// Limits

Deno.test("HpackDecoder.decode() stops with ENHANCE_YOUR_CALM past maxHeaderListSize", () => {
  // C.3.1 sizes: 42 + 43 + 38 (":path: /" is the third field, at offset 2) > 100.
  assertHpackError(
    () => new HpackDecoder({ maxHeaderListSize: 100 }).decode(hex(C3_WIRES[0])),
    ErrorCode.ENHANCE_YOUR_CALM,
    /^HPACK: header list exceeds 100 bytes at the field at offset 2$/,
  );
  assert.equal(new HpackDecoder({ maxHeaderListSize: 180 }).decode(hex(C3_WIRES[0])).length, 4);
});

Deno.test("HpackDecoder.decode() stops early on a block that repeats one large entry", () => {
  // One 4000-byte value in the table, then 10 000 one-byte references to it: 40 MB decoded.
  const decoder = new HpackDecoder();
  const big = "b".repeat(4000 - 32 - 1);
  // Length 3967 = 127 + 3840: 3840 = 0x00 + 0x1e * 128 → 0x80 0x1e.
  decoder.decode(new Uint8Array([0x40, 0x01, 0x61, 0x7f, 0x80, 0x1e, ...latin1(big)]));
  assert.equal(decoder.tableSize, 4000);
  const bomb = new Uint8Array(10_000).fill(0xbe);
  assertHpackError(
    () => decoder.decode(bomb),
    ErrorCode.ENHANCE_YOUR_CALM,
    /header list exceeds 65536 bytes at the field at offset 16$/,
  );
});

Deno.test("HpackDecoder.decode() refuses a string longer than maxStringLength", () => {
  assertHpackError(
    () => new HpackDecoder({ maxStringLength: 5 }).decode(hex(C2[0][1].wire)),
    ErrorCode.ENHANCE_YOUR_CALM,
    /^HPACK: name string of 10 bytes exceeds the limit 5 at offset 1$/,
  );
  // Huffman: "custom-key" is 8 bytes coded, 10 decoded.
  assertHpackError(
    () => new HpackDecoder({ maxStringLength: 9 }).decode(hex("00 8825a8 49e9 5ba9 7d7f 0161")),
    ErrorCode.ENHANCE_YOUR_CALM,
    /name string of 10 bytes exceeds the limit 9 at offset 1/,
  );
});

Deno.test("new HpackDecoder() rejects nonsensical limits", () => {
  assert.throws(() => new HpackDecoder({ maxTableSize: -1 }), RangeError);
  assert.throws(() => new HpackDecoder({ maxHeaderListSize: 1.5 }), RangeError);
  assert.throws(() => new HpackDecoder().setMaxTableSize(2 ** 32), RangeError);
});

// ---------------------------------------------------------------------------------------------
// The hpack-test-case corpus (tests/testdata/README.md)

const CORPUS = new URL("../testdata/hpack-test-case/", import.meta.url);
const ENCODERS = [
  "go-hpack",
  "nghttp2",
  "nghttp2-change-table-size",
  "python-hpack",
  "swift-nio-hpack-huffman",
];

interface CorpusCase {
  seqno: number;
  header_table_size?: number | null;
  wire: string;
  headers: Array<Record<string, string>>;
}

/** The corpus JSON holds text; on the wire it was UTF-8, which the decoder returns as latin1. */
const utf8 = new TextEncoder();
const asWireString = (s: string) => String.fromCharCode(...utf8.encode(s));

for (const encoder of ENCODERS) {
  Deno.test(`HpackDecoder.decode() decodes every ${encoder} story of hpack-test-case`, () => {
    const dir = new URL(`${encoder}/`, CORPUS);
    const stories = [...Deno.readDirSync(dir)]
      .map((e) => e.name)
      .filter((n) => /^story_\d+\.json$/.test(n))
      .sort();
    assert.ok(stories.length >= 30, `${encoder} has ${stories.length} stories`);
    let blocks = 0;
    for (const story of stories) {
      const { cases } = JSON.parse(Deno.readTextFileSync(new URL(story, dir))) as {
        cases: CorpusCase[];
      };
      const decoder = new HpackDecoder({ maxTableSize: cases[0].header_table_size ?? 4096 });
      for (const c of cases) {
        if (c.header_table_size != null) decoder.setMaxTableSize(c.header_table_size);
        const expected = c.headers.map((h) => {
          const [[name, value]] = Object.entries(h);
          return [asWireString(name), asWireString(value)];
        });
        assert.deepEqual(decoder.decode(hex(c.wire)), expected, `${encoder}/${story} #${c.seqno}`);
        assert.ok(decoder.tableSize <= decoder.tableCapacity);
        blocks++;
      }
    }
    assert.ok(blocks > 1000, `${blocks} blocks`);
  });
}

// ---------------------------------------------------------------------------------------------
// HpackEncoder

Deno.test("HpackEncoder.encode() indexes exact static matches and Huffman-codes when shorter", () => {
  // :authority (index 1) as a literal without indexing, its value the C.4.1 Huffman string.
  assert.equal(toHex(new HpackEncoder().encode(REQ1)), "82868401" + "8cf1e3c2e5f23a6ba0ab90f4ff");
  // "x-a" is 18 bits in Huffman, 3 bytes either way: raw.
  assert.equal(toHex(new HpackEncoder().encode([["x-a", "b"]])), "0003782d61" + "0162");
  // Index 16 needs two bytes of 4-bit prefix: 0f 01.
  assert.equal(
    toHex(new HpackEncoder().encode([["accept-encoding", "br"]])),
    "0f01" + "02" + "6272",
  );
  assert.equal(toHex(new HpackEncoder().encode([["accept-encoding", "gzip, deflate"]])), "90");
  assert.equal(toHex(new HpackEncoder().encode([[":path", ""]])), "0400");
  // Static entries with empty values match too: accept is index 19.
  assert.equal(toHex(new HpackEncoder().encode([["accept", ""]])), "93");
  assert.equal(new HpackEncoder().encode([]).length, 0);
});

Deno.test("HpackEncoder.encode() sends credentials as never-indexed literals", () => {
  // authorization is static index 23: 0001 1111, 23 - 15 = 8.
  const block = new HpackEncoder().encode([["authorization", "Basic xyz"]]);
  assert.equal(toHex(block.subarray(0, 2)), "1f08");
  assert.deepEqual(new HpackDecoder().decode(block), [["authorization", "Basic xyz"]]);
});

Deno.test("HpackEncoder.encode() writes a repeated header list the same each time, names and values from its cache", () => {
  const encoder = new HpackEncoder();
  const request: Array<[string, string]> = [
    [":authority", "www.example.com"],
    [":path", "/tunnel"],
    ["accept-encoding", "identity"],
    ["x-custom", "www.example.com"], // the same string as a value of another header
    ["cookie", "secret"],
  ];
  const first = toHex(encoder.encode(request));
  for (let i = 0; i < 3; i++) assert.equal(toHex(encoder.encode(request)), first);
  assert.equal(first, toHex(new HpackEncoder().encode(request)), "as a fresh encoder writes it");
  assert.deepEqual(new HpackDecoder().decode(encoder.encode(request)), request);
});

Deno.test("HpackEncoder.encode() round-trips RFC 7541 Appendix C header lists", () => {
  for (const example of APPENDIX_C) {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    for (const step of example.steps) {
      assert.deepEqual(decoder.decode(encoder.encode(step.headers)), step.headers, example.name);
      assert.equal(decoder.tableSize, 0, "the encoder never inserts");
    }
  }
});

Deno.test("HpackEncoder.encode() round-trips every hpack-test-case header list", () => {
  let blocks = 0;
  let encodedBytes = 0;
  for (const encoderName of ["nghttp2", "go-hpack"]) {
    const dir = new URL(`${encoderName}/`, CORPUS);
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.name.endsWith(".json")) continue;
      const { cases } = JSON.parse(Deno.readTextFileSync(new URL(entry.name, dir))) as {
        cases: CorpusCase[];
      };
      const encoder = new HpackEncoder();
      const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
      for (const c of cases) {
        const headers: Array<[string, string]> = c.headers.map((h) => {
          const [[name, value]] = Object.entries(h);
          return [asWireString(name), asWireString(value)];
        });
        const block = encoder.encode(headers);
        assert.deepEqual(decoder.decode(block), headers, `${encoderName}/${entry.name}`);
        encodedBytes += block.length;
        blocks++;
      }
    }
  }
  assert.ok(blocks > 1000 && encodedBytes > 0);
});

Deno.test("HpackEncoder.encode() round-trips random byte strings", () => {
  let x = 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
  for (let i = 0; i < 300; i++) {
    const headers: Array<[string, string]> = [];
    const count = next() % 12;
    for (let j = 0; j < count; j++) {
      const str = (max: number) => {
        const n = next() % max;
        let s = "";
        for (let k = 0; k < n; k++) {
          s += String.fromCharCode(i % 2 ? next() & 0xff : 97 + next() % 26);
        }
        return s;
      };
      headers.push([str(20), str(next() % 4 === 0 ? 600 : 40)]);
    }
    assert.deepEqual(decoder.decode(encoder.encode(headers)), headers);
  }
});

Deno.test("HpackEncoder.encode() returns a block that later calls do not overwrite", () => {
  const encoder = new HpackEncoder();
  const first = encoder.encode([["x-name", "one"]]);
  const copy = first.slice();
  const second = encoder.encode([["x-name", "two"], ["x-other", "v".repeat(1000)]]);
  assert.deepEqual(first, copy);
  assert.deepEqual(new HpackDecoder().decode(second), [["x-name", "two"], [
    "x-other",
    "v".repeat(1000),
  ]]);
});

Deno.test("HpackEncoder.encode() fills a slab and moves to a new one without losing blocks", () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
  const kept: Array<[Uint8Array, Array<[string, string]>]> = [];
  for (let i = 0; i < 400; i++) {
    const headers: Array<[string, string]> = [["x-i", String(i)], ["x-pad", "p".repeat(i * 3)]];
    kept.push([encoder.encode(headers), headers]);
  }
  for (const [block, headers] of kept) assert.deepEqual(decoder.decode(block), headers);
  assert.ok(new Set(kept.map(([b]) => b.buffer)).size > 1, "used more than one slab");
});

Deno.test("HpackEncoder.encode() recovers when a consumer transfers a block's buffer", () => {
  const encoder = new HpackEncoder();
  const block = encoder.encode([["x-a", "1"]]);
  block.buffer.transfer();
  assert.equal(block.length, 0, "detached");
  const next = encoder.encode([["x-b", "2"]]);
  assert.deepEqual(new HpackDecoder().decode(next), [["x-b", "2"]]);
});

Deno.test("HpackEncoder.encode() refuses a code unit above 0xff with a TypeError", () => {
  const encoder = new HpackEncoder();
  assert.throws(
    () => encoder.encode([["x-emoji", "ok \u{1f600}"]]),
    (e: unknown) =>
      e instanceof TypeError && /header "x-emoji": code unit U\+d83d at index 3/.test(e.message),
  );
  assert.throws(() => encoder.encode([["caf\u0101", "v"]]), TypeError);
  // Latin1 above 0x7f is fine: those are bytes.
  const block = encoder.encode([["x-latin1", "caf\u00e9"]]);
  assert.deepEqual(new HpackDecoder().decode(block), [["x-latin1", "caf\u00e9"]]);
});

Deno.test("HpackEncoder.setMaxTableSize() emits a size update when the peer's limit shrinks", () => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const get: Array<[string, string]> = [[":method", "GET"]];
  assert.equal(toHex(encoder.encode(get)), "82");
  encoder.setMaxTableSize(8192); // a rise: nothing to signal
  assert.equal(toHex(encoder.encode(get)), "82");
  encoder.setMaxTableSize(1000);
  encoder.setMaxTableSize(100); // two changes between blocks: the smaller one
  decoder.setMaxTableSize(100);
  const block = encoder.encode(get);
  assert.equal(toHex(block), "3f45" + "82");
  assert.deepEqual(decoder.decode(block), get);
  assert.equal(decoder.tableCapacity, 100);
  assert.equal(toHex(encoder.encode(get)), "82", "signalled once");
  encoder.setMaxTableSize(0);
  assert.equal(toHex(encoder.encode(get)), "2082");
});

Deno.test("HpackEncoder.setMaxTableSize() keeps the update owed when a block fails to encode", () => {
  const encoder = new HpackEncoder({ maxTableSize: 4096 });
  encoder.setMaxTableSize(0);
  assert.throws(() => encoder.encode([["x", "\u0100"]]), TypeError);
  assert.equal(toHex(encoder.encode([[":method", "GET"]])), "2082");
});
