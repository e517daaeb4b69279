import assert from "node:assert/strict";
import { parseCidr, parseIp } from "../../lib/routing/ip_address.ts";
import { IpMatcher } from "../../lib/routing/ip_matcher.ts";

function matcher(cidrs: string[]): IpMatcher {
  const m = new IpMatcher();
  for (const c of cidrs) m.add(parseCidr(c));
  return m;
}

const has = (m: IpMatcher, ip: string) => m.test(parseIp(ip)!);

Deno.test("IpMatcher.test() matches v4 and v6 CIDRs and single addresses", () => {
  const m = matcher(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "0.0.0.0/32"]);
  for (const ip of ["10.0.0.0", "10.255.255.255", "192.168.1.7", "fd12::5", "::1", "0.0.0.0"]) {
    assert.equal(has(m, ip), true, ip);
  }
  for (const ip of ["11.0.0.0", "9.255.255.255", "192.168.1.8", "fe00::1", "::2"]) {
    assert.equal(has(m, ip), false, ip);
  }
});

Deno.test("IpMatcher.test() matches overlapping CIDRs that v2ray 4.34 misses", () => {
  const m = matcher(["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"]);
  for (const ip of ["10.0.0.1", "10.1.0.1", "10.2.0.1", "10.3.0.1", "10.255.0.1"]) {
    assert.equal(has(m, ip), true, ip);
  }
  assert.equal(m.rangeCount, 1);
});

Deno.test("IpMatcher.test() treats IPv4-mapped IPv6 as IPv4 and covers the whole space with /0", () => {
  assert.equal(has(matcher(["10.0.0.0/8"]), "::ffff:10.0.0.1"), true);
  const all = matcher(["0.0.0.0/0", "::/0"]);
  assert.equal(has(all, "255.255.255.255"), true);
  assert.equal(has(all, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), true);
  assert.equal(has(all, "::"), true);
});

Deno.test("IpMatcher.idsOf() returns every id covering an address, ascending", () => {
  const m = new IpMatcher();
  m.add(parseCidr("10.0.0.0/8"), 4);
  m.add(parseCidr("10.1.0.0/16"), 2);
  m.add(parseCidr("10.1.2.0/24"), 4);
  m.add(parseCidr("2001:db8::/32"), 1);
  assert.deepEqual(m.idsOf(parseIp("10.1.2.3")!), [2, 4]);
  assert.deepEqual(m.idsOf(parseIp("10.1.3.3")!), [2, 4]);
  assert.deepEqual(m.idsOf(parseIp("10.9.0.0")!), [4]);
  assert.deepEqual(m.idsOf(parseIp("2001:db8:1::1")!), [1]);
  assert.equal(m.idsOf(parseIp("11.0.0.0")!), undefined);
});

Deno.test("parseCidr() masks host bits off and refuses bad masks and non-addresses", () => {
  assert.equal(has(matcher(["10.1.2.3/8"]), "10.200.0.1"), true);
  assert.throws(() => parseCidr("10.0.0.0/33"), { name: "RangeError", message: /exceeds 32/ });
  assert.throws(() => parseCidr("::/129"), { name: "RangeError", message: /exceeds 128/ });
  assert.throws(() => parseCidr("!10.0.0.0/8"), { name: "SyntaxError", message: /"!10.0.0.0\/8"/ });
  assert.throws(() => parseCidr("example.com"), SyntaxError);
  assert.throws(() => parseCidr("10.0.0.0/x"), { name: "SyntaxError", message: /mask/ });
});

Deno.test("parseIp() accepts bracketed IPv6 and returns null for names", () => {
  assert.deepEqual(parseIp("[::1]"), { family: 6, value: "0".repeat(31) + "1" });
  assert.deepEqual(parseIp("1.2.3.4"), { family: 4, value: 0x01020304 });
  assert.equal(parseIp("example.com"), null);
  assert.equal(parseIp("1:2:3"), null);
});
