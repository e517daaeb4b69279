import assert from "node:assert/strict";
import {
  encodeSocks4Reply,
  parseSocks4Request,
  SOCKS4_MAX_FIELD,
  Socks4Error,
  Socks4Reply,
} from "../../lib/socks/socks4.ts";
import { concat } from "../support/fake_outbound.ts";
import { encodeSocks4Request } from "../support/socks_client.ts";

const enc = new TextEncoder();

Deno.test("parseSocks4Request() reads SOCKS4 and SOCKS4a requests, and null for every strict prefix", () => {
  const v4 = encodeSocks4Request({ ip: [10, 0, 0, 7], port: 8080, user: "bob" });
  const v4a = encodeSocks4Request({ ip: [0, 0, 0, 9], port: 443, user: "", host: "example.com" });
  for (
    const [bytes, want] of [
      [v4, { command: 1, host: "10.0.0.7", port: 8080, user: "bob" }],
      [v4a, { command: 1, host: "example.com", port: 443, user: "" }],
    ] as const
  ) {
    for (let n = 0; n < bytes.byteLength; n++) {
      assert.equal(parseSocks4Request(bytes.subarray(0, n)), null, `prefix of ${n} bytes`);
    }
    const r = parseSocks4Request(concat([bytes, enc.encode("payload")]));
    assert.deepEqual(r, { ...want, next: bytes.byteLength });
  }
});

Deno.test("parseSocks4Request() refuses a wrong version, an empty SOCKS4a host and overlong fields", () => {
  assert.throws(() => parseSocks4Request(Uint8Array.of(5, 1)), /version 5 at byte 0, want 4/);
  assert.throws(
    () => parseSocks4Request(encodeSocks4Request({ ip: [0, 0, 0, 1], port: 80, host: "" })),
    (e) => e instanceof Socks4Error && /empty host name at byte 9/.test(e.message),
  );
  const longUser = encodeSocks4Request({
    ip: [1, 2, 3, 4],
    port: 80,
    user: "u".repeat(SOCKS4_MAX_FIELD + 1),
  });
  assert.throws(() => parseSocks4Request(longUser), /USERID at byte 8 longer than 255 bytes/);
  // Still incomplete but already too long: refused before the NUL arrives.
  assert.throws(
    () => parseSocks4Request(longUser.subarray(0, 8 + SOCKS4_MAX_FIELD + 1)),
    /longer than 255/,
  );
  assert.deepEqual(
    [...encodeSocks4Reply(Socks4Reply.granted)],
    [0, 90, 0, 0, 0, 0, 0, 0],
  );
});
