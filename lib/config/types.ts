/**
 * The configuration dray runs from, after parsing and validation (lib/config/parse.ts) with every
 * default filled in, so the code that wires inbounds and outbounds never re-checks anything.
 *
 * The input is the v2ray 4.34 JSON shape with the same key names (comments allowed). What dray
 * understands:
 *
 * - `log`: `loglevel` (debug | info | warning | error | none; default warning), `access`, `error`
 *   (a file path; "" or absent = console; "none" = discard).
 * - `inbounds[]`: `protocol` socks | http | mixed | dokodemo-door (alias tunnel) | vless, `listen`
 *   (default 127.0.0.1 — v2ray defaults to every interface; a proxy open to the network by
 *   accident is worse than one that must be opened on purpose), `port`, `tag`, `settings`:
 *   - socks / mixed: `auth` noauth | password, `accounts[{user, pass}]`, `udp`, `ip`, `userLevel`;
 *   - http: `accounts`, `timeout`, `userLevel` (`allowTransparent` is accepted and has no effect,
 *     as in v2ray's client use);
 *   - dokodemo-door: `address`, `port`, `network` "tcp" | "udp" | "tcp,udp", `userLevel`;
 *   - vless (server): `clients[{id, level, email, flow}]`, `decryption` "none"; and
 *     `streamSettings` with `network` tcp | http | h2, `security` none | tls, `tlsSettings`
 *     (`certificates[]` with `certificateFile`/`keyFile` or `certificate`/`key` PEM line arrays,
 *     one per SNI, `alpn`, `serverName`), `httpSettings` (`host[]`, `path`). An http inbound without TLS is
 *     cleartext HTTP/2 (h2c), for use behind a TLS-terminating proxy.
 * - `outbounds[]`: the first is the default route. `protocol` vless | freedom | blackhole, `tag`:
 *   - vless: `settings.vnext[{address, port, users[{id, flow, encryption "none"}]}]` (`level` 0 only),
 *     `streamSettings` with `network` tcp | http | h2 (h2 is another name for http), `security`
 *     none | tls (http requires tls, as in v2ray), `tlsSettings` (`serverName`, `allowInsecure`,
 *     `alpn`, `certificates[{certificate | certificateFile, usage "verify"}]` (CAs), one
 *     certificate + key with usage "encipherment" (client certificate), `disableSystemRoot`),
 *     `httpSettings` (`host[]`, `path` default "/", `method` default "PUT", `headers`
 *     {name: [values]}, and Xray's `read_idle_timeout`, `health_check_timeout` in seconds);
 *   - freedom: `domainStrategy` AsIs | UseIP | UseIPv4 | UseIPv6, `redirect` "host:port" (`userLevel`
 *     and `timeout` only at their defaults: dray has no outbound-side idle timer);
 *   - blackhole: `response.type` none | http.
 * - `policy.levels.N`: `handshake`, `connIdle`, `uplinkOnly`, `downlinkOnly` in seconds. Defaults
 *   are what v2ray's code uses (features/policy/policy.go): 60 / 300 / 1 / 1. Its docs say
 *   4 / 300 / 2 / 5; the code wins.
 * - `routing`: `domainStrategy`, `rules`, `balancers` (and the legacy `settings`), `dns.hosts`, and
 *   inbound `sniffing` — see lib/config/routing.ts.
 *
 * Refused with an error saying dray does not support them (never silently ignored): other
 * protocols (vmess, trojan, shadowsocks, dns, …), transports kcp / ws / quic / domainsocket / grpc,
 * security xtls / reality, XTLS flows, rule `attrs`, mux, sockopt, port
 * ranges, fallbacks, dns servers, api, stats, reverse, the global `transport` block, and any unknown key.
 */
import type { LogLevel } from "../log.ts";
import type { HostsEntry } from "../routing/build_router.ts";
import type { ObservatoryConfig } from "./observatory.ts";
import type { RoutingSection, SniffingConfig } from "./routing.ts";

export type { SniffingConfig } from "./routing.ts";

export interface Config {
  log: LogConfig;
  inbounds: InboundConfig[];
  /** At least one; the first is the default route. */
  outbounds: OutboundConfig[];
  policy: PolicyConfig;
  /** Rules, balancers, domainStrategy; no rules = the first outbound takes everything. */
  routing: RoutingSection;
  /** `dns.hosts` (the only `dns` key dray reads). */
  dns: { hosts: HostsEntry[] };
  /** Xray's `observatory`: probes for the health-aware balancer strategies. */
  observatory?: ObservatoryConfig;
}

export interface LogConfig {
  loglevel: LogLevel;
  /** File path; "" = stdout; "none" = discard. */
  access: string;
  /** File path; "" = stderr; "none" = discard. */
  error: string;
}

/** Timeouts of one user level, in seconds (v2ray's units). */
export interface LevelPolicy {
  handshake: number;
  connIdle: number;
  uplinkOnly: number;
  downlinkOnly: number;
}

export interface PolicyConfig {
  /** Always has level 0; other levels have every field filled from the defaults. */
  levels: Record<number, LevelPolicy>;
}

/** v2ray's built-in policy (features/policy/policy.go `defaultPolicy`), not its docs' numbers. */
export const DEFAULT_LEVEL_POLICY: Readonly<LevelPolicy> = Object.freeze({
  handshake: 60,
  connIdle: 300,
  uplinkOnly: 1,
  downlinkOnly: 1,
});

/** The policy of a user level; a level with no entry gets v2ray's defaults. */
export function levelPolicy(config: Pick<Config, "policy">, level: number): LevelPolicy {
  return config.policy.levels[level] ?? { ...DEFAULT_LEVEL_POLICY };
}

// ---------------------------------------------------------------------------------------------
// Inbounds

export interface Account {
  user: string;
  pass: string;
}

interface InboundCommon {
  /** `tag` as given, or `<protocol>-<index>` (e.g. "socks-0") when absent. */
  tag: string;
  /** IP literal to listen on (IPv6 without brackets); default 127.0.0.1. */
  listen: string;
  port: number;
  /** Sniff HTTP Host / TLS SNI from a TCP connection's first bytes (off by default). */
  sniffing: SniffingConfig;
}

export interface SocksSettings {
  /** "password" when accounts are required. */
  auth: "noauth" | "password";
  accounts: Account[];
  /** Whether UDP ASSOCIATE is allowed. */
  udp: boolean;
  /** Address told to UDP ASSOCIATE clients; "" = the local address the client connected to. */
  ip: string;
  userLevel: number;
}

export interface SocksInboundConfig extends InboundCommon {
  protocol: "socks";
  settings: SocksSettings;
}

/** SOCKS5 and HTTP proxy on one port, told apart by the first byte; accounts serve both. */
export interface MixedInboundConfig extends InboundCommon {
  protocol: "mixed";
  settings: SocksSettings;
}

export interface HttpInboundConfig extends InboundCommon {
  protocol: "http";
  settings: {
    /** Empty = no authentication. */
    accounts: Account[];
    /** Seconds: connIdle of level 0 (v2ray 4.34's meaning); 0 = the policy's; 0 unless userLevel is 0. */
    timeout: number;
    userLevel: number;
  };
}

export interface DokodemoInboundConfig extends InboundCommon {
  /** "tunnel" in the JSON is read as this. */
  protocol: "dokodemo-door";
  settings: {
    /** Fixed destination host. */
    address: string;
    port: number;
    /** Which of tcp / udp to accept; default ["tcp"]. */
    network: Array<"tcp" | "udp">;
    userLevel: number;
  };
}

export interface VlessClient {
  /** Canonical UUID string (never logged). */
  id: string;
  idBytes: Uint8Array;
  level: number;
  email: string;
  /** Always "" for now: XTLS flows are refused. */
  flow: string;
}

export interface VlessInboundConfig extends InboundCommon {
  protocol: "vless";
  settings: {
    clients: VlessClient[];
    decryption: "none";
  };
  stream: InboundStreamConfig;
}

export type InboundConfig =
  | SocksInboundConfig
  | MixedInboundConfig
  | HttpInboundConfig
  | DokodemoInboundConfig
  | VlessInboundConfig;

// ---------------------------------------------------------------------------------------------
// Outbounds

export interface VlessUser {
  /** Canonical UUID string (never logged). */
  id: string;
  idBytes: Uint8Array;
  /** Always "" for now: XTLS flows are refused. */
  flow: string;
  encryption: "none";
}

export interface VlessServer {
  /** Domain or IP literal (IPv6 without brackets). */
  address: string;
  port: number;
  /** At least one. */
  users: VlessUser[];
}

export interface VlessOutboundConfig {
  protocol: "vless";
  /** `tag` as given, or the protocol name when absent. */
  tag: string;
  /** `settings.vnext`, at least one. */
  servers: VlessServer[];
  stream: StreamConfig;
}

export interface FreedomOutboundConfig {
  protocol: "freedom";
  tag: string;
  settings: {
    /** How a domain is dialled: as given, or looked up first (lib/outbound/freedom.ts). */
    domainStrategy: "AsIs" | "UseIP" | "UseIPv4" | "UseIPv6";
    /** Send everything here instead; "" address / 0 port = keep the original one. */
    redirect: { address: string; port: number } | null;
  };
}

export interface BlackholeOutboundConfig {
  protocol: "blackhole";
  tag: string;
  settings: {
    /** "http" answers with a 403 before closing, as v2ray does. */
    response: "none" | "http";
  };
}

export type OutboundConfig = VlessOutboundConfig | FreedomOutboundConfig | BlackholeOutboundConfig;

// ---------------------------------------------------------------------------------------------
// Transport (streamSettings)

/** A certificate with its private key (both PEM text), to present to the peer. */
export interface TlsCertificate {
  certificate: string;
  key: string;
}

/** Client side TLS (outbounds). */
export interface TlsClientConfig {
  /** SNI and the name verified; default: the server address. */
  serverName: string;
  /**
   * Accept any server certificate. Deno cannot do this per connection: main.ts relaunches the
   * process with `--unsafely-ignore-certificate-errors` for exactly these hosts
   * (see `insecureHosts()` in tls_settings.ts).
   */
  allowInsecure: boolean;
  /** Default ["h2"] for the http transport, ["h2", "http/1.1"] for tcp (v2ray's defaults). */
  alpn: string[];
  /** Extra trusted CAs (PEM), from certificates with `usage: "verify"`: added to the roots. */
  caCerts: string[];
  /** Trust only caCerts (at least one), not the built-in roots. */
  disableSystemRoot: boolean;
  /** The certificate with `usage: "encipherment"` (at most one), presented when asked. */
  clientCertificate?: TlsCertificate;
}

/** Server side TLS (vless inbounds). */
export interface TlsServerConfig {
  /**
   * At least one. Several: each serves the clients whose SNI names it (its DNS subjectAltNames,
   * else its CN; wildcards), the first serves the rest — v2ray 4.34's (Go's) rule.
   */
  certificates: TlsCertificate[];
  /** Default ["h2"] for the http transport (the only value it takes), ["h2", "http/1.1"] for tcp. */
  alpn: string[];
  /** As given; "" when absent. A server ignores it, as v2ray's does (Go's tls.Config). */
  serverName: string;
}

/** v2ray's "http" transport (HTTP/2), client side. */
export interface HttpTransportConfig {
  /** Host header values, one picked per request; default [the server address]. */
  host: string[];
  /** Request path, starting with "/"; default "/". */
  path: string;
  /** Default "PUT", v2ray's. */
  method: string;
  /** Extra request headers, lowercase names. */
  headers: Record<string, string[]>;
  /** Xray's `read_idle_timeout`: seconds without frames before a PING health check; 0 = off. */
  readIdleTimeout: number;
  /** Xray's `health_check_timeout`: seconds to wait for the PING ack; default 15. */
  healthCheckTimeout: number;
}

/** v2ray's "http" transport, server side. */
export interface HttpServerTransportConfig {
  /** Accepted Host values; [] = any. */
  host: string[];
  /** Path requests must use, starting with "/"; default "/". */
  path: string;
}

/** `wsSettings`, both sides: v2ray 4.34's keys plus v2fly's and Xray's early data. */
export interface WsTransportConfig {
  /** Request path, starting with "/", without Xray's `ed` query; default "/". */
  path: string;
  /** Request headers as given; a Host among them is the Host header (client side). */
  headers: Record<string, string>;
  /** Early data carried in the opening request, bytes; 0 = off (`maxEarlyData`, or `?ed=N`). */
  maxEarlyData: number;
  /** The header carrying it; "" = appended to the path (v2fly); `?ed=N` → Sec-WebSocket-Protocol. */
  earlyDataHeaderName: string;
}

/** Outbound `streamSettings`. The http transport requires TLS, as in v2ray. */
export type StreamConfig =
  & (
    | { network: "tcp"; security: "none" }
    | { network: "tcp"; security: "tls"; tls: TlsClientConfig }
    | { network: "http"; security: "tls"; tls: TlsClientConfig; http: HttpTransportConfig }
    | { network: "ws"; security: "none"; ws: WsTransportConfig }
    | { network: "ws"; security: "tls"; tls: TlsClientConfig; ws: WsTransportConfig }
  )
  & { timeouts?: StreamTimeouts };

/**
 * dray's own `streamSettings.dray` block (v2ray has no such deadlines; v2ray ignores the key):
 * how long a connection attempt and a stream's setup may take before the next server is tried.
 */
export interface StreamTimeouts {
  /** Seconds for TCP connect + TLS handshake (+ HTTP/2 SETTINGS); 0 = none. Default 4. */
  connectTimeout: number;
  /** Seconds from a stream's HEADERS to the response HEADERS (http transport); 0 = none. Default 2. */
  streamTimeout: number;
}

/** Inbound `streamSettings` (vless only). http without TLS is h2c. */
export type InboundStreamConfig =
  & (
    | { network: "tcp"; security: "none" }
    | { network: "tcp"; security: "tls"; tls: TlsServerConfig }
    | { network: "http"; security: "none"; http: HttpServerTransportConfig }
    | { network: "http"; security: "tls"; tls: TlsServerConfig; http: HttpServerTransportConfig }
    | { network: "ws"; security: "none"; ws: WsTransportConfig }
    | { network: "ws"; security: "tls"; tls: TlsServerConfig; ws: WsTransportConfig }
  )
  & {
    /**
     * Every connection starts with a PROXY protocol header (v1/v2), before TLS, whose source is
     * the client's address (`tcpSettings.acceptProxyProtocol` for tcp, `wsSettings.` for ws).
     */
    acceptProxyProtocol: boolean;
  };
