import assert from "node:assert/strict";
import { client, type Json, problems, testProblemCases } from "../support/config_samples.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";

/** The sample client with two more outbounds to route to. */
function withOutbounds(c: Json): Json {
  c.outbounds.push({ protocol: "freedom", tag: "direct" }, { protocol: "blackhole", tag: "block" });
  return c;
}

Deno.test("readRouting() reads rules, balancers, dns.hosts and sniffing as v2ray 4.34 writes them", () => {
  const c = withOutbounds(client());
  c.inbounds[0].sniffing = { enabled: true, destOverride: ["http", "HTTPS"] };
  c.dns = { hosts: { "h.test": "10.1.1.1", "domain:x.test": "fd00::1" } };
  c.routing = {
    domainStrategy: "ip_if_non_match",
    balancers: [{ tag: "bal", selector: "dir,blo" }],
    rules: [
      { type: "field", domain: "domain:a.test,full:b.test", domains: ["c"], outboundTag: "direct" },
      {
        type: "FIELD",
        ip: ["10.0.0.0/8"],
        port: "53,1000-2000",
        network: "udp",
        balancerTag: "bal",
      },
      {
        type: "field",
        inboundTag: ["", "in"],
        user: "alice",
        protocol: ["tls"],
        outboundTag: "block",
        balancerTag: "bal",
      },
    ],
    settings: {
      rules: [{ type: "field", sourcePort: 40001, source: "127.0.0.1", outboundTag: "direct" }],
    },
  };
  const config = parseConfigObject(c);
  const r = config.routing;
  assert.equal(r.domainStrategy, "IPIfNonMatch");
  assert.deepEqual(r.balancers, [{ tag: "bal", selector: ["dir", "blo"] }]);
  assert.deepEqual(r.rules[0].domain?.map((e) => e.value), ["domain:a.test", "full:b.test", "c"]);
  assert.equal(r.rules[0].domain?.[2].path, "routing.rules[0].domains[0]");
  assert.equal(r.rules[1].port?.toString(), "53,1000-2000");
  assert.deepEqual(r.rules[1].network, ["udp"]);
  assert.equal(r.rules[1].balancerTag, "bal");
  // outboundTag wins over balancerTag; empty inboundTag entries are dropped, as in 4.34.
  assert.equal(r.rules[2].outboundTag, "block");
  assert.equal(r.rules[2].balancerTag, undefined);
  assert.deepEqual(r.rules[2].inboundTag, ["in"]);
  assert.equal(r.rules[3].path, "routing.settings.rules[0]");
  assert.equal(r.rules[3].sourcePort?.has(40001), true);
  assert.deepEqual(config.dns.hosts.map((h) => [h.key, h.address]), [["h.test", "10.1.1.1"], [
    "domain:x.test",
    "fd00::1",
  ]]);
  assert.deepEqual(config.inbounds[0].sniffing, { enabled: true, destOverride: ["http", "tls"] });
  assert.deepEqual(r.warnings, []);
});

Deno.test("readRouting() reads an unknown domainStrategy as AsIs with a warning", () => {
  const c = client();
  c.routing = { domainStrategy: "IPIfNoMatch" };
  const r = parseConfigObject(c).routing;
  assert.equal(r.domainStrategy, "AsIs");
  assert.deepEqual(r.warnings, [
    'routing.domainStrategy: unknown domainStrategy "IPIfNoMatch" read as AsIs (known: AsIs, IPIfNonMatch, IPOnDemand)',
  ]);
});

testProblemCases([
  ["routing keys dray refuses by name", (c) => {
    withOutbounds(c);
    c.routing = {
      rules: [{
        type: "field",
        domain: ["a"],
        attrs: "attrs[':method']=='GET'",
        outboundTag: "direct",
      }],
      balancers: [{ tag: "b", selector: ["d"], strategy: { type: "leastPing" } }],
    };
  }, [
    "routing.rules[0].attrs: attrs (Starlark conditions on HTTP request attributes) are not supported by dray",
    'routing.balancers[0].strategy.type: "leastPing" needs the observatory section (which outbounds to probe, and how)',
  ]],
  ["an unknown balancer strategy, leastLoad, and strategy settings", (c) => {
    withOutbounds(c);
    c.routing = {
      // The rule names the balancer with the bad strategy: only the strategy is reported.
      rules: [{ type: "field", network: "tcp", balancerTag: "a" }],
      balancers: [
        { tag: "a", selector: ["d"], strategy: { type: "fastest" } },
        {
          tag: "b",
          selector: ["d"],
          strategy: { type: "leastLoad", settings: { tolerance: 0.1 } },
        },
        { tag: "c", selector: ["d"], strategy: { type: "roundRobin", weight: 2 } },
      ],
    };
  }, [
    'routing.balancers[0].strategy.type: unknown balancer strategy "fastest" (supported: random, roundRobin, leastPing)',
    "routing.balancers[1].strategy.settings: strategy settings (Xray's leastLoad) are not supported by dray",
    'routing.balancers[1].strategy.type: the "leastLoad" strategy is not supported by dray (supported: random, roundRobin, leastPing)',
    "routing.balancers[2].strategy.weight: unknown field",
  ]],
  ["observatory keys dray does not know, and bad values", (c) => {
    c.observatory = {
      subjectSelector: [],
      probeUrl: "ftp://example.com/",
      probeInterval: "10 seconds",
      enableConcurrency: "yes",
      probeTimeout: "5s",
    };
  }, [
    "observatory.probeTimeout: unknown field",
    "observatory.subjectSelector: must list at least one outbound tag prefix",
    'observatory.probeUrl: must be an http:// or https:// URL, got "ftp://example.com/"',
    'observatory.probeInterval: must be a duration such as "10s", "1m" or "1m30s", got "10 seconds"',
    'observatory.enableConcurrency: must be true or false, got "yes"',
  ]],
  ["routing rules with bad types, tags and fields", (c) => {
    withOutbounds(c);
    c.routing = {
      rules: [
        { domain: ["a"], outboundTag: "direct" },
        { type: "field", port: [53, 443], network: "udp, tcp", outboundTag: "ghost" },
        { type: "field", ip: ["1.1.1.1"], balancerTag: "nob" },
        { type: "field", ip: ["1.1.1.1"] },
        {
          type: "field",
          ip: ["1.1.1.1"],
          sourcePort: "0-70000",
          outboundTag: "direct",
          ruleTag: "x",
        },
      ],
    };
  }, [
    'routing.rules[0].type: must be "field", got ""',
    'routing.rules[1].port: must be a port number or a string like "53,443,1000-2000", got an array',
    'routing.rules[1].network[1]: must be "tcp" or "udp", got " tcp"',
    "routing.rules[3]: needs an outboundTag or a balancerTag",
    "routing.rules[4].ruleTag: unknown field",
    'routing.rules[4].sourcePort: invalid port "0-70000": each port must be 0-65535',
    'routing.rules[1].outboundTag: no outbound has the tag "ghost"',
    'routing.rules[2].balancerTag: no balancer has the tag "nob"',
  ]],
  ["dns keys other than hosts", (c) => {
    c.dns = { hosts: { "a.test": 5 }, clientIp: "1.2.3.4" };
  }, [
    "dns.clientIp: clientIp (EDNS client subnet) is not supported by dray",
    'dns.hosts["a.test"]: must be an address or a domain name, got 5',
  ]],
]);

Deno.test("parseConfigObject() accepts Xray's domainMatcher values only", () => {
  const c = client();
  c.routing = { domainMatcher: "fast" };
  assert.deepEqual(problems(c), [
    'routing.domainMatcher: must be "linear", "mph" or "hybrid", got "fast"',
  ]);
});

Deno.test("parseConfigObject() reads balancer strategies (Xray's names, any case) and the observatory", () => {
  const c = withOutbounds(client());
  c.routing = {
    rules: [{ type: "field", domain: ["a"], balancerTag: "lp" }],
    balancers: [
      { tag: "lp", selector: ["d"], strategy: { type: "leastping" } },
      { tag: "rr", selector: ["d"], strategy: { type: "roundRobin" } },
      { tag: "rnd", selector: ["d"] },
    ],
  };
  c.observatory = { subjectSelector: ["d", "b"], probeInterval: "1m30s" };
  const config = parseConfigObject(c);
  assert.deepEqual(config.routing.balancers.map((b) => b.strategy), [
    "leastPing",
    "roundRobin",
    undefined,
  ]);
  assert.deepEqual(config.observatory, {
    subjectSelector: ["d", "b"],
    probeUrl: "https://www.gstatic.com/generate_204",
    probeIntervalMs: 90_000,
    enableConcurrency: false,
  });
});
