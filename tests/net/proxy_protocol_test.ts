import assert from "node:assert/strict";
import {
  encodeProxyHeader,
  parseProxyHeader,
  type ProxyHeader,
  V1_MAX_BYTES,
  V2_SIGNATURE,
} from "../../lib/net/proxy_protocol.ts";

const text = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** Every strict prefix needs more bytes; the whole header (and anything after it) parses to `want`. */
function assertEverySplit(bytes: Uint8Array, want: ProxyHeader): void {
  for (let i = 0; i < bytes.length; i++) {
    assert.equal(parseProxyHeader(bytes.subarray(0, i)), null, `prefix of ${i} bytes`);
  }
  assert.deepEqual(parseProxyHeader(bytes), want);
  assert.deepEqual(parseProxyHeader(concat(bytes, text("GET / HTTP/1.1\r\n"))), want);
}

function assertRefused(bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => parseProxyHeader(bytes), (err: Error) => {
    assert.ok(err instanceof SyntaxError, `${err}`);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("parseProxyHeader() reads a v1 TCP4 line at every split point", () => {
  const line = text("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n");
  assertEverySplit(line, {
    version: 1,
    command: "proxy",
    source: { host: "192.0.2.7", port: 56324 },
    destination: { host: "198.51.100.1", port: 443 },
    byteLength: line.length,
  });
});

Deno.test("parseProxyHeader() reads a v1 TCP6 line, addresses compressed", () => {
  const line = text("PROXY TCP6 2001:db8:0:0:0:0:0:1 ::1 65535 0\r\n");
  assertEverySplit(line, {
    version: 1,
    command: "proxy",
    source: { host: "2001:db8::1", port: 65535 },
    destination: { host: "::1", port: 0 },
    byteLength: line.length,
  });
});

Deno.test("parseProxyHeader() takes v1 UNKNOWN as no address, whatever follows it on the line", () => {
  for (const s of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n"]) {
    assertEverySplit(text(s), { version: 1, command: "local", byteLength: s.length });
  }
});

Deno.test("parseProxyHeader() reads v2 PROXY over IPv4 and IPv6 at every split point, skipping TLVs", () => {
  const v4 = encodeProxyHeader({
    version: 2,
    source: { host: "203.0.113.9", port: 40000 },
    destination: { host: "127.0.0.1", port: 8443 },
  });
  assert.equal(v4.length, 16 + 12);
  assertEverySplit(v4, {
    version: 2,
    command: "proxy",
    source: { host: "203.0.113.9", port: 40000 },
    destination: { host: "127.0.0.1", port: 8443 },
    byteLength: 28,
  });
  const v6 = encodeProxyHeader({
    version: 2,
    source: { host: "2001:db8::7", port: 1 },
    destination: { host: "::1", port: 2 },
  });
  // A TLV (PP2_TYPE_AUTHORITY "a.test") after the addresses; the length covers it.
  const tlv = Uint8Array.of(0x02, 0x00, 0x06, ...text("a.test"));
  const withTlv = concat(v6, tlv);
  new DataView(withTlv.buffer).setUint16(14, 36 + tlv.length);
  assertEverySplit(withTlv, {
    version: 2,
    command: "proxy",
    source: { host: "2001:db8::7", port: 1 },
    destination: { host: "::1", port: 2 },
    byteLength: 16 + 36 + tlv.length,
  });
});

Deno.test("parseProxyHeader() reads v2 LOCAL and AF_UNIX without an address", () => {
  assertEverySplit(encodeProxyHeader({ version: 2 }), {
    version: 2,
    command: "local",
    byteLength: 16,
  });
  // LOCAL with an address block: "the receiver must ignore" it, but skip its bytes.
  const local = concat(V2_SIGNATURE, Uint8Array.of(0x20, 0x11, 0, 12), new Uint8Array(12));
  assertEverySplit(local, { version: 2, command: "local", byteLength: 28 });
  const unix = concat(V2_SIGNATURE, Uint8Array.of(0x21, 0x31, 0, 216), new Uint8Array(216));
  assert.deepEqual(parseProxyHeader(unix), { version: 2, command: "proxy", byteLength: 232 });
});

Deno.test("encodeProxyHeader() and parseProxyHeader() round-trip v1 and v2", () => {
  for (const version of [1, 2] as const) {
    for (
      const [source, destination] of [
        [{ host: "10.0.0.1", port: 1234 }, { host: "10.0.0.2", port: 80 }],
        [{ host: "fe80::1", port: 9 }, { host: "2001:db8::2", port: 65535 }],
      ]
    ) {
      const bytes = encodeProxyHeader({ version, source, destination });
      assert.deepEqual(parseProxyHeader(bytes), {
        version,
        command: "proxy",
        source,
        destination,
        byteLength: bytes.length,
      });
    }
  }
});

Deno.test("parseProxyHeader() refuses what is not a header, naming the byte", () => {
  assertRefused(text("GET / HTTP/1.1\r\n"), /byte 0 is 0x47, not the start of a v1/);
  // A TLS ClientHello.
  assertRefused(Uint8Array.of(0x16, 0x03, 0x01), /byte 0 is 0x16/);
  assertRefused(text("PROXX"), /PROXY v1 header: byte 4 is 0x58, expected 0x59/);
  assertRefused(
    Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x52),
    /PROXY v2 header: byte 7 is 0x52, expected 0x51/,
  );
});

Deno.test("parseProxyHeader() refuses bad v1 lines with the byte offset of the bad field", () => {
  const cases: [string, RegExp][] = [
    [
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
      /protocol "TCP5" at byte 6 is not TCP4, TCP6 or UNKNOWN/,
    ],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", /protocol "UDP4" at byte 6/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /5 fields, expected 6/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", /7 fields, expected 6/],
    [
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
      /source address "1.2.3.256" at byte 11 is not an IPv4/,
    ],
    ["PROXY TCP4 1.2.3.4 ::1 1 2\r\n", /destination address "::1" at byte 19 is not an IPv4/],
    ["PROXY TCP6 ::1 1.2.3.4 1 2\r\n", /destination address "1.2.3.4" at byte 15 is not an IPv6/],
    ["PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n", /source address "::ffff:1.2.3.4" at byte 11/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /source port "65536" at byte 27 is not a port/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", /destination port "-2" at byte 29 is not a port/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /line feed at byte 30 without CR/],
  ];
  for (const [line, message] of cases) assertRefused(text(line), message);
});

Deno.test("parseProxyHeader() waits for a v1 line up to 107 bytes, then refuses it", () => {
  const long = text(`PROXY UNKNOWN ${"x".repeat(200)}`);
  assert.equal(parseProxyHeader(long.subarray(0, V1_MAX_BYTES - 1)), null);
  assertRefused(long.subarray(0, V1_MAX_BYTES), /no line end within 107 bytes \(byte 106\)/);
  // Exactly 107 bytes with the CRLF is the longest line allowed.
  const longest = text(`PROXY UNKNOWN ${"x".repeat(V1_MAX_BYTES - 16)}\r\n`);
  assert.equal(longest.length, V1_MAX_BYTES);
  assert.equal(parseProxyHeader(longest)?.byteLength, V1_MAX_BYTES);
});

Deno.test("parseProxyHeader() refuses bad v2 headers, naming the byte", () => {
  const head = (cmd: number, fam: number, len: number) =>
    concat(V2_SIGNATURE, Uint8Array.of(cmd, fam, len >> 8, len & 0xff));
  assertRefused(head(0x11, 0x11, 12), /version\/command byte 12 is 0x11, expected 0x20/);
  assertRefused(head(0x22, 0x11, 12), /byte 12 is 0x22/);
  assertRefused(head(0x21, 0x41, 12), /address family\/protocol byte 13 is 0x41/);
  assertRefused(head(0x21, 0x13, 12), /byte 13 is 0x13/);
  assertRefused(head(0x21, 0x00, 0), /byte 13 is 0x00 \(UNSPEC\), which a PROXY command cannot/);
  assertRefused(head(0x21, 0x11, 11), /length 11 at byte 14 is shorter than the 12 address bytes/);
  assertRefused(head(0x21, 0x21, 12), /length 12 at byte 14 is shorter than the 36/);
  assertRefused(head(0x21, 0x31, 108), /shorter than the 216/);
  // Refused as soon as the fixed part is in, before the address bytes arrive.
  assert.equal(parseProxyHeader(head(0x21, 0x11, 12)), null);
});
