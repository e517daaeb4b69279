/**
 * One compiled routing rule: every field present must match (AND), any entry of a field may
 * (OR). Domain and target-IP conditions are not kept here: the router indexes them across all
 * rules (one lookup answers for every rule) and passes the answers in.
 *
 * Fields are checked in v2ray 4.34's order (app/router/config.go BuildCondition) — domain, user,
 * inboundTag, port, sourcePort, network, ip, source, protocol — stopping at the first that fails.
 * The order matters for IPOnDemand: a name is resolved only when an ip condition is reached.
 */
import type { Destination } from "../net/destination.ts";
import type { Balancer } from "./balancer.ts";
import type { IpAddress } from "./ip_address.ts";
import type { IpMatcher } from "./ip_matcher.ts";
import type { PortList } from "./port_list.ts";

/** What the router knows about a connection when it picks an outbound. */
export interface RouteRequest {
  destination: Destination;
  /** The inbound's tag ("" never matches an inboundTag rule). */
  inboundTag: string;
  /** The client's address as the inbound saw it. */
  source?: { host: string; port: number };
  /** SOCKS username, VLESS client email; "" or absent = none. */
  user?: string;
  /** Sniffed protocol ("http1", "tls", "bittorrent"), "http/1.1" for a forwarded HTTP request. */
  protocol?: string;
}

export interface RuleFields {
  user?: readonly string[];
  inboundTag?: readonly string[];
  port?: PortList;
  sourcePort?: PortList;
  /** Networks the rule takes; 4.34 turns unknown words into a network nothing has. */
  network?: readonly string[];
  source?: IpMatcher;
  protocol?: readonly string[];
}

export type RuleTarget = { outboundTag: string } | { balancer: Balancer };

export interface Rule extends RuleFields {
  /** 0-based position in `routing.rules`. */
  index: number;
  /** For logs: "rule 3: domain:example.com". */
  label: string;
  hasDomain: boolean;
  hasIp: boolean;
  target: RuleTarget;
}

/** The answer of the target-IP condition: true/false, or "resolve" when IPs must be looked up. */
export type IpAnswer = boolean | "resolve";

/**
 * Whether `rule` matches, given that its domain condition (if any) already holds. `ip()` answers
 * its ip condition; "resolve" comes back as is so the router can look the name up and ask again.
 */
export function ruleMatches(
  rule: Rule,
  req: RouteRequest,
  sourceIp: IpAddress | null,
  ip: () => IpAnswer,
): boolean | "resolve" {
  if (rule.user && !(req.user && rule.user.includes(req.user))) return false;
  if (rule.inboundTag && !(req.inboundTag && rule.inboundTag.includes(req.inboundTag))) {
    return false;
  }
  if (rule.port && !rule.port.has(req.destination.port)) return false;
  if (rule.sourcePort && !(req.source && rule.sourcePort.has(req.source.port))) return false;
  if (rule.network && !rule.network.includes(req.destination.network)) return false;
  if (rule.hasIp) {
    const answer = ip();
    if (answer !== true) return answer;
  }
  if (rule.source && !(sourceIp && rule.source.test(sourceIp))) return false;
  if (rule.protocol) {
    const p = req.protocol;
    if (!p || !rule.protocol.some((prefix) => p.startsWith(prefix))) return false;
  }
  return true;
}
