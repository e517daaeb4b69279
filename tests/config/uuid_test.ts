import assert from "node:assert/strict";
import { formatUuid, parseUserId, uuidV5FromName } from "../../lib/config/uuid.ts";

Deno.test("parseUserId() keeps a canonical UUID and lowercases it", () => {
  const u = parseUserId("A0B1C2D3-E4F5-4A6B-8C7D-8E9FA0B1C2D3");
  assert.equal(u.id, "a0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3");
  assert.deepEqual(
    Array.from(u.bytes),
    [
      0xa0,
      0xb1,
      0xc2,
      0xd3,
      0xe4,
      0xf5,
      0x4a,
      0x6b,
      0x8c,
      0x7d,
      0x8e,
      0x9f,
      0xa0,
      0xb1,
      0xc2,
      0xd3,
    ],
  );
});

Deno.test("parseUserId() accepts 32 hex digits without dashes", () => {
  const u = parseUserId("a0b1c2d3e4f54a6b8c7d8e9fa0b1c2d3");
  assert.equal(u.id, "a0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3");
});

Deno.test("parseUserId() maps a short string to Xray's UUIDv5 with the zero namespace", () => {
  const u = parseUserId("example");
  assert.equal(u.id, "feb54431-301b-52bb-a6dd-e1e93e81bb9e");
  assert.equal(u.bytes.length, 16);
  assert.equal(u.bytes[6] >> 4, 5, "version 5");
  assert.equal(u.bytes[8] >> 6, 0b10, "RFC 4122 variant");
});

Deno.test("parseUserId() maps strings of exactly 1 and 30 bytes", () => {
  assert.match(parseUserId("a").id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab]/);
  assert.match(parseUserId("x".repeat(30)).id, /-5[0-9a-f]{3}-/);
  // 10 three-byte characters = 30 bytes: the limit counts UTF-8 bytes, not characters.
  assert.match(parseUserId("好".repeat(10)).id, /-5[0-9a-f]{3}-/);
});

Deno.test("parseUserId() refuses an empty string, 31 bytes and malformed UUIDs", () => {
  const rule = /must be a UUID \(8-4-4-4-12 or 32 hex digits\) or a string of 1-30 bytes, got /;
  assert.throws(() => parseUserId(""), RangeError);
  assert.throws(() => parseUserId(""), rule);
  assert.throws(() => parseUserId("x".repeat(31)), rule);
  assert.throws(() => parseUserId("好".repeat(11)), rule); // 33 bytes
  assert.throws(() => parseUserId("g0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3"), rule);
  assert.throws(() => parseUserId("a0b1c2d3e4f5-4a6b-8c7d-8e9fa0b1c2d3a"), rule);
  assert.throws(
    () => parseUserId("not-a-uuid-but-quite-a-long-string!"),
    /got "not-a-uuid-but-quite-a-long-string!"$/,
  );
});

Deno.test("parseUserId() refuses a short string shaped like a broken UUID", () => {
  assert.throws(
    () => parseUserId("b831381d-6324-4d53-ad4f"),
    {
      name: "RangeError",
      message:
        'looks like a UUID but is not one (8-4-4-4-12 hex digits), got "b831381d-6324-4d53-ad4f"',
    },
  );
  // Not UUID-shaped: mapped like any other short string.
  assert.match(parseUserId("my-password-1").id, /-5[0-9a-f]{3}-/);
});

Deno.test("uuidV5FromName() differs per name and is stable", () => {
  assert.deepEqual(uuidV5FromName("example"), uuidV5FromName("example"));
  assert.notDeepEqual(uuidV5FromName("example"), uuidV5FromName("Example"));
});

Deno.test("formatUuid() refuses anything but 16 bytes", () => {
  assert.throws(() => formatUuid(new Uint8Array(15)), RangeError);
});
