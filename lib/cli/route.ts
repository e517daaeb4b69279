/**
 * `dray route`: which rule a connection would match and which outbound it would take, decided by
 * the router `dray run` builds from the same config, without opening anything. A name is looked
 * up only when the config's domainStrategy makes the router ask (as a connection would), and the
 * output says so. People otherwise debug routing by reading access logs.
 */
import { buildRouting } from "../app.ts";
import type { Config } from "../config/types.ts";
import {
  addressKind,
  type Destination,
  formatDestination,
  formatHostPort,
  ipv6ToBytes,
  ipv6ToString,
} from "../net/destination.ts";
import type { SystemLookup } from "../routing/host_resolver.ts";
import { formatIp, type IpAddress } from "../routing/ip_address.ts";
import type { RouteRequest } from "../routing/rule.ts";
import { ExitCode, parseCommandArgs, stringValue, usageError, UserError } from "./args.ts";
import {
  CONFIG_FLAGS,
  configSources,
  type LinkSourceOptions,
  loadConfig,
} from "./config_source.ts";

export const ROUTE_HELP =
  `Usage: dray route (-c <config.json> | --link … | --sub <source>) DEST[:PORT] [options]

Prints which routing rule a connection to DEST would match and which outbound would carry it,
as "dray run" with the same config decides, without connecting anywhere. DEST is a name, an IP
([v6]:port for IPv6 with a port) or a URL (its port, or the scheme's). Without a port, 443.
A name is looked up (dns.hosts, then the system resolver) only when the config's domainStrategy
(IPIfNonMatch, IPOnDemand) makes the router ask for its addresses; the output says when it did.
A balancer's pick is one draw of its strategy.

Options:
  -c, --config <file>      a v2ray-style JSON config (or --link …/--sub <source>)
      --inbound <tag>      the inbound the connection arrives on (default: the first)
      --network <tcp|udp>  default tcp
      --source <ip[:port]> the client's address (source and sourcePort rules; default none)
      --user <email>       the authenticated user (a VLESS email, a SOCKS/HTTP username)
      --protocol <http|tls|bittorrent>
                           what sniffing found (the protocol rule field); DEST is then the name
                           the router sees (the sniffed one when destOverride applies)
      --json               one JSON object: destination, inbound, rule, balancer, outbound,
                           resolved, notes
  -h, --help               print this help

Exit codes: 0 answered; 2 usage error (bad DEST, unknown inbound); 23 invalid config.`;

/** What the connection looks like, from the command line. */
export interface RouteQuery {
  destination: Destination;
  /** DEST had no port: 443 was assumed. */
  portAssumed?: boolean;
  /** Inbound tag; default the config's first inbound. */
  inbound?: string;
  source?: { host: string; port: number };
  user?: string;
  /** As the sniffer names it: "http1", "tls", "bittorrent". */
  protocol?: string;
}

export interface RouteExplanation {
  destination: string;
  /** The inbound tag the router saw ("" when the config has no inbounds). */
  inbound: string;
  source: string | null;
  user: string | null;
  protocol: string | null;
  domainStrategy: string;
  /** The rule that matched; null = none did (the default route, the first outbound). */
  rule: { number: number; path: string; label: string } | null;
  /** Set when the rule sends to a balancer. */
  balancer: { tag: string; candidates: string[] } | null;
  outbound: { tag: string; protocol: string };
  /** Set when the router looked the name up; `addresses` [] = it did not resolve. */
  resolved: { name: string; addresses: string[] } | null;
  /** Things the answer depends on that the user may not have meant. */
  notes: string[];
}

/** The route `query` would take under `config`. Throws UserError (2 or 23) for bad input. */
export async function explainRoute(
  config: Config,
  query: RouteQuery,
  options: { lookup?: SystemLookup } = {},
): Promise<RouteExplanation> {
  const notes: string[] = [];
  let inboundTag = query.inbound;
  const inbound = inboundTag === undefined
    ? config.inbounds[0]
    : config.inbounds.find((i) => i.tag === inboundTag);
  if (inboundTag !== undefined && !inbound) {
    const tags = config.inbounds.map((i) => `"${i.tag}"`).join(", ") || "none";
    throw usageError("route", `no inbound has the tag "${inboundTag}" (inbounds: ${tags})`);
  }
  inboundTag ??= inbound?.tag ?? "";
  if (query.portAssumed) notes.push("no port given: 443 assumed");
  if (query.protocol !== undefined) {
    if (query.destination.network !== "tcp") {
      notes.push("dray sniffs TCP only: a udp connection would have no protocol");
    } else if (inbound && !inbound.sniffing.enabled) {
      notes.push(
        `inbound "${inboundTag}" does not sniff: a real connection would have no protocol`,
      );
    }
  }
  let built;
  try {
    built = buildRouting(config, { lookup: options.lookup });
  } catch (err) {
    throw new UserError((err as Error).message, ExitCode.config, { cause: err });
  }
  const { router, resolver } = built;
  const request: RouteRequest = {
    destination: query.destination,
    inboundTag,
    source: query.source,
    user: query.user,
    protocol: query.protocol,
  };
  const decided = router.decide(request);
  // The router returns a Promise only when it had to look the name up.
  const looked = decided instanceof Promise;
  const decision = await decided;
  const name = query.destination.host;
  let resolved: RouteExplanation["resolved"] = null;
  if (looked) {
    // Cached by the resolver: this reads the answer the router used.
    resolved = { name, addresses: (await resolver.resolve(name)).map(shortIp) };
  } else if (addressKind(name) === "domain" && router.domainStrategy !== "AsIs") {
    notes.push(`${name} was not looked up: the router decided without its addresses`);
  }
  const rule = decision.rule;
  const target = rule?.target;
  const balancer = target && "balancer" in target
    ? { tag: target.balancer.tag, candidates: [...target.balancer.candidates] }
    : null;
  if (balancer && balancer.candidates.length === 0) {
    notes.push(`balancer "${balancer.tag}" selects no outbound: the default route is taken`);
  }
  const outbound = config.outbounds.find((o) => o.tag === decision.tag) ?? config.outbounds[0];
  return {
    destination: formatDestination(query.destination),
    inbound: inboundTag,
    source: query.source ? formatHostPort(query.source.host, query.source.port) : null,
    user: query.user ?? null,
    protocol: query.protocol ?? null,
    domainStrategy: router.domainStrategy,
    rule: rule
      ? { number: rule.index + 1, path: `routing.rules[${rule.index}]`, label: rule.label }
      : null,
    balancer,
    outbound: { tag: outbound.tag, protocol: outbound.protocol },
    resolved,
    notes,
  };
}

/** The aligned text form. */
export function formatExplanation(e: RouteExplanation): string[] {
  const lines: Array<[string, string]> = [["destination", e.destination]];
  lines.push(["inbound", e.inbound === "" ? "(none)" : e.inbound]);
  if (e.source) lines.push(["source", e.source]);
  if (e.user) lines.push(["user", e.user]);
  if (e.protocol) lines.push(["protocol", e.protocol]);
  if (e.resolved) {
    const to = e.resolved.addresses.length > 0
      ? e.resolved.addresses.join(", ")
      : "no address (ip conditions do not match)";
    lines.push(["resolved", `${e.resolved.name} → ${to} (domainStrategy ${e.domainStrategy})`]);
  }
  lines.push([
    "rule",
    e.rule ? `${e.rule.label} (${e.rule.path})` : "none matched: the default route",
  ]);
  if (e.balancer) {
    lines.push([
      "balancer",
      `${e.balancer.tag}: one pick among ${e.balancer.candidates.join(", ") || "nothing"}`,
    ]);
  }
  lines.push(["outbound", `${e.outbound.tag} (${e.outbound.protocol})`]);
  for (const n of e.notes) lines.push(["note", n]);
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}

const PROTOCOLS: Record<string, string> = { http: "http1", tls: "tls", bittorrent: "bittorrent" };

/** DEST as given: name, IP, `[v6]`, `host:port`, `[v6]:port` or a URL. */
export function parseDest(
  text: string,
  network: "tcp" | "udp",
): { destination: Destination; portAssumed: boolean } {
  const bad = (why: string) => usageError("route", `DEST "${text}": ${why}`);
  let host: string;
  let portText: string | undefined;
  if (text.includes("://")) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw bad("not a URL");
    }
    host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const defaults: Record<string, string> = {
      "http:": "80",
      "ws:": "80",
      "https:": "443",
      "wss:": "443",
    };
    portText = url.port || defaults[url.protocol];
    if (portText === undefined) throw bad(`give a port: ${url.protocol} has no default`);
  } else {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (m) {
      [host, portText] = [m[1], m[2]];
    } else if ((text.match(/:/g) ?? []).length > 1) {
      host = text; // a bare IPv6 address
    } else {
      const i = text.lastIndexOf(":");
      [host, portText] = i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + 1)];
    }
  }
  if (host === "") throw bad("no host");
  if (addressKind(host) === "ipv6" && !/^[0-9a-f:.]+$/i.test(host)) throw bad("not an address");
  let port = 443;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
    if (port < 1 || port > 65535) throw bad(`port must be 1-65535, got "${portText}"`);
  }
  return { destination: { network, host, port }, portAssumed: portText === undefined };
}

function parseSource(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+))(?::(\d{1,5}))?$/.exec(text) ??
    /^()([0-9a-fA-F:]*:[0-9a-fA-F:.]*)()$/.exec(text);
  const host = m ? (m[1] || m[2]) : "";
  const port = m?.[3] ? Number(m[3]) : 0;
  if (!m || addressKind(host) === "domain" || port > 65535) {
    throw usageError("route", `--source must be an IP with an optional port, got "${text}"`);
  }
  return { host, port };
}

/** formatIp, with IPv6 compressed (`fd00::1`) as people write it. */
function shortIp(ip: IpAddress): string {
  return ip.family === 4 ? formatIp(ip) : ipv6ToString(ipv6ToBytes(formatIp(ip)));
}

export interface RouteIo extends LinkSourceOptions {
  out(line: string): void;
  /** Test seam: the system resolver. */
  lookup?: SystemLookup;
}

export async function cmdRoute(args: string[], io: RouteIo): Promise<number> {
  const { values, positionals } = parseCommandArgs("route", args, {
    ...CONFIG_FLAGS,
    inbound: { type: "string" },
    network: { type: "string" },
    source: { type: "string" },
    user: { type: "string" },
    protocol: { type: "string" },
    json: { type: "boolean" },
  }, { positionals: 1 });
  if (values.help) {
    io.out(ROUTE_HELP);
    return ExitCode.ok;
  }
  if (positionals.length === 0) throw usageError("route", "give a destination: DEST[:PORT]");
  const network = stringValue(values, "network") ?? "tcp";
  if (network !== "tcp" && network !== "udp") {
    throw usageError("route", `--network must be tcp or udp, got "${network}"`);
  }
  const protocolText = stringValue(values, "protocol");
  const protocol = protocolText === undefined ? undefined : PROTOCOLS[protocolText];
  if (protocolText !== undefined && protocol === undefined) {
    throw usageError("route", `--protocol must be http, tls or bittorrent, got "${protocolText}"`);
  }
  const sourceText = stringValue(values, "source");
  const dest = parseDest(positionals[0], network);
  const query: RouteQuery = {
    destination: dest.destination,
    portAssumed: dest.portAssumed,
    inbound: stringValue(values, "inbound"),
    source: sourceText === undefined ? undefined : parseSource(sourceText),
    user: stringValue(values, "user"),
    protocol,
  };
  const config = await loadConfig("route", configSources(values), io);
  const e = await explainRoute(config, query, { lookup: io.lookup });
  if (values.json) io.out(JSON.stringify(e));
  else for (const line of formatExplanation(e)) io.out(line);
  return ExitCode.ok;
}
