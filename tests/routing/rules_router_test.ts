import assert from "node:assert/strict";
import { buildRouter, type RoutingRuleConfig } from "../../lib/routing/build_router.ts";
import { PortList } from "../../lib/routing/port_list.ts";
import type { RouteRequest } from "../../lib/routing/rule.ts";
import type { DomainStrategy } from "../../lib/routing/rules_router.ts";

type RuleSpec =
  & Omit<RoutingRuleConfig, "path" | "domain" | "ip" | "source" | "port" | "sourcePort">
  & {
    domain?: string[];
    ip?: string[];
    source?: string[];
    port?: string;
    sourcePort?: string;
  };

function router(rules: RuleSpec[], opts: {
  strategy?: DomainStrategy;
  hosts?: Record<string, string>;
  lookups?: string[];
  balancers?: Array<{ tag: string; selector: string[] }>;
  tags?: string[];
} = {}) {
  const entries = (path: string, values?: string[]) =>
    values?.map((value, i) => ({ value, path: `${path}[${i}]` }));
  const lookups = opts.lookups ?? [];
  return buildRouter({
    routing: {
      domainStrategy: opts.strategy ?? "AsIs",
      balancers: opts.balancers ?? [],
      rules: rules.map((r, i) => ({
        ...r,
        path: `routing.rules[${i}]`,
        domain: entries(`routing.rules[${i}].domain`, r.domain),
        ip: entries(`routing.rules[${i}].ip`, r.ip),
        source: entries(`routing.rules[${i}].source`, r.source),
        port: r.port === undefined ? undefined : PortList.parse(r.port),
        sourcePort: r.sourcePort === undefined ? undefined : PortList.parse(r.sourcePort),
      })),
    },
    hosts: Object.entries(opts.hosts ?? {}).map(([key, address]) => ({
      key,
      address,
      path: `dns.hosts.${key}`,
    })),
    outboundTags: opts.tags ?? ["default", "A", "B", "C", "block"],
    lookup: (name) => {
      lookups.push(name);
      return name === "localhost"
        ? Promise.resolve(["127.0.0.1"])
        : Promise.reject(new Error("NXDOMAIN"));
    },
  }).router;
}

async function tag(r: ReturnType<typeof router>, host: string, extra: Partial<RouteRequest> = {}) {
  const d = await r.decide({
    destination: { network: "tcp", host, port: 443 },
    inboundTag: "in",
    ...extra,
  });
  return d.tag;
}

Deno.test("RulesRouter.decide() takes the first rule that matches, else the first outbound", async () => {
  const r = router([
    { domain: ["domain:a.test"], outboundTag: "A" },
    { domain: ["a.test"], outboundTag: "B" },
    { ip: ["10.0.0.0/8"], outboundTag: "block" },
  ]);
  assert.equal(await tag(r, "www.a.test"), "A");
  assert.equal(await tag(r, "xa.test"), "B");
  assert.equal(await tag(r, "10.9.9.9"), "block");
  assert.equal(await tag(r, "other.test"), "default");
  assert.equal(await tag(r, "::ffff:10.0.0.1"), "block");
});

Deno.test("RulesRouter.decide() needs every field of a rule and any entry of a field", async () => {
  const r = router([{
    domain: ["full:x.test", "full:y.test"],
    port: "80,443",
    network: ["tcp"],
    inboundTag: ["in", "in2"],
    user: ["alice"],
    outboundTag: "A",
  }]);
  assert.equal(await tag(r, "y.test", { user: "alice" }), "A");
  assert.equal(await tag(r, "y.test", { user: "Alice" }), "default");
  assert.equal(await tag(r, "y.test", { user: "alice", inboundTag: "other" }), "default");
  assert.equal(await tag(r, "y.test"), "default");
  const udp = await r.decide({
    destination: { network: "udp", host: "x.test", port: 443 },
    inboundTag: "in2",
    user: "alice",
  });
  assert.equal(udp.tag, "default");
});

Deno.test("RulesRouter.decide() matches source, sourcePort and sniffed protocol prefixes", async () => {
  const r = router([
    { source: ["127.0.0.0/8"], sourcePort: "40001-40002", outboundTag: "A" },
    { protocol: ["http"], outboundTag: "B" },
    { source: ["::1"], outboundTag: "C" },
  ]);
  assert.equal(await tag(r, "x.test", { source: { host: "127.0.0.1", port: 40002 } }), "A");
  assert.equal(await tag(r, "x.test", { source: { host: "127.0.0.1", port: 40003 } }), "default");
  assert.equal(await tag(r, "x.test", { protocol: "http1" }), "B");
  assert.equal(await tag(r, "x.test", { protocol: "tls" }), "default");
  assert.equal(await tag(r, "x.test", { source: { host: "::1", port: 1 } }), "C");
});

Deno.test("RulesRouter.decide() follows 4.34's domainStrategy table with dns.hosts", async () => {
  const rules: RuleSpec[] = [
    { ip: ["10.0.0.0/8", "fd00::/8"], outboundTag: "A" },
    { domain: ["full:h.test"], outboundTag: "B" },
    { ip: ["8.8.8.8"], outboundTag: "C" },
  ];
  const hosts = { "h.test": "10.1.1.1", "h6.test": "fd00::5", "pub.test": "8.8.8.8" };
  const table: Record<string, Record<DomainStrategy, string>> = {
    "h.test": { AsIs: "B", IPIfNonMatch: "B", IPOnDemand: "A" },
    "h6.test": { AsIs: "default", IPIfNonMatch: "A", IPOnDemand: "A" },
    "pub.test": { AsIs: "default", IPIfNonMatch: "C", IPOnDemand: "C" },
    "nx.invalid": { AsIs: "default", IPIfNonMatch: "default", IPOnDemand: "default" },
    "10.2.2.2": { AsIs: "A", IPIfNonMatch: "A", IPOnDemand: "A" },
  };
  for (const strategy of ["AsIs", "IPIfNonMatch", "IPOnDemand"] as const) {
    const r = router(rules, { strategy, hosts });
    for (const [host, want] of Object.entries(table)) {
      assert.equal(await tag(r, host), want[strategy], `${host} under ${strategy}`);
    }
  }
});

Deno.test("RulesRouter.decide() resolves only when an ip condition is reached", async () => {
  const lookups: string[] = [];
  const r = router([
    { domain: ["full:d.test"], outboundTag: "A" },
    { port: "53", ip: ["127.0.0.0/8"], outboundTag: "B" },
  ], { strategy: "IPOnDemand", lookups });
  assert.equal(await tag(r, "d.test"), "A");
  assert.equal(await tag(r, "localhost"), "default"); // port 443: the ip condition is never reached
  assert.deepEqual(lookups, []);
  const d = await r.decide({
    destination: { network: "udp", host: "localhost", port: 53 },
    inboundTag: "in",
  });
  assert.equal(d.tag, "B");
  assert.deepEqual(lookups, ["localhost"]);
  // Without a name to resolve, the decision is synchronous.
  assert.equal(
    (r.decide({ destination: { network: "tcp", host: "d.test", port: 1 }, inboundTag: "" }) as {
      tag: string;
    }).tag,
    "A",
  );
});

Deno.test("RulesRouter.decide() spreads a balancer over the outbounds its selectors prefix", async () => {
  const r = router([{ domain: ["b.test"], balancerTag: "bal" }, {
    domain: ["e.test"],
    balancerTag: "none",
  }], {
    tags: ["direct", "px-1", "px-2", "px-3", "other"],
    balancers: [{ tag: "bal", selector: ["px-"] }, { tag: "none", selector: ["zz"] }],
  });
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 3; i++) seen.add(await tag(r, "b.test"));
  assert.deepEqual([...seen].sort(), ["px-1", "px-2", "px-3"]);
  assert.equal(await tag(r, "e.test"), "direct");
  const at = (host: string) =>
    r.decide({ destination: { network: "tcp", host, port: 1 }, inboundTag: "" });
  assert.equal((await at("b.test")).reason, "rule 1: b.test, balancer bal");
  assert.equal((await at("e.test")).reason, "rule 2: e.test, balancer none empty");
});

Deno.test("RulesRouter.decide() names the matching rule in its reason", async () => {
  const r = router([
    { network: ["udp"], outboundTag: "A" },
    { domain: ["domain:example.com", "x"], outboundTag: "B" },
  ]);
  const d = await r.decide({
    destination: { network: "tcp", host: "example.com", port: 1 },
    inboundTag: "",
  });
  assert.equal(d.reason, "rule 2: domain:example.com +1");
  const none = await r.decide({
    destination: { network: "tcp", host: "q", port: 1 },
    inboundTag: "",
  });
  assert.equal(none.reason, "default");
});
