/**
 * Turns the parsed `routing` and `dns.hosts` sections into a RulesRouter and the HostResolver it
 * asks, loading geoip/geosite lists. Geo files are read once each, and only the codes the config
 * references are decoded. Every error names the JSON path of the entry at fault.
 *
 * Entry forms are v2ray 4.34's (infra/conf/router.go parseDomainRule, toCidrList):
 * - domain: `regexp:`, `domain:`, `full:`, `keyword:`, `dotless:[s]`, `geosite:LIST[@attr…]`,
 *   `ext:FILE:LIST[@attr…]` / `ext-domain:`, or plain text (substring);
 * - ip / source: an address, a CIDR, `geoip:CODE`, `ext:FILE:CODE` / `ext-ip:`.
 * `@attr` keeps the domains that carry every listed attribute (keys compared case-insensitively).
 * `geoip:private` falls back to a built-in list when no geoip.dat (or no PRIVATE entry) exists.
 */
import { AssetLocator } from "./asset_locator.ts";
import { Balancer, type BalancingStrategy } from "./balancer.ts";
import { DomainMatcher, type DomainPattern } from "./domain_matcher.ts";
import { type GeoSiteDomain, readGeoIp, readGeoSite } from "./geo_dat.ts";
import { HostResolver, type SystemLookup } from "./host_resolver.ts";
import { type Cidr, parseCidr } from "./ip_address.ts";
import { IpMatcher } from "./ip_matcher.ts";
import type { PortList } from "./port_list.ts";
import { PRIVATE_RANGES } from "./private_ranges.ts";
import type { Rule } from "./rule.ts";
import { type DomainStrategy, RulesRouter } from "./rules_router.ts";

/** A list entry as written, with its JSON path for error messages. */
export interface ConfigEntry {
  value: string;
  path: string;
}

/** One `routing.rules[]` entry after shape checks (lib/config/routing.ts). */
export interface RoutingRuleConfig {
  /** "routing.rules[2]". */
  path: string;
  /** `domain` and `domains` together. */
  domain?: ConfigEntry[];
  ip?: ConfigEntry[];
  source?: ConfigEntry[];
  port?: PortList;
  sourcePort?: PortList;
  network?: string[];
  user?: string[];
  inboundTag?: string[];
  protocol?: string[];
  /** Wins over balancerTag when both are set, as in 4.34. */
  outboundTag?: string;
  balancerTag?: string;
}

export interface BalancerConfig {
  tag: string;
  selector: string[];
  /** `strategy.type`: 4.34's random pick unless set (Xray's names). */
  strategy?: BalancerStrategyType;
}

export type BalancerStrategyType = "random" | "roundRobin" | "leastPing";

export interface RoutingConfig {
  domainStrategy: DomainStrategy;
  rules: RoutingRuleConfig[];
  balancers: BalancerConfig[];
}

/** `dns.hosts`: key (a domain pattern; plain = full) → address or name. */
export interface HostsEntry {
  key: string;
  address: string;
  path: string;
}

export interface BuildRouterOptions {
  routing: RoutingConfig;
  hosts?: HostsEntry[];
  /** Every outbound tag, in config order; the first is the default route. */
  outboundTags: readonly string[];
  assets?: AssetLocator;
  /** Default Deno.readFileSync. */
  readFile?: (path: string) => Uint8Array;
  /** The system resolver (tests pass a fake). */
  lookup?: SystemLookup;
  /** The strategy of a balancer; default 4.34's random pick. */
  strategyFor?: (balancer: BalancerConfig) => BalancingStrategy | undefined;
}

export interface BuiltRouting {
  router: RulesRouter;
  resolver: HostResolver;
  /** Geo files read, with the codes taken from each (for logs and `dray test`). */
  geoFiles: Map<string, string[]>;
}

type DomainRef =
  | { kind: "pattern"; pattern: DomainPattern }
  | { kind: "geo"; file: string; list: string; attrs: string[] };
type IpRef = { kind: "cidr"; cidr: Cidr } | { kind: "geo"; file: string; code: string };

/** A config error naming the entry: `"routing.rules[2].domain[0]": …`. */
function fail(path: string, message: string, cause?: unknown): Error {
  const text = `"${path}": ${message}`;
  if (cause instanceof Deno.errors.NotFound) return new Deno.errors.NotFound(text, { cause });
  if (cause instanceof RangeError) return new RangeError(text, { cause });
  return new SyntaxError(text, { cause });
}

/** 4.34's parseDomainRule, minus file access: a pattern, or a reference into a geosite file. */
export function parseDomainEntry(text: string, plainType: "plain" | "full" = "plain"): DomainRef {
  const nonEmpty = (value: string, what: string) => {
    if (value === "") throw new SyntaxError(`empty ${what} in "${text}"`);
    return value;
  };
  if (text.startsWith("geosite:")) return geoList("geosite.dat", nonEmpty(text.slice(8), "list"));
  for (const prefix of ["ext:", "ext-domain:"]) {
    if (text.startsWith(prefix)) {
      const parts = text.slice(prefix.length).split(":");
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        throw new SyntaxError(`"${text}" must be ${prefix}FILE:LIST`);
      }
      return geoList(parts[0], parts[1]);
    }
  }
  const typed: Array<[string, DomainPattern["type"]]> = [
    ["regexp:", "regexp"],
    ["domain:", "domain"],
    ["full:", "full"],
    ["keyword:", "plain"],
  ];
  for (const [prefix, type] of typed) {
    if (text.startsWith(prefix)) {
      return {
        kind: "pattern",
        pattern: { type, value: nonEmpty(text.slice(prefix.length), prefix) },
      };
    }
  }
  if (text.startsWith("dotless:")) {
    const s = text.slice(8);
    if (s.includes(".")) throw new SyntaxError(`dotless: substring "${s}" may not contain a dot`);
    return { kind: "pattern", pattern: { type: "regexp", value: `^[^.]*${escape(s)}[^.]*$` } };
  }
  return { kind: "pattern", pattern: { type: plainType, value: text } };
}

function geoList(file: string, spec: string): DomainRef {
  const [list, ...attrs] = spec.split("@");
  if (list.trim() === "") throw new SyntaxError(`empty list name in "${spec}"`);
  return {
    kind: "geo",
    file,
    list: list.trim(),
    attrs: attrs.map((a) => a.trim().toLowerCase()).filter((a) => a !== ""),
  };
}

/** 4.34 pastes the dotless substring into the regexp as is; dray matches it literally. */
function escape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
}

/** 4.34's toCidrList entry forms. `!` negation does not exist in 4.34 and is refused. */
export function parseIpEntry(text: string): IpRef {
  if (text.startsWith("geoip:")) {
    const code = text.slice(6);
    if (code === "") throw new SyntaxError(`empty country code in "${text}"`);
    if (code.startsWith("!")) throw new SyntaxError(`"${text}": negation is not supported`);
    return { kind: "geo", file: "geoip.dat", code };
  }
  for (const prefix of ["ext:", "ext-ip:"]) {
    if (text.startsWith(prefix)) {
      const parts = text.slice(prefix.length).split(":");
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        throw new SyntaxError(`"${text}" must be ${prefix}FILE:CODE`);
      }
      return { kind: "geo", file: parts[0], code: parts[1] };
    }
  }
  return { kind: "cidr", cidr: parseCidr(text) };
}

/** Reads each geo file once and decodes the codes asked for (all asks are known up front). */
class GeoLoader {
  readonly #assets: AssetLocator;
  readonly #readFile: (path: string) => Uint8Array;
  readonly #sites = new Map<string, Set<string>>();
  readonly #ips = new Map<string, Set<string>>();
  readonly #siteData = new Map<string, { path: string; lists: Map<string, GeoSiteDomain[]> }>();
  readonly #ipData = new Map<string, { path: string; codes: Map<string, Cidr[]> } | null>();

  constructor(assets: AssetLocator, readFile: (path: string) => Uint8Array) {
    this.#assets = assets;
    this.#readFile = readFile;
  }

  wantSite(file: string, list: string): void {
    add(this.#sites, file, list.toLowerCase());
  }

  wantIp(file: string, code: string): void {
    add(this.#ips, file, code.toLowerCase());
  }

  site(file: string, list: string, path: string): GeoSiteDomain[] {
    let data = this.#siteData.get(file);
    if (!data) {
      const found = this.#read(file, path);
      const lists = readGeoSite(found.bytes, { file: found.path, codes: this.#sites.get(file)! });
      data = { path: found.path, lists };
      this.#siteData.set(file, data);
    }
    const domains = data.lists.get(list.toLowerCase());
    if (!domains) throw fail(path, `list "${list}" not found in ${data.path}`);
    return domains;
  }

  ip(file: string, code: string, path: string): Cidr[] {
    let data = this.#ipData.get(file);
    if (data === undefined) {
      let found: { path: string; bytes: Uint8Array } | null = null;
      try {
        found = this.#read(file, path);
      } catch (err) {
        // No geoip.dat: geoip:private still works (built in); anything else is an error.
        if (!(file === "geoip.dat" && this.#onlyPrivate(file))) throw err;
      }
      data = found && {
        path: found.path,
        codes: readGeoIp(found.bytes, { file: found.path, codes: this.#ips.get(file)! }),
      };
      this.#ipData.set(file, data);
    }
    const cidrs = data?.codes.get(code.toLowerCase());
    if (cidrs) return cidrs;
    if (file === "geoip.dat" && code.toLowerCase() === "private") {
      return PRIVATE_RANGES.map(parseCidr);
    }
    throw fail(path, `code "${code}" not found in ${data!.path}`);
  }

  /** The files read, with the codes decoded from each. */
  summary(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [file, d] of this.#siteData) out.set(d.path, [...this.#sites.get(file)!]);
    for (const [file, d] of this.#ipData) if (d) out.set(d.path, [...this.#ips.get(file)!]);
    return out;
  }

  #onlyPrivate(file: string): boolean {
    const codes = this.#ips.get(file);
    return codes !== undefined && codes.size === 1 && codes.has("private");
  }

  #read(file: string, path: string): { path: string; bytes: Uint8Array } {
    let found: string;
    try {
      found = this.#assets.find(file);
    } catch (err) {
      throw fail(path, (err as Error).message, err);
    }
    try {
      return { path: found, bytes: this.#readFile(found) };
    } catch (err) {
      throw fail(path, `Cannot read ${found}: ${(err as Error).message}`, err);
    }
  }
}

function add(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key) ?? new Set<string>();
  set.add(value);
  map.set(key, set);
}

/** Builds the router (and its resolver) from config; throws the first error, naming its path. */
export function buildRouter(options: BuildRouterOptions): BuiltRouting {
  const { routing } = options;
  const loader = new GeoLoader(
    options.assets ?? new AssetLocator(),
    options.readFile ?? ((p) => Deno.readFileSync(p)),
  );
  const parse = <T>(entry: ConfigEntry, parser: (text: string) => T): T => {
    try {
      return parser(entry.value);
    } catch (err) {
      throw fail(entry.path, (err as Error).message, err);
    }
  };
  // Phase 1: parse every entry and note which geo codes are wanted.
  const parsed = routing.rules.map((r) => ({
    domain: (r.domain ?? []).map((e) => ({ entry: e, ref: parse(e, (t) => parseDomainEntry(t)) })),
    ip: (r.ip ?? []).map((e) => ({ entry: e, ref: parse(e, parseIpEntry) })),
    source: (r.source ?? []).map((e) => ({ entry: e, ref: parse(e, parseIpEntry) })),
  }));
  const hosts = (options.hosts ?? []).map((h) => ({
    h,
    ref: parse({ value: h.key, path: h.path }, (t) => parseDomainEntry(t, "full")),
  }));
  for (const p of parsed) {
    for (const { ref } of p.domain) if (ref.kind === "geo") loader.wantSite(ref.file, ref.list);
    for (const { ref } of [...p.ip, ...p.source]) {
      if (ref.kind === "geo") loader.wantIp(ref.file, ref.code);
    }
  }
  for (const { ref } of hosts) if (ref.kind === "geo") loader.wantSite(ref.file, ref.list);

  const domainPatterns = (ref: DomainRef, path: string): DomainPattern[] => {
    if (ref.kind === "pattern") return [ref.pattern];
    const domains = loader.site(ref.file, ref.list, path);
    if (ref.attrs.length === 0) return domains;
    return domains.filter((d) => ref.attrs.every((a) => d.attrs.includes(a)));
  };
  const cidrs = (ref: IpRef, path: string): Cidr[] =>
    ref.kind === "cidr" ? [ref.cidr] : loader.ip(ref.file, ref.code, path);

  // Phase 2: balancers, rules, the shared indexes.
  const tags = new Set(options.outboundTags);
  const balancers = new Map<string, Balancer>();
  routing.balancers.forEach((b) => {
    balancers.set(
      b.tag,
      new Balancer({
        tag: b.tag,
        selector: b.selector,
        outboundTags: options.outboundTags,
        strategy: options.strategyFor?.(b),
      }),
    );
  });
  const domains = new DomainMatcher();
  const ips = new IpMatcher();
  const rules: Rule[] = routing.rules.map((r, index) => {
    const p = parsed[index];
    for (const { entry, ref } of p.domain) {
      for (const pattern of domainPatterns(ref, entry.path)) {
        try {
          domains.add(pattern, index);
        } catch (err) {
          throw fail(entry.path, (err as Error).message, err);
        }
      }
    }
    for (const { entry, ref } of p.ip) for (const c of cidrs(ref, entry.path)) ips.add(c, index);
    let source: IpMatcher | undefined;
    if (r.source) {
      source = new IpMatcher();
      for (const { entry, ref } of p.source) for (const c of cidrs(ref, entry.path)) source.add(c);
    }
    let target: Rule["target"];
    if (r.outboundTag !== undefined && r.outboundTag !== "") {
      if (!tags.has(r.outboundTag)) {
        throw fail(`${r.path}.outboundTag`, `no outbound has the tag "${r.outboundTag}"`);
      }
      target = { outboundTag: r.outboundTag };
    } else {
      const balancer = balancers.get(r.balancerTag ?? "");
      if (!balancer) {
        throw fail(`${r.path}.balancerTag`, `no balancer has the tag "${r.balancerTag}"`);
      }
      target = { balancer };
    }
    return {
      index,
      label: labelOf(r, index),
      hasDomain: p.domain.length > 0,
      hasIp: p.ip.length > 0,
      target,
      user: r.user,
      inboundTag: r.inboundTag,
      port: r.port,
      sourcePort: r.sourcePort,
      network: r.network,
      source,
      protocol: r.protocol,
    };
  });

  const hostEntries: Array<{ pattern: DomainPattern; address: string }> = [];
  for (const { h, ref } of hosts) {
    for (const pattern of domainPatterns(ref, h.path)) {
      hostEntries.push({ pattern, address: h.address });
    }
  }
  const resolver = new HostResolver({ hosts: hostEntries, lookup: options.lookup });
  const router = new RulesRouter({
    rules,
    domains,
    ips,
    domainStrategy: routing.domainStrategy,
    defaultTag: options.outboundTags[0],
    resolve: (name) => resolver.resolve(name),
  });
  return { router, resolver, geoFiles: loader.summary() };
}

/** "rule 3: domain:example.com +2" — the first condition as written, for the access log. */
function labelOf(r: RoutingRuleConfig, index: number): string {
  const list = (field: string, values: readonly string[] | undefined, bare = false) => {
    if (!values || values.length === 0) return undefined;
    const more = values.length > 1 ? ` +${values.length - 1}` : "";
    return `${bare ? "" : field + " "}${values[0]}${more}`;
  };
  const first = list("domain", r.domain?.map((e) => e.value), true) ??
    list("ip", r.ip?.map((e) => e.value)) ??
    (r.port ? `port ${r.port}` : undefined) ??
    list("network", r.network) ??
    list("inboundTag", r.inboundTag) ??
    list("user", r.user) ??
    list("source", r.source?.map((e) => e.value)) ??
    (r.sourcePort ? `sourcePort ${r.sourcePort}` : undefined) ??
    list("protocol", r.protocol);
  return `rule ${index + 1}${first ? ": " + first : ""}`;
}
