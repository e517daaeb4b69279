import assert from "node:assert/strict";
import { formatIp, parseIp } from "../../lib/routing/ip_address.ts";

Deno.test("formatIp() gives text that parses back to the same address", () => {
  assert.equal(formatIp(parseIp("192.0.2.255")!), "192.0.2.255");
  assert.equal(formatIp(parseIp("::ffff:10.0.0.1")!), "10.0.0.1");
  assert.equal(formatIp(parseIp("2001:db8::1")!), "2001:0db8:0000:0000:0000:0000:0000:0001");
  for (const text of ["0.0.0.0", "255.255.255.255", "::", "fe80::1:2", "[::1]"]) {
    assert.deepEqual(parseIp(formatIp(parseIp(text)!)), parseIp(text), text);
  }
});
