/**
 * Routing figures: decision cost per connection and geo load time/memory with a large config —
 * 10,000 domain rules entries, 5,000 CIDRs, and a generated geosite (~60,000 domains) / geoip
 * (~8,000 CIDRs) pair with two codes referenced. Run: deno run -A scripts/bench/routing_bench.ts
 */
import { join } from "node:path";
import { AssetLocator } from "../../lib/routing/asset_locator.ts";
import { buildRouter, type RoutingRuleConfig } from "../../lib/routing/build_router.ts";
import { encodeGeoIp, encodeGeoSite } from "../../tests/support/geodat.ts";

const rnd = (() => {
  let s = 42;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
})();
const word = () => Math.floor(rnd() * 36 ** 6).toString(36);
const ipv4 = () => [1 + Math.floor(rnd() * 222), rnd() * 256 | 0, rnd() * 256 | 0, 0].join(".");

const dir = await Deno.makeTempDir();
const sites: Record<string, string[]> = {};
for (let c = 0; c < 20; c++) {
  const list: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const r = rnd();
    list.push(
      r < 0.9
        ? `domain:${word()}.com`
        : r < 0.99
        ? `full:www.${word()}.net`
        : r < 0.997
        ? word()
        : `regexp:^${word()}\\d+\\.org$`,
    );
  }
  sites[`C${c}`] = list;
}
const ips: Record<string, string[]> = {};
for (let c = 0; c < 20; c++) ips[`C${c}`] = Array.from({ length: 400 }, () => `${ipv4()}/24`);
await Deno.writeFile(join(dir, "geosite.dat"), encodeGeoSite(sites));
await Deno.writeFile(join(dir, "geoip.dat"), encodeGeoIp(ips));
const siteSize = (await Deno.stat(join(dir, "geosite.dat"))).size;

const entries = (path: string, values: string[]) =>
  values.map((value, i) => ({ value, path: `${path}[${i}]` }));
const rules: RoutingRuleConfig[] = [];
// 100 rules of 100 domains, 50 rules of 100 CIDRs, then the geo rules, then port/network rules.
for (let r = 0; r < 100; r++) {
  const ds = Array.from(
    { length: 100 },
    () => (rnd() < 0.8 ? `domain:${word()}.io` : `full:${word()}.io`),
  );
  rules.push({ path: `r${r}`, domain: entries(`r${r}`, ds), outboundTag: "A" });
}
for (let r = 0; r < 50; r++) {
  rules.push({
    path: `i${r}`,
    ip: entries(`i${r}`, Array.from({ length: 100 }, () => `${ipv4()}/28`)),
    outboundTag: "B",
  });
}
rules.push({ path: "g", domain: entries("g", ["geosite:c3", "geosite:c7"]), outboundTag: "A" });
rules.push({ path: "h", ip: entries("h", ["geoip:c3", "geoip:c7"]), outboundTag: "B" });
rules.push({ path: "n", network: ["udp"], outboundTag: "A" });

const rss0 = Deno.memoryUsage().rss;
const t0 = performance.now();
const { router } = buildRouter({
  routing: { domainStrategy: "AsIs", rules, balancers: [] },
  outboundTags: ["direct", "A", "B"],
  assets: new AssetLocator({ env: (n) => (n === "V2RAY_LOCATION_ASSET" ? dir : undefined) }),
});
const loadMs = performance.now() - t0;
const rss1 = Deno.memoryUsage().rss;

const hosts = [
  ...sites.C3.slice(0, 200).map((d) =>
    d.replace(/^(domain:|full:|regexp:)/, "a.").replace(/\\d\+\\\.org\$$/, "1.org").replace(
      /^\^/,
      "",
    )
  ),
  ...Array.from({ length: 300 }, () => `www.${word()}.example`),
  ...Array.from({ length: 300 }, () => ipv4().replace(/0$/, "7")),
];
const times: number[] = [];
for (let round = 0; round < 20; round++) {
  for (const host of hosts) {
    const s = performance.now();
    router.decide({ destination: { network: "tcp", host, port: 443 }, inboundTag: "in" });
    times.push(performance.now() - s);
  }
}
// performance.now() is coarse here: time batches too.
const batch = performance.now();
const N = 20;
for (let round = 0; round < N; round++) {
  for (const host of hosts) {
    router.decide({ destination: { network: "tcp", host, port: 443 }, inboundTag: "in" });
  }
}
const meanUs = ((performance.now() - batch) / (N * hosts.length)) * 1000;
times.sort((a, b) => a - b);
const pct = (q: number) => (times[Math.floor(times.length * q)] * 1000).toFixed(1);
console.log(
  `geosite.dat ${
    (siteSize / 1e6).toFixed(1)
  } MB, 60,000 domains; geoip 8,000 CIDRs; rules: 10,000 domains, 5,000 CIDRs`,
);
console.log(
  `load (2 geosite + 2 geoip codes + rules): ${loadMs.toFixed(0)} ms, RSS +${
    ((rss1 - rss0) / 2 ** 20).toFixed(1)
  } MiB`,
);
console.log(
  `decision: mean ${meanUs.toFixed(2)} µs, p50 ${pct(0.5)} µs, p99 ${pct(0.99)} µs (timer-limited)`,
);
await Deno.remove(dir, { recursive: true });
