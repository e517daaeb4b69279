/**
 * The `routing` and `dns` sections, and inbound `sniffing`, read as v2ray 4.34 reads them
 * (infra/conf/router.go, dns.go, v2ray.go SniffingConfig), with dray's stricter edges:
 *
 * - a rule's `outboundTag` / `balancerTag` must name an outbound / balancer (4.34 sends such
 *   connections to the first outbound without a word);
 * - `network` entries must be "tcp" or "udp" (4.34 turns anything else, even " tcp" from
 *   "udp, tcp", into a network that never matches);
 * - an unknown `domainStrategy` is read as AsIs with a warning naming it (4.34 says nothing);
 * - `attrs`, balancer `strategy`, every `dns` key but `hosts`, and sniffing keys 4.34 lacks are
 *   refused by name.
 *
 * Entry syntax (domain prefixes, CIDRs, geo references) and geo files are checked when the router
 * is built (lib/routing/build_router.ts), which names the same JSON paths.
 */
import type {
  BalancerConfig,
  ConfigEntry,
  HostsEntry,
  RoutingConfig,
  RoutingRuleConfig,
} from "../routing/build_router.ts";
import { PortList } from "../routing/port_list.ts";
import type { DomainStrategy } from "../routing/rules_router.ts";
import type { BalancerStrategyType } from "../routing/build_router.ts";
import { describe, join, type Obj, type Reader } from "./reader.ts";

/** Inbound `sniffing`: what to sniff and which sniffed protocols replace the destination. */
export interface SniffingConfig {
  enabled: boolean;
  /** "http" and/or "tls" ("https" and "ssl" are read as "tls"). */
  destOverride: Array<"http" | "tls">;
}

export interface RoutingSection extends RoutingConfig {
  /** Things dray accepted but the user should hear about (logged at start). */
  warnings: string[];
  /** The config file's directory, searched for geo files after the asset directory. */
  configDir: string;
}

const RULE_KEYS = [
  "type",
  "outboundTag",
  "balancerTag",
  "domain",
  "domains",
  "ip",
  "port",
  "network",
  "source",
  "sourcePort",
  "user",
  "inboundTag",
  "protocol",
];

/** `routing`; absent = no rules (the first outbound takes everything). */
export function readRouting(r: Reader, root: Obj): RoutingSection | undefined {
  const empty: RoutingSection = {
    domainStrategy: "AsIs",
    rules: [],
    balancers: [],
    warnings: [],
    configDir: r.baseDir,
  };
  const o = r.optObject(root, "routing", "");
  if (o === undefined) return undefined;
  r.keys(o, "routing", ["domainStrategy", "domainMatcher", "rules", "balancers", "settings"]);
  const settings = o.settings === undefined || o.settings === null
    ? {}
    : r.object(o.settings, "routing.settings");
  if (settings === undefined) return undefined;
  r.keys(settings, "routing.settings", ["domainStrategy", "rules"]);
  const out = { ...empty, warnings: [] as string[] };
  // 4.34: settings.domainStrategy counts only when the top-level key is absent.
  const ds = o.domainStrategy !== undefined ? o.domainStrategy : settings.domainStrategy;
  const dsPath = o.domainStrategy !== undefined
    ? "routing.domainStrategy"
    : "routing.settings.domainStrategy";
  if (ds !== undefined && ds !== null) {
    if (typeof ds !== "string") r.problem(dsPath, `must be a string, got ${describe(ds)}`);
    else out.domainStrategy = domainStrategy(ds, dsPath, out.warnings);
  }
  // Xray's domainMatcher picks a matching algorithm; results are the same, and dray's matcher is
  // always indexed, so its values are checked and otherwise have nothing to change.
  const dm = r.string(o, "domainMatcher", "routing", "");
  if (dm !== undefined && !["", "linear", "mph", "hybrid"].includes(dm)) {
    r.problem("routing.domainMatcher", `must be "linear", "mph" or "hybrid", got ${describe(dm)}`);
  }
  const rawBalancers = r.optArray(o, "balancers", "routing") ?? [];
  rawBalancers.forEach((v, i) => {
    const b = readBalancer(r, v, `routing.balancers[${i}]`);
    if (!b) return;
    const dup = out.balancers.findIndex((x) => x.tag === b.tag);
    if (dup >= 0) {
      r.problem(
        `routing.balancers[${i}].tag`,
        `"${b.tag}" is already used by routing.balancers[${dup}]`,
      );
    }
    out.balancers.push(b);
  });
  // 4.34 appends the deprecated settings.rules after the top-level rules.
  const lists: Array<[unknown[], string]> = [
    [r.optArray(o, "rules", "routing") ?? [], "routing.rules"],
    [r.optArray(settings, "rules", "routing.settings") ?? [], "routing.settings.rules"],
  ];
  for (const [list, base] of lists) {
    list.forEach((v, i) => {
      const rule = readRule(r, v, `${base}[${i}]`);
      if (rule) out.rules.push(rule);
    });
  }
  return out;
}

function domainStrategy(value: string, path: string, warnings: string[]): DomainStrategy {
  switch (value.toLowerCase()) {
    case "asis":
      return "AsIs";
    case "ipifnonmatch":
    case "ip_if_non_match":
    case "ip-if-non-match":
      return "IPIfNonMatch";
    case "ipondemand":
    case "ip_on_demand":
    case "ip-on-demand":
      return "IPOnDemand";
    case "alwaysip":
    case "always_ip":
    case "always-ip":
      // 4.34 parses AlwaysIP but its router has no branch for it: it routes as AsIs.
      warnings.push(`${path}: "${value}" routes as AsIs (as in v2ray 4.34)`);
      return "AsIs";
    default:
      warnings.push(
        `${path}: unknown domainStrategy ${JSON.stringify(value)} read as AsIs ` +
          `(known: AsIs, IPIfNonMatch, IPOnDemand)`,
      );
      return "AsIs";
  }
}

function readBalancer(r: Reader, v: unknown, path: string): BalancerConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, ["tag", "selector", "strategy"], {
    fallbackTag: "fallbackTag is",
  });
  const tag = r.requiredString(o, "tag", path);
  const selector = r.stringList(o, "selector", path);
  if (selector !== undefined && selector.length === 0) {
    r.problem(join(path, "selector"), "must list at least one outbound tag prefix");
  }
  // A bad strategy is reported; the balancer is kept so rules naming it are not reported too.
  const strategy = readStrategy(r, o, path);
  if (tag === undefined || selector === undefined) return undefined;
  return strategy ? { tag, selector, strategy } : { tag, selector };
}

/** Xray's strategy names, matched without regard to case as Xray does. */
const STRATEGIES: Record<string, BalancerStrategyType> = {
  random: "random",
  roundrobin: "roundRobin",
  leastping: "leastPing",
};

/**
 * `strategy: {type}` (Xray; 4.34 has only the random pick): undefined when absent, null when
 * wrong (reported). `settings` belong to Xray's leastLoad, which dray does not have.
 */
function readStrategy(r: Reader, o: Obj, path: string): BalancerStrategyType | undefined | null {
  if (o.strategy === undefined || o.strategy === null) return undefined;
  const sp = join(path, "strategy");
  const s = r.optObject(o, "strategy", path);
  if (s === undefined) return null;
  r.keys(s, sp, ["type"], { settings: "strategy settings (Xray's leastLoad) are" });
  const type = r.string(s, "type", sp, "random");
  if (type === undefined) return null;
  const known = STRATEGIES[type.toLowerCase()];
  if (known) return known;
  if (type.toLowerCase() === "leastload") {
    return r.unsupported(
      join(sp, "type"),
      `the "${type}" strategy is`,
      "random, roundRobin, leastPing",
    ) ??
      null;
  }
  return r.problem(
    join(sp, "type"),
    `unknown balancer strategy ${describe(type)} (supported: random, roundRobin, leastPing)`,
  ) ?? null;
}

function readRule(r: Reader, v: unknown, path: string): RoutingRuleConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, RULE_KEYS, {
    attrs: "attrs (Starlark conditions on HTTP request attributes) are",
  });
  const type = r.string(o, "type", path, "");
  if (type !== undefined && type.toLowerCase() !== "field") {
    r.problem(join(path, "type"), `must be "field", got ${describe(o.type ?? "")}`);
  }
  const rule: RoutingRuleConfig = { path };
  const outboundTag = r.string(o, "outboundTag", path, "");
  const balancerTag = r.string(o, "balancerTag", path, "");
  if (outboundTag) rule.outboundTag = outboundTag;
  else if (balancerTag) rule.balancerTag = balancerTag;
  else if (outboundTag !== undefined && balancerTag !== undefined) {
    r.problem(path, "needs an outboundTag or a balancerTag");
  }

  const entries = (key: string): ConfigEntry[] | undefined => {
    if (o[key] === undefined || o[key] === null) return undefined;
    const list = r.stringList(o, key, path);
    return list?.map((value, i) => ({ value, path: `${join(path, key)}[${i}]` }));
  };
  const domain = [...(entries("domain") ?? []), ...(entries("domains") ?? [])];
  if (o.domain != null || o.domains != null) rule.domain = domain;
  rule.ip = entries("ip");
  rule.source = entries("source");
  for (const key of ["port", "sourcePort"] as const) {
    if (o[key] === undefined || o[key] === null) continue;
    try {
      rule[key] = PortList.parse(o[key]);
    } catch (err) {
      r.problem(join(path, key), (err as Error).message);
    }
  }
  if (o.network != null) {
    const list = r.stringList(o, "network", path);
    list?.forEach((n, i) => {
      if (n !== "tcp" && n !== "udp" && n.toLowerCase() !== "tcp" && n.toLowerCase() !== "udp") {
        r.problem(`${join(path, "network")}[${i}]`, `must be "tcp" or "udp", got ${describe(n)}`);
      }
    });
    if (list) rule.network = list.map((n) => n.toLowerCase());
  }
  // 4.34 drops empty strings from these lists (an empty protocol prefix would match anything).
  for (const key of ["user", "inboundTag", "protocol"] as const) {
    if (o[key] === undefined || o[key] === null) continue;
    const list = r.stringList(o, key, path);
    if (list) rule[key] = list.filter((s) => s !== "");
  }
  const conditions = [
    "domain",
    "ip",
    "source",
    "port",
    "sourcePort",
    "network",
    "user",
    "inboundTag",
    "protocol",
  ];
  if (!conditions.some((k) => rule[k as keyof RoutingRuleConfig] !== undefined)) {
    r.problem(path, "has no conditions (v2ray: this rule has no effective fields)");
  }
  return rule;
}

/**
 * Checks that every rule's outboundTag / balancerTag exists (after the outbounds' tags are
 * filled in).
 */
export function checkRuleTargets(r: Reader, routing: RoutingConfig, outboundTags: string[]): void {
  const balancers = new Set(routing.balancers.map((b) => b.tag));
  for (const rule of routing.rules) {
    if (rule.outboundTag !== undefined && !outboundTags.includes(rule.outboundTag)) {
      r.problem(join(rule.path, "outboundTag"), `no outbound has the tag "${rule.outboundTag}"`);
    }
    if (rule.balancerTag !== undefined && !balancers.has(rule.balancerTag)) {
      r.problem(join(rule.path, "balancerTag"), `no balancer has the tag "${rule.balancerTag}"`);
    }
  }
}

const DNS_UNSUPPORTED: Record<string, string> = {
  servers: "DNS servers (dray resolves with dns.hosts and the system resolver) are",
  clientIp: "clientIp (EDNS client subnet) is",
  tag: "the DNS tag is",
  queryStrategy: "queryStrategy is",
  disableCache: "disableCache is",
  disableFallback: "disableFallback is",
  disableFallbackIfMatch: "disableFallbackIfMatch is",
};

/** `dns`: only `hosts`, the static map routing's IPIfNonMatch / IPOnDemand consult first. */
export function readDns(r: Reader, root: Obj): HostsEntry[] | undefined {
  const o = r.optObject(root, "dns", "");
  if (o === undefined) return undefined;
  r.keys(o, "dns", ["hosts"], DNS_UNSUPPORTED);
  const hosts = r.optObject(o, "hosts", "dns");
  if (hosts === undefined) return undefined;
  const out: HostsEntry[] = [];
  for (const [key, value] of Object.entries(hosts)) {
    const path = `dns.hosts[${JSON.stringify(key)}]`;
    if (typeof value !== "string" || value === "") {
      r.problem(path, `must be an address or a domain name, got ${describe(value)}`);
      continue;
    }
    out.push({ key, address: value, path });
  }
  return out;
}

/** Inbound `sniffing`: `enabled`, `destOverride` ["http", "tls"]. */
export function readSniffing(r: Reader, o: Obj, path: string): SniffingConfig | undefined {
  const s = r.optObject(o, "sniffing", path);
  if (s === undefined) return undefined;
  const sp = join(path, "sniffing");
  r.keys(s, sp, ["enabled", "destOverride"], {
    metadataOnly: "metadataOnly is",
    domainsExcluded: "domainsExcluded is",
    routeOnly: "routeOnly is",
  });
  const enabled = r.bool(s, "enabled", sp, false);
  const list = r.stringList(s, "destOverride", sp);
  const destOverride: Array<"http" | "tls"> = [];
  list?.forEach((p, i) => {
    const v = p.toLowerCase();
    if (v === "http") destOverride.push("http");
    else if (v === "tls" || v === "https" || v === "ssl") destOverride.push("tls");
    else {
      r.problem(`${join(sp, "destOverride")}[${i}]`, `must be "http" or "tls", got ${describe(p)}`);
    }
  });
  if (enabled === undefined || list === undefined) return undefined;
  return { enabled, destOverride };
}
