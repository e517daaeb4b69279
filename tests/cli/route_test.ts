import assert from "node:assert/strict";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { UserError } from "../../lib/cli/args.ts";
import {
  cmdRoute,
  explainRoute,
  formatExplanation,
  parseDest,
  type RouteQuery,
} from "../../lib/cli/route.ts";

const CONFIG = {
  inbounds: [
    { tag: "socks-in", protocol: "socks", port: 1080 },
    {
      tag: "sniffing-in",
      protocol: "socks",
      port: 1081,
      sniffing: { enabled: true, destOverride: ["tls"] },
    },
  ],
  outbounds: [
    { tag: "direct", protocol: "freedom" },
    { tag: "px-1", protocol: "freedom" },
    { tag: "px-2", protocol: "freedom" },
    { tag: "block", protocol: "blackhole" },
  ],
  routing: {
    domainStrategy: "IPOnDemand",
    balancers: [{ tag: "b", selector: ["px-"] }],
    rules: [
      { type: "field", domain: ["domain:ads.test"], outboundTag: "block" },
      { type: "field", inboundTag: ["sniffing-in"], protocol: ["tls"], balancerTag: "b" },
      { type: "field", ip: ["10.0.0.0/8"], outboundTag: "px-1" },
      { type: "field", network: "udp", source: ["192.168.1.0/24"], outboundTag: "block" },
    ],
  },
};

/** A fake system resolver that records what it was asked. */
function resolver(answers: Record<string, string[]>) {
  const asked: string[] = [];
  const lookup = (name: string) => {
    asked.push(name);
    return Promise.resolve(answers[name] ?? []);
  };
  return { asked, lookup };
}

const query = (host: string, extra: Partial<RouteQuery> = {}): RouteQuery => ({
  destination: { network: "tcp", host, port: 443 },
  ...extra,
});

Deno.test("explainRoute() names the matching rule and its outbound without looking a name up", async () => {
  const { asked, lookup } = resolver({});
  const e = await explainRoute(parseConfigObject(CONFIG), query("x.ads.test"), { lookup });
  assert.deepEqual(e.rule, {
    number: 1,
    path: "routing.rules[0]",
    label: "rule 1: domain:ads.test",
  });
  assert.deepEqual(e.outbound, { tag: "block", protocol: "blackhole" });
  assert.equal(e.inbound, "socks-in");
  assert.equal(e.resolved, null);
  assert.deepEqual(asked, []);
  assert.match(e.notes.join("\n"), /not looked up: the router decided without its addresses/);
});

Deno.test("explainRoute() reports the lookup IPOnDemand made and the ip rule it matched", async () => {
  const { asked, lookup } = resolver({ "intra.test": ["10.1.2.3", "fd00::1"] });
  const e = await explainRoute(parseConfigObject(CONFIG), query("intra.test"), { lookup });
  assert.deepEqual(asked, ["intra.test"]);
  assert.deepEqual(e.resolved, { name: "intra.test", addresses: ["10.1.2.3", "fd00::1"] });
  assert.equal(e.rule?.label, "rule 3: ip 10.0.0.0/8");
  assert.equal(e.outbound.tag, "px-1");
  const text = formatExplanation(e).join("\n");
  assert.match(
    text,
    /^resolved +intra\.test → 10\.1\.2\.3, fd00::1 \(domainStrategy IPOnDemand\)$/m,
  );
  assert.match(text, /^rule +rule 3: ip 10\.0\.0\.0\/8 \(routing\.rules\[2\]\)$/m);
  assert.match(text, /^outbound +px-1 \(freedom\)$/m);
});

Deno.test("explainRoute() takes the default route when nothing matches, and says a name did not resolve", async () => {
  const { lookup } = resolver({});
  const e = await explainRoute(parseConfigObject(CONFIG), query("nowhere.test"), { lookup });
  assert.equal(e.rule, null);
  assert.equal(e.outbound.tag, "direct");
  assert.deepEqual(e.resolved, { name: "nowhere.test", addresses: [] });
  const text = formatExplanation(e).join("\n");
  assert.match(text, /^rule +none matched: the default route$/m);
  assert.match(text, /no address \(ip conditions do not match\)/);
});

Deno.test("explainRoute() honours inbound, protocol, network and source, and names the balancer", async () => {
  const config = parseConfigObject(CONFIG);
  const { lookup } = resolver({ "q.test": ["8.8.8.8"] });
  const e = await explainRoute(
    config,
    query("q.test", { inbound: "sniffing-in", protocol: "tls" }),
    { lookup },
  );
  assert.equal(e.rule?.number, 2);
  assert.deepEqual(e.balancer, { tag: "b", candidates: ["px-1", "px-2"] });
  assert.ok(["px-1", "px-2"].includes(e.outbound.tag));
  assert.match(formatExplanation(e).join("\n"), /^balancer +b: one pick among px-1, px-2$/m);
  // The same on an inbound that does not sniff: the rule's inboundTag fails, and a note says
  // the protocol could not have been known.
  const plain = await explainRoute(config, query("q.test", { protocol: "tls" }), { lookup });
  assert.notEqual(plain.rule?.number, 2);
  assert.match(plain.notes.join("\n"), /inbound "socks-in" does not sniff/);
  const udp = {
    destination: { network: "udp" as const, host: "9.9.9.9", port: 53 },
    source: { host: "192.168.1.7", port: 5353 },
  };
  const blocked = await explainRoute(config, udp, { lookup });
  assert.equal(blocked.rule?.number, 4);
  assert.equal(blocked.source, "192.168.1.7:5353");
  const elsewhere = await explainRoute(config, { ...udp, source: { host: "10.9.9.9", port: 1 } }, {
    lookup,
  });
  assert.equal(elsewhere.rule, null);
});

Deno.test("explainRoute() refuses an unknown inbound (usage, 2) and a bad routing section (config, 23)", async () => {
  await assert.rejects(
    () => explainRoute(parseConfigObject(CONFIG), query("a.test", { inbound: "nope" })),
    (e: unknown) =>
      e instanceof UserError && e.exitCode === 2 && /no inbound has the tag "nope"/.test(e.message),
  );
  const bad = structuredClone(CONFIG);
  bad.routing.rules[0].domain = ["geosite:missing-list"];
  await assert.rejects(
    () =>
      explainRoute(parseConfigObject(bad), query("a.test"), { lookup: () => Promise.resolve([]) }),
    (e: unknown) =>
      e instanceof UserError && e.exitCode === 23 &&
      /routing\.rules\[0\]\.domain\[0\]/.test(e.message),
  );
});

Deno.test("parseDest() reads names, IPs, [v6]:port and URLs, and refuses bad ports", () => {
  const d = (text: string) => {
    const r = parseDest(text, "tcp");
    return `${r.destination.host} ${r.destination.port}${r.portAssumed ? " assumed" : ""}`;
  };
  assert.equal(d("example.com"), "example.com 443 assumed");
  assert.equal(d("example.com:80"), "example.com 80");
  assert.equal(d("10.0.0.1:53"), "10.0.0.1 53");
  assert.equal(d("::1"), "::1 443 assumed");
  assert.equal(d("[2001:db8::1]:8443"), "2001:db8::1 8443");
  assert.equal(d("http://example.com/x"), "example.com 80");
  assert.equal(d("https://[::1]:9443/"), "::1 9443");
  for (const bad of ["example.com:0", "example.com:70000", "example.com:http", ":80", "ftp://x/"]) {
    assert.throws(() => parseDest(bad, "tcp"), UserError, bad);
  }
});

Deno.test("cmdRoute() prints one JSON object with --json and refuses bad flags", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dray-route-" });
  try {
    const path = `${dir}/config.json`;
    await Deno.writeTextFile(path, JSON.stringify(CONFIG));
    const lines: string[] = [];
    const io = {
      out: (l: string) => void lines.push(l),
      version: "test",
      warn: () => {},
      lookup: () => Promise.resolve([]),
    };
    assert.equal(await cmdRoute(["-c", path, "www.ads.test:80", "--json"], io), 0);
    assert.equal(lines.length, 1);
    const e = JSON.parse(lines[0]);
    assert.equal(e.destination, "tcp:www.ads.test:80");
    assert.equal(e.outbound.tag, "block");
    assert.equal(e.rule.path, "routing.rules[0]");
    for (
      const args of [
        ["-c", path],
        ["-c", path, "a.test", "--network", "sctp"],
        ["-c", path, "a.test", "--protocol", "quic"],
        ["-c", path, "a.test", "--source", "host.test"],
        ["-c", path, "a.test", "b.test"],
      ]
    ) {
      await assert.rejects(
        () => cmdRoute(args, io),
        (e: unknown) => e instanceof UserError && e.exitCode === 2,
        args.join(" "),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
