/**
 * Differential routing tests with v2ray 4.34 as the oracle: the same config (rules, balancers,
 * dns.hosts, sniffing, geo files hand-encoded into a temp asset dir) is run by v2ray, which routes
 * SOCKS5 probes to tag servers (tests/support/route_probe.ts), and read by dray, whose router
 * decides the same requests (after the same sniffing). Every probe's two answers must agree, and
 * each also carries the answer the research notes recorded for 4.34, so a broken harness cannot
 * agree with itself. Where dray deliberately differs (case, overlapping CIDRs, unknown tags and
 * networks) the cases stay out of here; the unit tests assert dray's answer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startApp } from "../../lib/app.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { Logger } from "../../lib/log.ts";
import { AssetLocator } from "../../lib/routing/asset_locator.ts";
import { buildRouter } from "../../lib/routing/build_router.ts";
import { applySniffed, sniff } from "../../lib/routing/sniffer.ts";
import { encodeGeoIp, encodeGeoSite } from "../support/geodat.ts";
import { clientHello } from "../support/client_hello.ts";
import { type Probe, probe, startTagServers } from "../support/route_probe.ts";
import { freePort } from "../support/v2ray.ts";

const V2RAY = Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray";
const TAGS = ["direct", "A", "B", "C"];
const http = (host: string) => new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
const tls = (sni: string) => clientHello({ sni });

interface Case {
  name: string;
  routing: Record<string, unknown>;
  dns?: Record<string, unknown>;
  sniffing?: Record<string, unknown>;
  /** [probe, the tag 4.34 answers ("A|B" = either, for balancers)]. */
  probes: Array<[Probe & { inbound?: "in" | "in2" }, string]>;
}

const rule = (r: Record<string, unknown>) => ({ type: "field", ...r });
const p = (host: string, expect: string, extra: Partial<Probe & { inbound: "in" | "in2" }> = {}) =>
  [{ host, port: 443, ...extra }, expect] as [Probe, string];

/**
 * The port the sourcePort probes connect from, below Linux's ephemeral range (32768-60999): a
 * port the kernel hands out to other connections (freePort()'s) may be taken by any process's
 * outgoing connection before the probe binds it (seen: EADDRINUSE on a loaded machine).
 */
const SOURCE_PORT = portBelowEphemeralRange();

function portBelowEphemeralRange(): number {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Taken: try another.
    }
  }
  throw new Error("no free port in 20000-31999 after 100 tries");
}

const CASES: Case[] = [
  {
    name: "plain substring and keyword:",
    routing: {
      rules: [
        rule({ domain: ["example"], outboundTag: "A" }),
        rule({ domain: ["keyword:kw"], outboundTag: "B" }),
      ],
    },
    probes: [
      p("www.example.com", "A"),
      p("exampl.com", "direct"),
      p("kw.org", "B"),
      p("k.org", "direct"),
    ],
  },
  {
    name: "regexp: is unanchored RE2",
    routing: {
      rules: [rule({ domain: ["regexp:^r[0-9]+\\.test$", "regexp:mid"], outboundTag: "A" })],
    },
    probes: [
      p("r12.test", "A"),
      p("xr1.test", "direct"),
      p("r1.test.x", "direct"),
      p("amidb.org", "A"),
    ],
  },
  {
    name: "domain: on label boundaries",
    routing: { rules: [rule({ domain: ["domain:example.com"], outboundTag: "A" })] },
    probes: [
      p("example.com", "A"),
      p("www.example.com", "A"),
      p("a.b.example.com", "A"),
      p("notexample.com", "direct"),
      p("example.com.cn", "direct"),
    ],
  },
  {
    name: "full: and a comma-separated string list",
    routing: { rules: [rule({ domain: "full:x.full.test,full:y.full.test", outboundTag: "A" })] },
    probes: [p("x.full.test", "A"), p("y.full.test", "A"), p("a.x.full.test", "direct")],
  },
  {
    name: "dotless:",
    routing: {
      rules: [
        rule({ domain: ["dotless:net"], outboundTag: "B" }),
        rule({ domain: ["dotless:"], outboundTag: "A" }),
      ],
    },
    probes: [p("intranet", "B"), p("host", "A"), p("a.net", "direct")],
  },
  {
    name: "geosite: lists with every domain type",
    routing: { rules: [rule({ domain: ["geosite:test"], outboundTag: "A" })] },
    probes: [
      p("a.geo.test", "A"),
      p("f.geo2.test", "A"),
      p("rx1.test", "A"),
      p("my-kwgeo.org", "A"),
      p("other.test", "direct"),
    ],
  },
  {
    name: "geosite: @attr filters",
    routing: {
      rules: [
        rule({ domain: ["geosite:ads@cn"], outboundTag: "A" }),
        rule({ domain: ["geosite:ADS"], outboundTag: "B" }),
      ],
    },
    probes: [p("ads.test", "A"), p("x.ads2.test", "A"), p("track.test", "B")],
  },
  {
    name: "ext: site and ip files, ext-domain:",
    routing: {
      rules: [
        rule({ domain: ["ext:my.dat:zz"], outboundTag: "A" }),
        rule({ domain: ["ext-domain:my.dat:yy"], outboundTag: "C" }),
        rule({ ip: ["ext:ipx.dat:xx"], outboundTag: "B" }),
      ],
    },
    probes: [
      p("zz.test", "A"),
      p("yy.test", "C"),
      p("100.64.1.1", "B"),
      p("100.128.0.1", "direct"),
    ],
  },
  {
    name: "ip CIDRs, single addresses and masked host bits",
    routing: { rules: [rule({ ip: ["10.1.2.3/8", "192.168.1.7"], outboundTag: "A" })] },
    probes: [
      p("10.200.0.1", "A"),
      p("192.168.1.7", "A"),
      p("192.168.1.8", "direct"),
      p("11.0.0.1", "direct"),
    ],
  },
  {
    name: "ip IPv6 and IPv4-mapped targets",
    routing: {
      rules: [
        rule({ ip: ["fd00::/8", "::1"], outboundTag: "A" }),
        rule({ ip: ["10.0.0.0/8"], outboundTag: "B" }),
      ],
    },
    probes: [p("fd12::5", "A"), p("::1", "A"), p("fe80::1", "direct"), p("::ffff:10.0.0.1", "B")],
  },
  {
    name: "geoip: codes",
    routing: {
      rules: [
        rule({ ip: ["geoip:cn"], outboundTag: "A" }),
        rule({ ip: ["geoip:private"], outboundTag: "B" }),
      ],
    },
    probes: [p("1.0.1.9", "A"), p("2001:250::1", "A"), p("10.0.0.1", "B"), p("8.8.8.8", "direct")],
  },
  {
    name: "domain rules never see IP targets, ip rules never see names under AsIs",
    routing: {
      rules: [
        rule({ domain: ["10.0.0.1"], outboundTag: "A" }),
        rule({ ip: ["0.0.0.0/0"], outboundTag: "B" }),
      ],
    },
    probes: [p("10.0.0.1", "B"), p("x.test", "direct"), p("1.2.3.4", "B")],
  },
  {
    name: "port lists, the number form and a reversed range",
    routing: {
      rules: [
        rule({ port: "53,443,1000-2000", outboundTag: "A" }),
        rule({ port: 8080, outboundTag: "B" }),
        rule({ port: "3000-2500", outboundTag: "C" }),
      ],
    },
    probes: [
      p("x.test", "A"),
      p("x.test", "A", { port: 1500 }),
      p("x.test", "direct", { port: 80 }),
      p("x.test", "B", { port: 8080 }),
      p("x.test", "direct", { port: 2800 }),
    ],
  },
  {
    name: "network",
    routing: {
      rules: [
        rule({ network: "udp", outboundTag: "A" }),
        rule({ network: ["tcp"], domain: ["n1.test"], outboundTag: "B" }),
        rule({ network: "tcp,udp", outboundTag: "C" }),
      ],
    },
    probes: [p("n1.test", "B"), p("n2.test", "C")],
  },
  {
    name: "inboundTag",
    routing: { rules: [rule({ inboundTag: ["in2"], outboundTag: "A" })] },
    probes: [p("x.test", "direct"), p("x.test", "A", { inbound: "in2" })],
  },
  {
    name: "user is the SOCKS username, case-sensitive",
    routing: { rules: [rule({ user: ["alice"], outboundTag: "A" })] },
    probes: [
      p("x.test", "A", { user: "alice" }),
      p("x.test", "direct", { user: "Alice" }),
      p("x.test", "direct", { user: "bob" }),
    ],
  },
  {
    name: "source and sourcePort",
    routing: {
      rules: [
        rule({ source: ["10.0.0.0/8"], outboundTag: "C" }),
        rule({ source: "127.0.0.1", sourcePort: `${SOURCE_PORT}`, outboundTag: "A" }),
        rule({ source: ["127.0.0.0/8"], port: "81", outboundTag: "B" }),
      ],
    },
    probes: [
      p("x.test", "A", { localPort: SOURCE_PORT }),
      p("x.test", "B", { port: 81 }),
      p("x.test", "direct", { port: 82 }),
    ],
  },
  {
    name: "first match wins; all fields of a rule must match",
    routing: {
      rules: [
        rule({ domain: ["x.test"], port: "80", outboundTag: "A" }),
        rule({ domain: ["x.test"], outboundTag: "B" }),
      ],
    },
    probes: [p("x.test", "A", { port: 80 }), p("x.test", "B")],
  },
  {
    name: "sniffed protocol prefixes",
    sniffing: { enabled: true, destOverride: ["http"] },
    routing: {
      rules: [
        rule({ protocol: ["http"], outboundTag: "A" }),
        rule({ protocol: ["tls"], outboundTag: "B" }),
        rule({ protocol: ["bittorrent"], outboundTag: "C" }),
      ],
    },
    probes: [
      p("1.2.3.4", "A", { port: 80, payload: http("h.test") }),
      p("1.2.3.4", "B", { payload: tls("t.test") }),
      p("1.2.3.4", "C", {
        payload: new TextEncoder().encode("\x13BitTorrent protocol\0\0\0\0\0\0\0\0"),
      }),
      p("1.2.3.4", "direct", { payload: new TextEncoder().encode("SSH-2.0-x\r\n") }),
    ],
  },
  {
    name: "HTTP Host overrides the address and keeps the port",
    sniffing: { enabled: true, destOverride: ["http"] },
    routing: {
      rules: [
        rule({ domain: ["full:http.test"], port: "80", outboundTag: "A" }),
        rule({ domain: ["full:http.test"], port: "8080", outboundTag: "B" }),
      ],
    },
    probes: [p("10.0.0.9", "A", { port: 80, payload: http("Http.Test:8080") })],
  },
  {
    name: "TLS SNI overrides the address; a trailing dot is not sniffed",
    sniffing: { enabled: true, destOverride: ["tls"] },
    routing: {
      rules: [
        rule({ domain: ["domain:sni.test"], outboundTag: "A" }),
        rule({ protocol: ["tls"], outboundTag: "B" }),
      ],
    },
    probes: [
      p("10.0.0.9", "A", { payload: tls("www.sni.test") }),
      p("10.0.0.9", "direct", { payload: tls("sni.test.") }),
      p("10.0.0.9", "B", { payload: tls("other.test") }),
    ],
  },
  {
    name: "sniffing without destOverride sets the protocol only",
    sniffing: { enabled: true, destOverride: [] },
    routing: {
      rules: [
        rule({ domain: ["full:sni.test"], outboundTag: "B" }),
        rule({ protocol: ["tls"], outboundTag: "A" }),
      ],
    },
    probes: [p("10.0.0.9", "A", { payload: tls("sni.test") })],
  },
  {
    name: "sniffing off: protocol never matches",
    routing: { rules: [rule({ protocol: ["tls"], outboundTag: "A" })] },
    probes: [p("10.0.0.9", "direct", { payload: tls("sni.test") })],
  },
  ...(["AsIs", "IPIfNonMatch", "IPOnDemand", "AlwaysIP"] as const).map((strategy): Case => {
    const want: Record<string, string[]> = {
      AsIs: ["B", "direct", "direct", "direct", "A"],
      IPIfNonMatch: ["B", "A", "C", "direct", "A"],
      IPOnDemand: ["A", "A", "C", "direct", "A"],
      AlwaysIP: ["B", "direct", "direct", "direct", "A"],
    };
    const hosts = ["h.test", "h6.test", "pub.test", "nx.invalid", "10.2.2.2"];
    return {
      name: `domainStrategy ${strategy} with dns.hosts`,
      dns: { hosts: { "h.test": "10.1.1.1", "h6.test": "fd00::5", "pub.test": "8.8.8.8" } },
      routing: {
        domainStrategy: strategy,
        rules: [
          rule({ ip: ["10.0.0.0/8", "fd00::/8"], outboundTag: "A" }),
          rule({ domain: ["full:h.test"], outboundTag: "B" }),
          rule({ ip: ["8.8.8.8"], outboundTag: "C" }),
        ],
      },
      probes: hosts.map((h, i) => p(h, want[strategy][i])),
    };
  }),
  {
    name: "dns.hosts keys with domain: and redirects to another name",
    dns: { hosts: { "domain:sub.test": "10.5.5.5", "alias.test": "h.test", "h.test": "8.8.8.8" } },
    routing: {
      domainStrategy: "IPIfNonMatch",
      rules: [
        rule({ ip: ["10.0.0.0/8"], outboundTag: "A" }),
        rule({ ip: ["8.8.8.8"], outboundTag: "B" }),
      ],
    },
    probes: [p("x.sub.test", "A"), p("alias.test", "B")],
  },
  {
    name: "the system resolver (/etc/hosts) without a dns section",
    routing: {
      domainStrategy: "IPIfNonMatch",
      rules: [rule({ ip: ["127.0.0.0/8"], outboundTag: "A" })],
    },
    probes: [p("localhost", "A")],
  },
  {
    name: "balancers pick among the outbounds their selectors prefix",
    routing: {
      balancers: [{ tag: "ab", selector: ["A", "B"] }, { tag: "none", selector: ["zz"] }],
      rules: [
        rule({ domain: ["bal.test"], balancerTag: "ab" }),
        rule({ domain: ["empty.test"], balancerTag: "none" }),
        rule({ domain: ["both.test"], outboundTag: "C", balancerTag: "ab" }),
      ],
    },
    probes: [
      p("bal.test", "A|B"),
      p("bal.test", "A|B"),
      p("bal.test", "A|B"),
      p("empty.test", "direct"),
      p("both.test", "C"),
    ],
  },
  {
    name: "the legacy settings block: its rules come after the top-level ones",
    routing: {
      rules: [rule({ domain: ["a.test"], outboundTag: "A" })],
      settings: {
        domainStrategy: "IPIfNonMatch",
        rules: [
          rule({ domain: ["b.test"], outboundTag: "B" }),
          rule({ ip: ["127.0.0.0/8"], outboundTag: "C" }),
        ],
      },
    },
    probes: [p("a.test", "A"), p("b.test", "B"), p("localhost", "C")],
  },
  {
    name: "domain and domains together",
    routing: {
      rules: [rule({ domain: ["full:d1.test"], domains: ["full:d2.test"], outboundTag: "A" })],
    },
    probes: [p("d1.test", "A"), p("d2.test", "A")],
  },
];

/** Configs both must refuse: [what, routing block]. */
const REFUSED: Array<[string, Record<string, unknown>]> = [
  ["a bad regexp", { rules: [rule({ domain: ["regexp:a(b"], outboundTag: "A" })] }],
  ["an unknown balancerTag", { rules: [rule({ domain: ["a"], balancerTag: "nob" })] }],
  ["a rule without a target", { rules: [rule({ domain: ["a"] })] }],
  ["a rule without conditions", { rules: [rule({ outboundTag: "A" })] }],
  ["a port array", { rules: [rule({ port: [53, 443], outboundTag: "A" })] }],
  ["ip negation", { rules: [rule({ ip: ["!10.0.0.0/8"], outboundTag: "A" })] }],
  ["a missing geosite list", { rules: [rule({ domain: ["geosite:nope"], outboundTag: "A" })] }],
  ["a rule type other than field", {
    rules: [{ type: "chinaip", ip: ["1.1.1.1"], outboundTag: "A" }],
  }],
  ["dotless: with a dot", { rules: [rule({ domain: ["dotless:a.b"], outboundTag: "A" })] }],
];

function config(c: Omit<Case, "probes">, ports: Record<string, number>, socks: [number, number]) {
  const inbound = (tag: string, port: number) => ({
    tag,
    protocol: "socks",
    listen: "127.0.0.1",
    port,
    settings: {
      auth: "password",
      accounts: ["alice", "Alice", "bob", "anon"].map((user) => ({ user, pass: "pw" })),
    },
    ...(c.sniffing ? { sniffing: c.sniffing } : {}),
  });
  return {
    log: { loglevel: "warning" },
    inbounds: [inbound("in", socks[0]), inbound("in2", socks[1])],
    outbounds: [
      ...TAGS.map((tag) => ({
        tag,
        protocol: "freedom",
        settings: { redirect: `127.0.0.1:${ports[tag]}` },
      })),
      { tag: "block", protocol: "blackhole" },
    ],
    routing: c.routing,
    ...(c.dns ? { dns: c.dns } : {}),
  };
}

async function writeAssets(dir: string): Promise<void> {
  await Deno.writeFile(
    join(dir, "geosite.dat"),
    encodeGeoSite({
      TEST: ["domain:geo.test", "full:f.geo2.test", "regexp:^rx\\d\\.test$", "kwgeo"],
      ADS: ["domain:ads.test@cn", "domain:track.test", "full:x.ads2.test@cn@strict"],
    }),
  );
  await Deno.writeFile(
    join(dir, "geoip.dat"),
    encodeGeoIp({ CN: ["1.0.1.0/24", "2001:250::/35"], PRIVATE: ["10.0.0.0/8"] }),
  );
  await Deno.writeFile(
    join(dir, "my.dat"),
    encodeGeoSite({ ZZ: ["full:zz.test"], YY: ["yy.test"] }),
  );
  await Deno.writeFile(join(dir, "ipx.dat"), encodeGeoIp({ XX: ["100.64.0.0/10"] }));
}

/** Runs v2ray on `configPath` until `fn` is done. */
async function withV2ray(dir: string, configPath: string, port: number, fn: () => Promise<void>) {
  const child = new Deno.Command(V2RAY, {
    args: ["-config", configPath],
    cwd: dir,
    env: { V2RAY_LOCATION_ASSET: dir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) output += t;
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (/V2Ray \S+ started/.test(output) && (await accepts(port))) break;
      if (Date.now() > deadline) throw new Error(`v2ray did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await fn();
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await pumps;
  }
}

async function accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

/** dray's answer for one probe: parse + build + sniff + decide, as the dispatcher does. */
async function drayAnswer(
  json: ReturnType<typeof config>,
  dir: string,
  pr: Probe & { inbound?: string },
) {
  const cfg = parseConfigObject(structuredClone(json));
  const { router } = buildRouter({
    routing: cfg.routing,
    hosts: cfg.dns.hosts,
    outboundTags: cfg.outbounds.map((o) => o.tag),
    assets: new AssetLocator({ env: (n) => (n === "V2RAY_LOCATION_ASSET" ? dir : undefined) }),
  });
  const inbound = cfg.inbounds.find((i) => i.tag === (pr.inbound ?? "in"))!;
  const sniffed = inbound.sniffing.enabled && pr.payload ? sniff(pr.payload) : undefined;
  const { destination, protocol } = applySniffed(
    { network: "tcp" as const, host: pr.host, port: pr.port },
    typeof sniffed === "object" ? sniffed : undefined,
    inbound.sniffing.destOverride,
  );
  const d = await router.decide({
    destination,
    inboundTag: inbound.tag,
    source: { host: "127.0.0.1", port: pr.localPort ?? 50_000 },
    user: pr.user ?? "anon",
    protocol,
  });
  const out = cfg.outbounds.find((o) => o.tag === d.tag)!;
  return out.protocol === "blackhole" ? "block" : d.tag;
}

const same = (got: string, want: string) => want.split("|").includes(got);

Deno.test({
  name: "dray routes every probe as v2ray 4.34 does (SOCKS in, sniffing, dispatcher, router)",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dray-routing-oracle-" });
    const servers = startTagServers(TAGS);
    let probes = 0;
    try {
      await writeAssets(dir);
      for (const c of CASES) {
        const socks: [number, number] = [freePort(), freePort()];
        const json = config(c, servers.ports, socks);
        const path = join(dir, "config.json");
        await Deno.writeTextFile(path, JSON.stringify(json));
        const drayJson = config(c, servers.ports, [freePort(), freePort()]);
        const app = await startApp(parseConfigObject(drayJson, { baseDir: dir }), {
          logger: Logger.silent(),
        });
        try {
          await withV2ray(dir, path, socks[0], async () => {
            for (const [pr, want] of c.probes) {
              const in2 = (pr as { inbound?: string }).inbound === "in2";
              const v2ray = await probe(socks[in2 ? 1 : 0], { ...pr, user: pr.user ?? "anon" });
              const dray = await probe(app.inbounds[in2 ? 1 : 0].port, {
                ...pr,
                user: pr.user ?? "anon",
              });
              const decided = await drayAnswer(json, dir, pr);
              const what = `${c.name}: ${pr.host}:${pr.port}`;
              assert.ok(
                same(v2ray, want),
                `${what}: v2ray answered ${v2ray}, the notes say ${want}`,
              );
              assert.ok(same(dray, want), `${what}: dray answered ${dray}, v2ray ${v2ray}`);
              assert.ok(same(decided, want), `${what}: dray's router decided ${decided}`);
              probes++;
            }
          });
        } finally {
          await app.close(0);
        }
      }
      console.log(`routing oracle: ${CASES.length} configs, ${probes} probes, all agree`);
    } finally {
      await servers.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("parseConfigObject() and buildRouter() refuse what v2ray 4.34 -test refuses", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dray-routing-refused-" });
  try {
    await writeAssets(dir);
    const ports = Object.fromEntries(TAGS.map((t, i) => [t, 1000 + i]));
    for (const [what, routing] of REFUSED) {
      const json = config({ name: what, routing }, ports, [freePort(), freePort()]);
      const path = join(dir, "config.json");
      await Deno.writeTextFile(path, JSON.stringify(json));
      const out = await new Deno.Command(V2RAY, {
        args: ["-test", "-config", path],
        env: { V2RAY_LOCATION_ASSET: dir },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 23, `v2ray -test accepts ${what}`);
      assert.throws(() => {
        const cfg = parseConfigObject(json);
        buildRouter({
          routing: cfg.routing,
          outboundTags: cfg.outbounds.map((o) => o.tag),
          assets: new AssetLocator({
            env: (n) => (n === "V2RAY_LOCATION_ASSET" ? dir : undefined),
          }),
        });
      }, `dray accepts ${what}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** One request through an HTTP proxy: plain (absolute-form) or CONNECT then origin-form. */
async function httpProbe(proxyPort: number, how: "plain" | "connect"): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  const timer = setTimeout(() => conn.close(), 5_000);
  const enc = new TextEncoder();
  let text = "";
  const buf = new Uint8Array(4096);
  /** Reads until a whole response (head and Content-Length body) is in `text`, or EOF. */
  const readResponse = async () => {
    text = "";
    for (let i = 0; i < 100; i++) {
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      if (end >= 0 && text.length >= end + 4 + length) return text.slice(end + 4);
      const n = await conn.read(buf);
      if (n === null) return `closed after ${JSON.stringify(text)}`;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return "too many reads";
  };
  try {
    const get = (target: string) =>
      enc.encode(`GET ${target} HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n`);
    if (how === "plain") {
      await conn.write(get("http://web.test/"));
      return await readResponse();
    }
    await conn.write(enc.encode("CONNECT web.test:80 HTTP/1.1\r\nHost: web.test:80\r\n\r\n"));
    const established = await readResponse();
    if (!/^HTTP\/1\.1 200/.test(text)) return `CONNECT refused: ${established}`;
    await conn.write(get("/"));
    return await readResponse();
  } catch (err) {
    return `error: ${err}`;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // The timer closed it.
    }
  }
}

Deno.test('a protocol: ["http"] rule takes plain HTTP proxy requests, not CONNECT, as in v2ray 4.34', async () => {
  // Tag servers that speak HTTP: a plain request's response is parsed by the proxy.
  const servers = ["direct", "A"].map((tag) =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response(tag))
  );
  const dir = await Deno.makeTempDir({ prefix: "dray-routing-http-" });
  const json = (port: number) => ({
    log: { loglevel: "warning" },
    inbounds: [{ tag: "web", protocol: "http", listen: "127.0.0.1", port, settings: {} }],
    outbounds: servers.map((s, i) => ({
      tag: ["direct", "A"][i],
      protocol: "freedom",
      settings: { redirect: `127.0.0.1:${s.addr.port}` },
    })),
    routing: { rules: [rule({ protocol: ["http"], outboundTag: "A" })] },
  });
  const access: string[] = [];
  const logger = Logger.silent();
  logger.access = (r) => void access.push(`${r.outbound} [${r.rule}]`);
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  try {
    app = await startApp(parseConfigObject(json(freePort())), { logger });
    const drayPort = app.inbounds[0].port;
    const v2rayPort = freePort();
    const path = join(dir, "config.json");
    await Deno.writeTextFile(path, JSON.stringify(json(v2rayPort)));
    await withV2ray(dir, path, v2rayPort, async () => {
      for (const [how, want] of [["plain", "A"], ["connect", "direct"]] as const) {
        assert.equal(await httpProbe(v2rayPort, how), want, `v2ray, ${how}`);
        assert.equal(await httpProbe(drayPort, how), want, `dray, ${how}`);
      }
    });
    assert.deepEqual(access, ["A [rule 1: protocol http]", "direct [default]"]);
  } finally {
    await app?.close(0);
    await Promise.all(servers.map((s) => s.shutdown()));
    await Deno.remove(dir, { recursive: true });
  }
});
