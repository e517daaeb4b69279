/**
 * Picks an outbound tag for a connection with v2ray 4.34's routing: rules in order, the first
 * that matches wins; no match (or a balancer that selects nothing) means the default outbound.
 *
 * Domain and IP conditions are indexed across all rules: one DomainMatcher and one IpMatcher hold
 * every rule's entries with the rule index as id, so a decision costs a few map lookups and one
 * binary search, then visits only the rules that can still match, in order.
 *
 * `domainStrategy` (app/router/router.go pickRouteInternal):
 * - AsIs: an ip condition only sees an IP target.
 * - IPIfNonMatch: a first pass as AsIs; if nothing matched and the target is a name, a second
 *   pass over all rules with the name's addresses.
 * - IPOnDemand: the name is resolved the first time a rule's ip condition is reached.
 * A failed lookup makes every ip condition false. The decision is synchronous unless a name has
 * to be resolved.
 */
import { type IpAddress, parseIp } from "./ip_address.ts";
import type { DomainMatcher } from "./domain_matcher.ts";
import type { IpMatcher } from "./ip_matcher.ts";
import { type RouteRequest, type Rule, ruleMatches } from "./rule.ts";

export type DomainStrategy = "AsIs" | "IPIfNonMatch" | "IPOnDemand";

export interface RouteDecision {
  /** The outbound tag to use. */
  tag: string;
  /** The rule that matched, or undefined for the default route. */
  rule?: Rule;
  /**
   * For the access log: "rule 3: domain:example.com", "rule 2: ip 10.0.0.0/8, balancer b",
   * "rule 2: …, balancer b empty" (4.34 then takes the default outbound), or "default".
   */
  reason: string;
}

export interface RulesRouterOptions {
  rules: readonly Rule[];
  /** Every rule's domain entries, with the rule index as id. */
  domains: DomainMatcher;
  /** Every rule's ip entries, with the rule index as id. */
  ips: IpMatcher;
  domainStrategy: DomainStrategy;
  /** The first outbound's tag. */
  defaultTag: string;
  /** Addresses of a name; [] when it does not resolve. */
  resolve: (name: string) => Promise<IpAddress[]>;
}

const NEED_IPS = Symbol("need IPs");

export class RulesRouter {
  readonly rules: readonly Rule[];
  readonly domainStrategy: DomainStrategy;
  readonly defaultTag: string;
  readonly #domains: DomainMatcher;
  readonly #ips: IpMatcher;
  readonly #resolve: (name: string) => Promise<IpAddress[]>;
  /** Rules with an ip condition and no domain condition, ascending. */
  readonly #ipRules: number[];
  /** Rules with neither, ascending: always visited. */
  readonly #plainRules: number[];
  readonly #hasIpRules: boolean;

  constructor(options: RulesRouterOptions) {
    this.rules = options.rules;
    this.domainStrategy = options.domainStrategy;
    this.defaultTag = options.defaultTag;
    this.#domains = options.domains;
    this.#ips = options.ips;
    this.#resolve = options.resolve;
    this.#ipRules = this.rules.filter((r) => r.hasIp && !r.hasDomain).map((r) => r.index);
    this.#plainRules = this.rules.filter((r) => !r.hasIp && !r.hasDomain).map((r) => r.index);
    this.#hasIpRules = this.rules.some((r) => r.hasIp);
  }

  /** The route for `req`; a Promise only when a name must be resolved first. */
  decide(req: RouteRequest): RouteDecision | Promise<RouteDecision> {
    const host = req.destination.host;
    const targetIp = parseIp(host);
    const domain = targetIp === null ? host : "";
    const domainHits = this.#domainHits(domain);
    const sourceIp = req.source ? parseIp(req.source.host) : null;
    const strategy = this.domainStrategy;
    // AsIs sees only an IP target; IPOnDemand resolves a name when an ip condition asks.
    const first = this.#pass(req, domainHits, sourceIp, targetIp ? [targetIp] : undefined, {
      resolve: strategy === "IPOnDemand" && domain !== "",
    });
    if (first === NEED_IPS) {
      return this.#resolve(domain).then((ips) => {
        const r = this.#pass(req, domainHits, sourceIp, ips, { resolve: false });
        return r === NEED_IPS || r === undefined ? this.#default() : r;
      });
    }
    if (first !== undefined) return first;
    if (strategy !== "IPIfNonMatch" || domain === "" || !this.#hasIpRules) {
      return this.#default();
    }
    // Second pass, from the top, with the name's addresses (resolved only if an ip rule is reached).
    const second = this.#pass(req, domainHits, sourceIp, undefined, { resolve: true });
    if (second !== NEED_IPS) return second ?? this.#default();
    return this.#resolve(domain).then((ips) => {
      const r = this.#pass(req, domainHits, sourceIp, ips, { resolve: false });
      return r === NEED_IPS || r === undefined ? this.#default() : r;
    });
  }

  #default(): RouteDecision {
    return { tag: this.defaultTag, reason: "default" };
  }

  #domainHits(domain: string): readonly number[] {
    if (domain === "" || this.#domains.size === 0) return EMPTY;
    const hits: number[] = [];
    this.#domains.forEachMatch(domain, (id) => void hits.push(id));
    if (hits.length > 1) hits.sort((a, b) => a - b);
    return hits;
  }

  /**
   * One pass over the rules that can match, in order. `ips` undefined = not known yet: an ip
   * condition then answers NEED_IPS when `resolve` is set, else false.
   */
  #pass(
    req: RouteRequest,
    domainHits: readonly number[],
    sourceIp: IpAddress | null,
    ips: IpAddress[] | undefined,
    opts: { resolve: boolean },
  ): RouteDecision | undefined | typeof NEED_IPS {
    let ipHits: Set<number> | undefined;
    const ipCondition = (index: number) => {
      if (ips === undefined) return opts.resolve ? "resolve" as const : false;
      ipHits ??= this.#ipHits(ips);
      return ipHits.has(index);
    };
    // Candidate ip-only rules: those whose CIDRs contain an address, or all of them while the
    // addresses are still unknown but may be looked up.
    let ipCandidates: readonly number[];
    if (ips !== undefined) {
      ipHits ??= this.#ipHits(ips);
      const hits = ipHits;
      ipCandidates = this.#ipRules.length > 0 && hits.size > 0
        ? this.#ipRules.filter((i) => hits.has(i))
        : EMPTY;
    } else {
      ipCandidates = opts.resolve ? this.#ipRules : EMPTY;
    }
    const lists = [domainHits, ipCandidates, this.#plainRules];
    const pos = [0, 0, 0];
    let last = -1;
    for (;;) {
      // The smallest rule index not yet visited among the three ascending lists.
      let next = Infinity;
      for (let l = 0; l < 3; l++) {
        const list = lists[l];
        while (pos[l] < list.length && list[pos[l]] <= last) pos[l]++;
        if (pos[l] < list.length && list[pos[l]] < next) next = list[pos[l]];
      }
      if (next === Infinity) return undefined;
      last = next;
      const rule = this.rules[next];
      const m = ruleMatches(rule, req, sourceIp, () => ipCondition(rule.index));
      if (m === "resolve") return NEED_IPS;
      if (!m) continue;
      if ("outboundTag" in rule.target) {
        return { tag: rule.target.outboundTag, rule, reason: rule.label };
      }
      const picked = rule.target.balancer.pick();
      // 4.34: a balancer that selects no outbound sends the connection to the default one.
      if (picked === undefined) {
        return {
          ...this.#default(),
          rule,
          reason: `${rule.label}, balancer ${rule.target.balancer.tag} empty`,
        };
      }
      return {
        tag: picked,
        rule,
        reason: `${rule.label}, balancer ${rule.target.balancer.tag}`,
      };
    }
  }

  #ipHits(ips: IpAddress[]): Set<number> {
    const hits = new Set<number>();
    for (const ip of ips) {
      const ids = this.#ips.idsOf(ip);
      if (ids) { for (const id of ids) hits.add(id); }
    }
    return hits;
  }
}

const EMPTY: readonly number[] = Object.freeze([]) as readonly number[];
