import assert from "node:assert/strict";
import { join } from "node:path";
import { AssetLocator } from "../../lib/routing/asset_locator.ts";
import { buildRouter, type RoutingRuleConfig } from "../../lib/routing/build_router.ts";
import { encodeGeoIp, encodeGeoSite } from "../support/geodat.ts";

function rule(i: number, fields: { domain?: string[]; ip?: string[] }, outboundTag = "A") {
  const r: RoutingRuleConfig = { path: `routing.rules[${i}]`, outboundTag };
  if (fields.domain) {
    r.domain = fields.domain.map((value, j) => ({
      value,
      path: `routing.rules[${i}].domain[${j}]`,
    }));
  }
  if (fields.ip) {
    r.ip = fields.ip.map((value, j) => ({ value, path: `routing.rules[${i}].ip[${j}]` }));
  }
  return r;
}

async function withAssets(files: Record<string, Uint8Array>, fn: (dir: string) => void) {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(join(dir, name), bytes);
    fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const locator = (dir: string) =>
  new AssetLocator({
    env: (n) => (n === "V2RAY_LOCATION_ASSET" ? dir : undefined),
    exists: (p) => {
      try {
        return Deno.statSync(p).isFile && p.startsWith(dir);
      } catch {
        return false;
      }
    },
  });

function route(built: ReturnType<typeof buildRouter>, host: string) {
  const d = built.router.decide({
    destination: { network: "tcp", host, port: 80 },
    inboundTag: "",
  });
  return (d as { tag: string }).tag;
}

Deno.test("buildRouter() loads geosite lists with @attr filters and geoip codes", async () => {
  const files = {
    "geosite.dat": encodeGeoSite({
      ADS: ["domain:ads.test@cn", "domain:track.test", "full:x.ads.test@cn@strict"],
      UNUSED: ["domain:never.test"],
    }),
    "geoip.dat": encodeGeoIp({ CN: ["1.0.1.0/24"], PRIVATE: ["10.0.0.0/8"] }),
    "my.dat": encodeGeoSite({ zz: ["full:zz.test"] }),
  };
  await withAssets(files, (dir) => {
    const built = buildRouter({
      routing: {
        domainStrategy: "AsIs",
        balancers: [],
        rules: [
          rule(0, { domain: ["geosite:ads@CN@strict"] }, "A"),
          rule(1, { domain: ["geosite:ads@cn"] }, "B"),
          rule(2, { domain: ["ext:my.dat:ZZ"] }, "C"),
          rule(3, { ip: ["geoip:cn", "geoip:private"] }, "block"),
        ],
      },
      outboundTags: ["direct", "A", "B", "C", "block"],
      assets: locator(dir),
    });
    assert.equal(route(built, "x.ads.test"), "A");
    assert.equal(route(built, "www.ads.test"), "B");
    assert.equal(route(built, "track.test"), "direct");
    assert.equal(route(built, "zz.test"), "C");
    assert.equal(route(built, "1.0.1.9"), "block");
    assert.equal(route(built, "10.1.1.1"), "block");
    assert.equal(route(built, "172.16.0.1"), "direct"); // the file's PRIVATE wins over the built-in list
    assert.deepEqual(built.geoFiles.get(join(dir, "geosite.dat")), ["ads"]);
  });
});

Deno.test("buildRouter() falls back to built-in private ranges when geoip.dat is missing", async () => {
  await withAssets({}, (dir) => {
    const built = buildRouter({
      routing: {
        domainStrategy: "AsIs",
        balancers: [],
        rules: [rule(0, { ip: ["geoip:PRIVATE"] })],
      },
      outboundTags: ["direct", "A"],
      assets: locator(dir),
    });
    for (const ip of ["192.168.1.1", "172.20.0.1", "127.0.0.1", "fd00::1", "100.64.0.1"]) {
      assert.equal(route(built, ip), "A", ip);
    }
    assert.equal(route(built, "8.8.8.8"), "direct");
  });
});

Deno.test("buildRouter() names the JSON path and the file for geo errors", async () => {
  await withAssets({ "geosite.dat": encodeGeoSite({ CN: ["domain:cn"] }) }, (dir) => {
    const build = (r: RoutingRuleConfig) => () =>
      buildRouter({
        routing: { domainStrategy: "AsIs", balancers: [], rules: [r] },
        outboundTags: ["direct", "A"],
        assets: locator(dir),
      });
    assert.throws(build(rule(0, { domain: ["full:a", "geosite:nope"] })), {
      message: `"routing.rules[0].domain[1]": list "nope" not found in ${join(dir, "geosite.dat")}`,
    });
    assert.throws(build(rule(0, { ip: ["geoip:cn"] })), {
      name: "NotFound",
      message: new RegExp(
        `^"routing.rules\\[0\\].ip\\[0\\]": Cannot find geoip.dat; searched ${dir}/geoip.dat, `,
      ),
    });
    assert.throws(build(rule(0, { domain: ["regexp:a(b"] })), {
      name: "SyntaxError",
      message: /^"routing.rules\[0\].domain\[0\]": invalid regexp "a\(b"/,
    });
    assert.throws(build(rule(0, { ip: ["geoip:!cn"] })), { message: /negation is not supported/ });
    assert.throws(build(rule(0, { domain: ["dotless:a.b"] })), {
      message: /may not contain a dot/,
    });
    assert.throws(build(rule(0, { domain: ["ext:only-one-part"] })), {
      message: /must be ext:FILE:LIST/,
    });
    assert.throws(build(rule(0, { domain: ["a"] }, "ghost")), {
      message: `"routing.rules[0].outboundTag": no outbound has the tag "ghost"`,
    });
  });
});

Deno.test("buildRouter() matches dotless: as 4.34 builds it", () => {
  const built = buildRouter({
    routing: {
      domainStrategy: "AsIs",
      balancers: [],
      rules: [rule(0, { domain: ["dotless:"] }, "A"), rule(1, { domain: ["dotless:net"] }, "B")],
    },
    outboundTags: ["direct", "A", "B"],
  });
  assert.equal(route(built, "intranet"), "A");
  assert.equal(route(built, "a.intranet"), "direct");
});
