import assert from "node:assert/strict";
import { decodeEarlyData, encodeEarlyData } from "../../lib/ws/early_data.ts";

Deno.test("encodeEarlyData() is base64url without padding, as Go's RawURLEncoding", () => {
  assert.deepEqual(encodeEarlyData(new Uint8Array([0xfb, 0xff, 0xbf])), "-_-_");
  assert.deepEqual(encodeEarlyData(new Uint8Array([0xfb])), "-w");
  assert.deepEqual(encodeEarlyData(new Uint8Array([])), "");
});

Deno.test("decodeEarlyData() round-trips, takes the standard alphabet and padding, null for non-base64", () => {
  const data = crypto.getRandomValues(new Uint8Array(2048));
  for (let n = 1; n < 40; n++) {
    assert.deepEqual(decodeEarlyData(encodeEarlyData(data.subarray(0, n))), data.subarray(0, n));
  }
  assert.deepEqual(decodeEarlyData("+w=="), new Uint8Array([0xfb]));
  assert.deepEqual(decodeEarlyData(encodeEarlyData(data)), data);
  assert.deepEqual(decodeEarlyData("chat, superchat"), null);
  assert.deepEqual(decodeEarlyData("a"), null);
  assert.deepEqual(decodeEarlyData(""), null);
});
