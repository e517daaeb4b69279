/**
 * `vless://` share links, the standard of Xray-core discussion #716:
 *
 *   vless://<id>@<host>:<port>?type=…&security=…&sni=…&alpn=…&host=…&path=…&flow=…
 *     &encryption=none#<name>
 *
 * For `type=ws`, `host` is the Host header and early data is Xray's `ed`: in the path
 * (`path=/ray?ed=2048`) or as its own parameter (`ed=2048`).
 *
 * Every value is percent-encoded (encodeURIComponent); lists (alpn, host) are comma-separated
 * without spaces; an IPv6 host is in brackets. Omitted: `type` = tcp, `security` = none,
 * `encryption` = none (but an empty one is an error), `sni` and `host` = the server host,
 * `path` = "/". `allowInsecure=1` (or `insecure=1`) is accepted on input.
 *
 * A link becomes a v2ray JSON config ({@link linkToV2rayJson}) with local SOCKS5/HTTP inbounds,
 * and a parsed Config becomes a link again ({@link linkFromConfig}), in the canonical form that
 * leaves out every value equal to its default.
 */
import { parseConfigObject } from "./parse.ts";
import { DEFAULT_ALPN } from "./tls_settings.ts";
import type { Config, VlessOutboundConfig } from "./types.ts";
import { parseUserId } from "./uuid.ts";
import { messageOf } from "../error_message.ts";

export interface VlessLink {
  /** The id as written (a UUID or a 1-30 byte string); validated. */
  id: string;
  /** Domain or IP literal, IPv6 without brackets. */
  address: string;
  port: number;
  /** "h2" is kept as written; both mean v2ray's http transport. */
  type: "tcp" | "http" | "h2" | "ws";
  security: "none" | "tls";
  /** "" = the server host. */
  sni: string;
  /** [] = the transport's default. */
  alpn: string[];
  /** [] = the server host. */
  host: string[];
  path: string;
  flow: string;
  encryption: "none";
  allowInsecure: boolean;
  /** The `#fragment`, decoded; "" when absent. */
  name: string;
}

/** Default outbound tag of a link without a name; a name becomes the tag. */
export const DEFAULT_LINK_TAG = "proxy";

function fail(field: string, reason: string): SyntaxError {
  return new SyntaxError(`Cannot parse share link: ${field}: ${reason}`);
}

function decode(field: string, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch (err) {
    throw new SyntaxError(`Cannot parse share link: ${field}: bad percent-encoding`, {
      cause: err,
    });
  }
}

const KNOWN_PARAMS = [
  "type",
  "security",
  "sni",
  "alpn",
  "host",
  "path",
  "flow",
  "encryption",
  "allowInsecure",
  "insecure",
  "headerType",
  "ed",
];
/** Parameters of features dray lacks: refused when set to anything. */
const UNSUPPORTED_PARAMS: Record<string, string> = {
  fp: "uTLS fingerprints are",
  pbk: "REALITY is",
  sid: "REALITY is",
  spx: "REALITY is",
  serviceName: "the grpc transport is",
  mode: "the grpc transport is",
  seed: "the kcp transport is",
  quicSecurity: "the quic transport is",
  key: "the quic transport is",
};
const UNSUPPORTED_TYPES = ["kcp", "quic", "grpc", "httpupgrade", "splithttp", "xhttp"];

/** Parses a `vless://` link. Throws SyntaxError naming the field, e.g. `… port: is required`. */
export function parseVlessLink(text: string): VlessLink {
  const link = text.trim();
  const schemeEnd = link.indexOf("://");
  const scheme = schemeEnd < 0 ? "" : link.slice(0, schemeEnd);
  if (scheme.toLowerCase() !== "vless") {
    throw fail(
      "scheme",
      `must be "vless://", got ${JSON.stringify(scheme ? scheme + "://" : link.slice(0, 20))}`,
    );
  }
  let rest = link.slice(schemeEnd + 3);

  let name = "";
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    name = decode("name", rest.slice(hash + 1));
    rest = rest.slice(0, hash);
  }
  let query = "";
  const q = rest.indexOf("?");
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  // A path before the query ("host:443/?type=…") is allowed by URL syntax; it carries nothing.
  if (rest.endsWith("/")) rest = rest.slice(0, -1);

  const at = rest.lastIndexOf("@");
  if (at < 0) throw fail("id", "is required (vless://<id>@<host>:<port>)");
  const id = decode("id", rest.slice(0, at));
  if (id === "") throw fail("id", "is required (vless://<id>@<host>:<port>)");
  try {
    parseUserId(id);
  } catch (err) {
    throw new SyntaxError(`Cannot parse share link: id: ${messageOf(err)}`, {
      cause: err,
    });
  }

  const { address, port } = parseHostPort(rest.slice(at + 1));
  const params = parseQuery(query);
  const get = (k: string) => params.get(k);

  const typeRaw = get("type") ?? "tcp";
  if (!["tcp", "http", "h2", "ws"].includes(typeRaw)) {
    if (UNSUPPORTED_TYPES.includes(typeRaw)) {
      throw fail("type", `"${typeRaw}" is not supported by dray (supported: tcp, http, h2, ws)`);
    }
    throw fail("type", `unknown type ${JSON.stringify(typeRaw)} (supported: tcp, http, h2, ws)`);
  }
  const type = typeRaw as VlessLink["type"];

  const securityRaw = get("security") ?? "none";
  if (securityRaw !== "none" && securityRaw !== "tls") {
    if (securityRaw === "xtls" || securityRaw === "reality") {
      throw fail("security", `"${securityRaw}" is not supported by dray (supported: none, tls)`);
    }
    throw fail(
      "security",
      `unknown security ${JSON.stringify(securityRaw)} (supported: none, tls)`,
    );
  }
  const security = securityRaw as VlessLink["security"];
  if ((type === "http" || type === "h2") && security !== "tls") {
    throw fail("security", `the http transport requires TLS ("security=tls"), as in v2ray`);
  }

  const encryption = get("encryption");
  if (encryption === "") throw fail("encryption", 'must not be empty (use "encryption=none")');
  if (encryption !== undefined && encryption !== "none") {
    throw fail("encryption", `must be "none", got ${JSON.stringify(encryption)}`);
  }
  const flow = get("flow") ?? "";
  if (flow !== "") {
    throw fail("flow", `flow ${JSON.stringify(flow)} (XTLS) is not supported by dray`);
  }
  const headerType = get("headerType") ?? "none";
  if (headerType !== "none") {
    throw fail(
      "headerType",
      `header obfuscation (${JSON.stringify(headerType)}) is not supported by dray`,
    );
  }

  const insecureText = get("allowInsecure") ?? get("insecure") ?? "0";
  if (!["0", "1", "true", "false"].includes(insecureText)) {
    throw fail("allowInsecure", `must be 0 or 1, got ${JSON.stringify(insecureText)}`);
  }
  const list = (k: string) => (get(k) ?? "").split(",").filter((s) => s !== "");
  const sni = get("sni") ?? "";
  const alpn = list("alpn");
  if ((type === "http" || type === "h2") && alpn.length > 0 && !alpn.includes("h2")) {
    throw fail("alpn", `the http transport needs "h2" in alpn, got ${JSON.stringify(get("alpn"))}`);
  }
  let path = get("path") ?? "/";
  if (path === "") path = "/";
  if (!path.startsWith("/")) path = `/${path}`;
  const ed = get("ed");
  if (ed !== undefined) {
    if (type !== "ws") throw fail("ed", "early data is for type=ws only");
    if (!/^\d+$/.test(ed)) throw fail("ed", `must be a number of bytes, got ${JSON.stringify(ed)}`);
    if (!/[?&]ed=/.test(path)) path += `${path.includes("?") ? "&" : "?"}ed=${ed}`;
  }

  return {
    id,
    address,
    port,
    type,
    security,
    sni,
    alpn,
    host: list("host"),
    path,
    flow,
    encryption: "none",
    allowInsecure: insecureText === "1" || insecureText === "true",
    name,
  };
}

function parseHostPort(text: string): { address: string; port: number } {
  let address: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw fail("host", `unclosed "[" in ${JSON.stringify(text)}`);
    address = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      throw fail("host", `unexpected ${JSON.stringify(after)} after the IPv6 address`);
    }
    portText = after === "" ? undefined : after.slice(1);
    if (!isIpv6(address)) throw fail("host", `${JSON.stringify(address)} is not an IPv6 address`);
  } else {
    const colons = text.split(":").length - 1;
    if (colons > 1) {
      throw fail(
        "host",
        `an IPv6 address must be in brackets, as in vless://<id>@[::1]:443, got ${
          JSON.stringify(text)
        }`,
      );
    }
    const c = text.indexOf(":");
    address = c < 0 ? text : text.slice(0, c);
    portText = c < 0 ? undefined : text.slice(c + 1);
    address = decode("host", address);
    if (address === "") throw fail("host", "is required (vless://<id>@<host>:<port>)");
    // Host names and IPv4 literals alike (IPv6 came in brackets, above).
    if (!/^[A-Za-z0-9._-]+$/.test(address)) {
      throw fail("host", `${JSON.stringify(address)} is not a host name or IP address`);
    }
  }
  if (portText === undefined || portText === "") {
    throw fail("port", "is required (vless://<id>@<host>:<port>)");
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw fail("port", `must be an integer 1-65535, got ${JSON.stringify(portText)}`);
  }
  return { address, port };
}

function isIpv6(host: string): boolean {
  if (!host.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(host)) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}

function parseQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  if (query === "") return params;
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = decode("query", eq < 0 ? part : part.slice(0, eq));
    const value = decode(key, eq < 0 ? "" : part.slice(eq + 1));
    // The standard forbids repeating a field; taking either copy would be a guess.
    if (params.has(key)) throw fail(key, "appears more than once");
    if (Object.hasOwn(UNSUPPORTED_PARAMS, key)) {
      if (value !== "") throw fail(key, `${UNSUPPORTED_PARAMS[key]} not supported by dray`);
      continue;
    }
    if (!KNOWN_PARAMS.includes(key)) throw fail(key, "unknown parameter");
    params.set(key, value);
  }
  return params;
}

/** Formats a link in the order the standard lists its fields, leaving out empty values. */
export function formatVlessLink(link: VlessLink): string {
  const enc = encodeURIComponent;
  const host = link.address.includes(":") ? `[${link.address}]` : link.address;
  const params: Array<[string, string]> = [["type", link.type], ["security", link.security]];
  if (link.sni !== "") params.push(["sni", link.sni]);
  if (link.alpn.length > 0) params.push(["alpn", link.alpn.join(",")]);
  if (link.host.length > 0) params.push(["host", link.host.join(",")]);
  if (link.path !== "/") params.push(["path", link.path]);
  if (link.flow !== "") params.push(["flow", link.flow]);
  if (link.allowInsecure) params.push(["allowInsecure", "1"]);
  params.push(["encryption", link.encryption]);
  const query = params.map(([k, v]) => `${k}=${enc(v)}`).join("&");
  const name = link.name === "" ? "" : `#${enc(link.name)}`;
  return `vless://${enc(link.id)}@${host}:${link.port}?${query}${name}`;
}

/** A local listener for {@link linkToV2rayJson}; null leaves that inbound out. */
export interface ListenAddress {
  host: string;
  port: number;
}

export interface LinkInbounds {
  /** Default 127.0.0.1:1080. */
  socks?: ListenAddress | null;
  /** Default 127.0.0.1:8080. */
  http?: ListenAddress | null;
}

/** The v2ray JSON config a link stands for: local inbounds plus one vless outbound. */
export function linkToV2rayJson(
  link: VlessLink,
  inbounds: LinkInbounds = {},
): Record<string, unknown> {
  const socks = inbounds.socks === undefined ? { host: "127.0.0.1", port: 1080 } : inbounds.socks;
  const http = inbounds.http === undefined ? { host: "127.0.0.1", port: 8080 } : inbounds.http;
  const ins: unknown[] = [];
  if (socks) {
    ins.push({
      tag: "socks",
      protocol: "socks",
      listen: socks.host,
      port: socks.port,
      settings: { udp: true },
    });
  }
  if (http) ins.push({ tag: "http", protocol: "http", listen: http.host, port: http.port });

  const user: Record<string, unknown> = { id: link.id, encryption: "none" };
  if (link.flow !== "") user.flow = link.flow;
  const stream: Record<string, unknown> = { network: link.type, security: link.security };
  if (link.security === "tls") {
    const tls: Record<string, unknown> = {};
    if (link.sni !== "") tls.serverName = link.sni;
    if (link.allowInsecure) tls.allowInsecure = true;
    if (link.alpn.length > 0) tls.alpn = link.alpn;
    stream.tlsSettings = tls;
  }
  if (link.type === "ws") {
    const ws: Record<string, unknown> = { path: link.path };
    if (link.host.length > 0) ws.headers = { Host: link.host[0] };
    stream.wsSettings = ws;
  } else if (link.type !== "tcp") {
    const http: Record<string, unknown> = { path: link.path };
    if (link.host.length > 0) http.host = link.host;
    stream.httpSettings = http;
  }
  return {
    log: { loglevel: "warning" },
    inbounds: ins,
    outbounds: [{
      tag: link.name === "" ? DEFAULT_LINK_TAG : link.name,
      protocol: "vless",
      settings: { vnext: [{ address: link.address, port: link.port, users: [user] }] },
      streamSettings: stream,
    }],
  };
}

/** Parses a link straight into a Config with local inbounds. Throws SyntaxError or ConfigError. */
export function configFromLink(text: string, inbounds: LinkInbounds = {}): Config {
  return parseConfigObject(linkToV2rayJson(parseVlessLink(text), inbounds));
}

/**
 * The link of a Config's first vless outbound (its first server and user), in canonical form:
 * values equal to their defaults are left out. Throws RangeError when there is no vless outbound.
 */
export function linkFromConfig(
  config: Config,
  opts: { onLoss?: (what: string) => void } = {},
): string {
  const ob = config.outbounds.find((o): o is VlessOutboundConfig => o.protocol === "vless");
  if (ob === undefined) {
    throw new RangeError("Cannot make a share link: the config has no vless outbound");
  }
  const server = ob.servers[0];
  const user = server.users[0];
  const link: VlessLink = {
    id: user.id,
    address: server.address,
    port: server.port,
    type: ob.stream.network,
    security: ob.stream.security,
    sni: "",
    alpn: [],
    host: [],
    path: "/",
    flow: user.flow,
    encryption: "none",
    allowInsecure: false,
    name: ob.tag === DEFAULT_LINK_TAG ? "" : ob.tag,
  };
  const s = ob.stream;
  if (s.security === "tls") {
    if (s.tls.serverName !== server.address) link.sni = s.tls.serverName;
    const defaultAlpn = DEFAULT_ALPN[s.network];
    if (s.tls.alpn.join(",") !== defaultAlpn.join(",")) link.alpn = s.tls.alpn;
    link.allowInsecure = s.tls.allowInsecure;
  }
  if (s.network === "http") {
    if (s.http.host.join(",") !== server.address) link.host = s.http.host;
    link.path = s.http.path;
  }
  if (s.network === "ws") {
    const host = Object.entries(s.ws.headers).find(([n]) => n.toLowerCase() === "host")?.[1];
    if (host !== undefined) link.host = [host];
    link.path = s.ws.path;
    if (s.ws.maxEarlyData > 0 && s.ws.earlyDataHeaderName === "Sec-WebSocket-Protocol") {
      link.path += `${link.path.includes("?") ? "&" : "?"}ed=${s.ws.maxEarlyData}`;
    }
  }
  // What a link cannot carry is reported, not dropped silently.
  const lost = (what: string) => opts.onLoss?.(what);
  if (ob.servers.length > 1 || server.users.length > 1) lost("servers and users after the first");
  if (s.security === "tls") {
    if (s.tls.caCerts.length > 0 || s.tls.clientCertificate) lost("tlsSettings.certificates");
    if (s.tls.disableSystemRoot) lost("tlsSettings.disableSystemRoot");
  }
  if (s.network === "ws") {
    if (Object.keys(s.ws.headers).some((n) => n.toLowerCase() !== "host")) {
      lost("wsSettings.headers other than Host");
    }
    if (s.ws.maxEarlyData > 0 && s.ws.earlyDataHeaderName !== "Sec-WebSocket-Protocol") {
      lost("wsSettings.maxEarlyData/earlyDataHeaderName (links carry only Xray's ed)");
    }
  }
  if (s.network === "http") {
    if (s.http.method !== "PUT") lost("httpSettings.method");
    if (Object.keys(s.http.headers).length > 0) lost("httpSettings.headers");
    if (s.http.readIdleTimeout !== 0 || s.http.healthCheckTimeout !== 15) {
      lost("httpSettings.read_idle_timeout/health_check_timeout");
    }
  }
  return formatVlessLink(link);
}
