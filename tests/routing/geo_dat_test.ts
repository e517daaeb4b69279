import assert from "node:assert/strict";
import { listCodes, readGeoIp, readGeoSite } from "../../lib/routing/geo_dat.ts";
import { IpMatcher } from "../../lib/routing/ip_matcher.ts";
import { parseIp } from "../../lib/routing/ip_address.ts";
import { encodeGeoIp, encodeGeoSite } from "../support/geodat.ts";

Deno.test("readGeoIp() decodes the bytes v2ray 4.34 accepts for {PRIVATE:[10.0.0.0/8]}", () => {
  // 0a13 0a07"PRIVATE" 1208 0a040a000000 1008, the example from the research notes.
  const bytes = Uint8Array.from([
    0x0a,
    0x13,
    0x0a,
    0x07,
    ...new TextEncoder().encode("PRIVATE"),
    0x12,
    0x08,
    0x0a,
    0x04,
    0x0a,
    0x00,
    0x00,
    0x00,
    0x10,
    0x08,
  ]);
  assert.deepEqual(encodeGeoIp({ PRIVATE: ["10.0.0.0/8"] }), bytes);
  const found = readGeoIp(bytes, { file: "geoip.dat", codes: ["private"] });
  assert.deepEqual(found.get("private"), [{ family: 4, first: 0x0a000000, last: 0x0affffff }]);
});

Deno.test("readGeoIp() decodes only the wanted codes, case-insensitively, with prefix 0 omitted", () => {
  const bytes = encodeGeoIp({
    CN: ["1.0.1.0/24", "2001:250::/35"],
    ALL: ["0.0.0.0/0"],
    US: ["8.8.8.0/24"],
  });
  const found = readGeoIp(bytes, { file: "geoip.dat", codes: ["cn", "All", "zz"] });
  assert.deepEqual([...found.keys()].sort(), ["all", "cn"]);
  const m = new IpMatcher();
  for (const c of found.get("cn")!) m.add(c);
  assert.equal(m.test(parseIp("1.0.1.200")!), true);
  assert.equal(m.test(parseIp("2001:250:1fff::1")!), true);
  assert.equal(m.test(parseIp("8.8.8.8")!), false);
  assert.deepEqual(found.get("all"), [{ family: 4, first: 0, last: 2 ** 32 - 1 }]);
  assert.deepEqual(listCodes(bytes, "geoip.dat"), ["CN", "ALL", "US"]);
});

Deno.test("readGeoSite() decodes types, values and attribute keys of the wanted lists", () => {
  const bytes = encodeGeoSite({
    GOOGLE: ["domain:google.com", "full:www.google.cn@cn", "regexp:^g\\d+\\.test$", "goog@ads@CN"],
    OTHER: ["domain:other.test"],
  });
  const found = readGeoSite(bytes, { file: "geosite.dat", codes: ["google"] });
  assert.deepEqual(found.get("google"), [
    { type: "domain", value: "google.com", attrs: [] },
    { type: "full", value: "www.google.cn", attrs: ["cn"] },
    { type: "regexp", value: "^g\\d+\\.test$", attrs: [] },
    { type: "plain", value: "goog", attrs: ["ads", "cn"] },
  ]);
  assert.equal(found.has("other"), false);
});

Deno.test("readGeoIp() names the file and byte offset of truncated or malformed data", () => {
  const good = encodeGeoIp({ CN: ["1.0.1.0/24"] });
  for (let cut = 1; cut < good.length; cut++) {
    assert.throws(
      () => readGeoIp(good.subarray(0, cut), { file: "/x/geoip.dat", codes: ["cn"] }),
      { name: "SyntaxError", message: /^Cannot read \/x\/geoip\.dat: .* at byte \d+$/ },
      `cut at ${cut}`,
    );
  }
  // A CIDR whose ip is 5 bytes long: entry at 0, CIDR message at byte 8.
  const badIp = Uint8Array.from([
    0x0a,
    0x0d,
    0x0a,
    0x02,
    0x43,
    0x4e,
    0x12,
    0x07,
    0x0a,
    0x05,
    1,
    2,
    3,
    4,
    5,
  ]);
  assert.throws(() => readGeoIp(badIp, { file: "geoip.dat", codes: ["cn"] }), {
    message: "Cannot read geoip.dat: CIDR with an IP of 5 bytes (must be 4 or 16) at byte 8",
  });
  // Wire type 3 (start group) is not something these files contain.
  assert.throws(() => readGeoIp(Uint8Array.from([0x0b]), { file: "g.dat", codes: [] }), {
    message: "Cannot read g.dat: unsupported wire type 3 at byte 1",
  });
});

Deno.test("readGeoSite() refuses an unknown domain type with its offset", () => {
  // Entry {code "x", domain {type 9, value "a"}}.
  const bytes = Uint8Array.from([0x0a, 0x09, 0x0a, 0x01, 0x78, 0x12, 0x04, 0x08, 0x09, 0x12, 0x01]);
  assert.throws(() => readGeoSite(bytes, { file: "geosite.dat", codes: ["x"] }), SyntaxError);
  const bad = Uint8Array.from([
    0x0a,
    0x0a,
    0x0a,
    0x01,
    0x78,
    0x12,
    0x05,
    0x08,
    0x09,
    0x12,
    0x01,
    0x61,
  ]);
  assert.throws(() => readGeoSite(bad, { file: "geosite.dat", codes: ["x"] }), {
    message: "Cannot read geosite.dat: unknown domain type 9 at byte 7",
  });
});
