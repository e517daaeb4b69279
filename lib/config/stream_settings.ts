/**
 * `streamSettings`: the transport (`network` tcp | http/h2 | ws) and its security (`none` | `tls`), for
 * vless outbounds (client side) and vless inbounds (server side). TLS lives in tls_settings.ts.
 */
import type {
  HttpServerTransportConfig,
  HttpTransportConfig,
  InboundStreamConfig,
  StreamConfig,
  StreamTimeouts,
  TlsServerConfig,
  WsTransportConfig,
} from "./types.ts";
import { describe, join, MAX_U32, type Obj, type Reader } from "./reader.ts";
import { readTlsClient, readTlsServer } from "./tls_settings.ts";

type Network = "tcp" | "http" | "ws";
const NETWORKS: Record<string, Network> = {
  tcp: "tcp",
  http: "http",
  h2: "http",
  ws: "ws",
  websocket: "ws",
};
const SUPPORTED = "tcp, http, h2, ws";
const UNSUPPORTED_NETWORKS = [
  "kcp",
  "mkcp",
  "quic",
  "ds",
  "domainsocket",
  "grpc",
  "gun",
  "httpupgrade",
  "splithttp",
  "xhttp",
];
const STREAM_KEYS = [
  "network",
  "security",
  "tlsSettings",
  "tcpSettings",
  "httpSettings",
  "wsSettings",
  "sockopt",
  "dray",
];
const STREAM_UNSUPPORTED: Record<string, string> = {
  kcpSettings: "the kcp transport is",
  quicSettings: "the quic transport is",
  dsSettings: "the domainsocket transport is",
  grpcSettings: "the grpc transport is",
  xtlsSettings: "XTLS is",
  realitySettings: "REALITY is",
};

interface StreamBasics {
  network: Network;
  security: "none" | "tls";
  s: Obj;
  path: string;
}

function readStreamBasics(r: Reader, o: Obj, path: string): StreamBasics | undefined {
  const section = r.section(o, "streamSettings", path, STREAM_KEYS, STREAM_UNSUPPORTED);
  if (section === undefined) return undefined;
  const { o: s, path: sp } = section;
  let ok = true;

  let network: Network = "tcp";
  const n = s.network;
  if (n !== undefined && n !== null) {
    const np = join(sp, "network");
    if (typeof n !== "string") {
      ok = r.problem(np, `must be a string, got ${describe(n)}`) ?? false;
    } else if (Object.hasOwn(NETWORKS, n.toLowerCase())) {
      network = NETWORKS[n.toLowerCase()];
    } else if (UNSUPPORTED_NETWORKS.includes(n.toLowerCase())) {
      ok = r.unsupported(np, `${describe(n)} is`, SUPPORTED) ?? false;
    } else {
      ok = r.problem(np, `unknown network ${describe(n)} (supported: ${SUPPORTED})`) ?? false;
    }
  }

  let security: "none" | "tls" = "none";
  const sec = s.security;
  if (sec !== undefined && sec !== null && sec !== "") {
    const p = join(sp, "security");
    if (typeof sec !== "string") {
      ok = r.problem(p, `must be a string, got ${describe(sec)}`) ?? false;
    } else if (sec.toLowerCase() === "tls") security = "tls";
    else if (sec.toLowerCase() === "none") security = "none";
    else if (["xtls", "reality"].includes(sec.toLowerCase())) {
      ok = r.unsupported(p, `${describe(sec)} is`, "none, tls") ?? false;
    } else ok = r.problem(p, `unknown security ${describe(sec)} (supported: none, tls)`) ?? false;
  }

  const tcpSection = r.section(s, "tcpSettings", sp, ["header", "acceptProxyProtocol"]);
  if (tcpSection) {
    const { o: tcp, path: tp } = tcpSection;
    if (r.bool(tcp, "acceptProxyProtocol", tp) === undefined) ok = false;
    const header = r.optObject(tcp, "header", tp);
    if (header) {
      const type = header.type ?? "none";
      if (type !== "none") {
        r.unsupported(
          join(join(tp, "header"), "type"),
          `TCP header obfuscation (${describe(type)}) is`,
        );
      }
    }
  } else ok = false;

  if (s.wsSettings !== undefined && network !== "ws") {
    r.problem(join(sp, "wsSettings"), `is for network "ws", not "${network}"`);
  }
  const sockopt = r.optObject(s, "sockopt", sp);
  if (sockopt && Object.keys(sockopt).length > 0) {
    r.unsupported(join(sp, "sockopt"), "sockopt is");
  }
  return ok ? { network, security, s, path: sp } : undefined;
}

export function readOutboundStream(
  r: Reader,
  o: Obj,
  path: string,
  addresses: string[],
): StreamConfig | undefined {
  const b = readStreamBasics(r, o, path);
  if (b === undefined) return undefined;
  const { network, security, s, path: sp } = b;
  let ok = true;
  for (const key of ["tcpSettings", "wsSettings"]) {
    if ((s[key] as Obj | undefined)?.acceptProxyProtocol === true) {
      // v2ray ignores it on a client: nothing is accepted there.
      ok = r.problem(
        join(join(sp, key), "acceptProxyProtocol"),
        "is a server setting (inbounds only)",
      ) ?? false;
    }
  }
  const timeouts = readTimeouts(r, s, sp, network);
  if (timeouts === undefined) return undefined;
  const stream = readOutboundTransport(r, s, sp, network, security, addresses);
  return ok && stream ? { ...stream, timeouts } : undefined;
}

/**
 * `streamSettings.dray`: dray's deadlines (v2ray ignores the key). Seconds, whole; 0 turns one
 * off. `streamTimeout` only means something where streams share a connection (http).
 */
function readTimeouts(
  r: Reader,
  s: Obj,
  sp: string,
  network: Network,
): StreamTimeouts | undefined {
  const dp = join(sp, "dray");
  const d = r.optObject(s, "dray", sp) ?? {};
  r.keys(d, dp, ["connectTimeout", "streamTimeout"]);
  const connectTimeout = r.int(d, "connectTimeout", dp, 0, 3600, DEFAULT_CONNECT_TIMEOUT_S);
  const streamTimeout = r.int(d, "streamTimeout", dp, 0, 3600, DEFAULT_STREAM_TIMEOUT_S);
  if (network !== "http" && d.streamTimeout !== undefined) {
    return r.problem(
      join(dp, "streamTimeout"),
      `applies to the http transport only (streams on a shared connection); network is "${network}"`,
    );
  }
  if (connectTimeout === undefined || streamTimeout === undefined) return undefined;
  return { connectTimeout, streamTimeout };
}

/** dray's default deadlines, in seconds (see StreamTimeouts). */
export const DEFAULT_CONNECT_TIMEOUT_S = 4;
export const DEFAULT_STREAM_TIMEOUT_S = 2;

function readOutboundTransport(
  r: Reader,
  s: Obj,
  sp: string,
  network: Network,
  security: "none" | "tls",
  addresses: string[],
): StreamConfig | undefined {
  if (network === "http" && security !== "tls") {
    // v2ray's http dialer refuses to dial without TLS ("TLS must be enabled for http transport").
    return r.problem(
      join(sp, "security"),
      'the http transport requires TLS ("security": "tls"), as in v2ray',
    );
  }
  if (network === "ws") {
    const ws = readWs(r, s, sp);
    if (security === "none") return ws && { network, security, ws };
    const tls = readTlsClient(r, s, sp, network, addresses);
    return tls && ws && { network, security, tls, ws };
  }
  if (security === "none") return { network: "tcp", security: "none" };

  const tls = readTlsClient(r, s, sp, network, addresses);
  if (network === "tcp") return tls && { network, security, tls };
  const http = readHttpClient(r, s, sp, addresses);
  if (tls && !tls.alpn.includes("h2")) {
    r.problem(
      join(join(sp, "tlsSettings"), "alpn"),
      `the http transport needs "h2" in alpn, got ${JSON.stringify(tls.alpn)}`,
    );
    return undefined;
  }
  return tls && http && { network, security, tls, http };
}

/** RFC 9113 §8.2.2: connection-specific header fields MUST NOT appear in HTTP/2. */
const FORBIDDEN_HEADERS = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "host",
];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function readHttpClient(
  r: Reader,
  s: Obj,
  sp: string,
  addresses: string[],
): HttpTransportConfig | undefined {
  const hp = join(sp, "httpSettings");
  const h = r.optObject(s, "httpSettings", sp);
  if (h === undefined) return undefined;
  r.keys(h, hp, ["host", "path", "method", "headers", "read_idle_timeout", "health_check_timeout"]);
  let host = r.stringList(h, "host", hp);
  if (host && host.length === 0) {
    if (addresses.length > 1) {
      return r.problem(
        join(hp, "host"),
        "is required when vnext lists servers with different addresses",
      );
    }
    host = [addresses[0]];
  }
  const path = readPath(r, h, hp);
  const method = r.string(h, "method", hp, "PUT");
  if (method !== undefined && !TOKEN.test(method)) {
    r.problem(join(hp, "method"), `must be an HTTP method, got ${describe(method)}`);
  }
  const headers: Record<string, string[]> = {};
  const ho = r.optObject(h, "headers", hp);
  let headersOk = ho !== undefined;
  for (const [name, raw] of Object.entries(ho ?? {})) {
    const p = join(join(hp, "headers"), name);
    const lower = name.toLowerCase();
    if (!TOKEN.test(name)) {
      headersOk = r.problem(p, "is not a valid header name") ?? false;
    } else if (FORBIDDEN_HEADERS.includes(lower)) {
      headersOk = r.problem(
        p,
        lower === "host"
          ? 'set the Host with "host", not in headers'
          : "connection-specific headers are not allowed in HTTP/2 (RFC 9113 §8.2.2)",
      ) ?? false;
    } else {
      const values = typeof raw === "string" ? [raw] : raw;
      if (Array.isArray(values) && values.every((x) => typeof x === "string")) {
        headers[lower] = [...(headers[lower] ?? []), ...values];
      } else {
        headersOk = r.problem(p, `must be an array of strings, got ${describe(raw)}`) ?? false;
      }
    }
  }
  const readIdleTimeout = r.int(h, "read_idle_timeout", hp, 0, MAX_U32, 0);
  const healthCheckTimeout = r.int(h, "health_check_timeout", hp, 0, MAX_U32, 15);
  if (
    !host || path === undefined || method === undefined || !TOKEN.test(method) || !headersOk ||
    readIdleTimeout === undefined || healthCheckTimeout === undefined
  ) return undefined;
  return { host, path, method, headers, readIdleTimeout, healthCheckTimeout };
}

/** v2ray puts a "/" in front of a path that lacks one; so do we. */
function readPath(r: Reader, h: Obj, hp: string): string | undefined {
  const path = r.string(h, "path", hp, "/");
  if (path === undefined) return undefined;
  return path.startsWith("/") ? path : `/${path}`;
}

export function readInboundStream(
  r: Reader,
  o: Obj,
  path: string,
): InboundStreamConfig | undefined {
  const b = readStreamBasics(r, o, path);
  if (b === undefined) return undefined;
  const { network, security, s, path: sp } = b;
  if (s.dray !== undefined) {
    return r.unsupported(
      join(sp, "dray"),
      "streamSettings.dray (outbound deadlines) on an inbound is",
    );
  }
  let http: HttpServerTransportConfig | undefined;
  if (network === "http") {
    const hp = join(sp, "httpSettings");
    const h = r.optObject(s, "httpSettings", sp);
    if (h === undefined) return undefined;
    r.keys(h, hp, ["host", "path"]);
    const host = r.stringList(h, "host", hp);
    const p = readPath(r, h, hp);
    if (!host || p === undefined) return undefined;
    http = { host, path: p };
  }
  let tls: TlsServerConfig | undefined;
  if (security === "tls") {
    tls = readTlsServer(r, s, sp, network);
    if (tls === undefined) return undefined;
  }
  const acceptProxyProtocol = readAcceptProxyProtocol(r, s, sp, network);
  if (acceptProxyProtocol === undefined) return undefined;
  if (network === "ws") {
    const ws = readWs(r, s, sp);
    if (ws === undefined) return undefined;
    return tls
      ? { network, security: "tls", tls, ws, acceptProxyProtocol }
      : { network, security: "none", ws, acceptProxyProtocol };
  }
  if (network === "tcp") {
    return tls
      ? { network, security: "tls", tls, acceptProxyProtocol }
      : { network, security: "none", acceptProxyProtocol };
  }
  return tls
    ? { network, security: "tls", tls, http: http!, acceptProxyProtocol }
    : { network, security: "none", http: http!, acceptProxyProtocol };
}

/**
 * An inbound's `acceptProxyProtocol`, from the settings of its network as v2ray 4.34 reads it:
 * `tcpSettings` for tcp, `wsSettings` for ws (its http transport has none). The same key under
 * another network's settings, which v2ray would silently ignore, is refused by name.
 */
function readAcceptProxyProtocol(
  r: Reader,
  s: Obj,
  sp: string,
  network: Network,
): boolean | undefined {
  const own = network === "tcp" ? "tcpSettings" : network === "ws" ? "wsSettings" : undefined;
  const other = network === "tcp" ? "wsSettings" : "tcpSettings";
  if ((s[other] as Obj | undefined)?.acceptProxyProtocol === true) {
    return r.problem(
      join(join(sp, other), "acceptProxyProtocol"),
      `is for network "${other === "tcpSettings" ? "tcp" : "ws"}", not "${network}"` +
        (own ? ` (the ${network} one is ${own}.acceptProxyProtocol)` : ""),
    );
  }
  return own ? (s[own] as Obj | undefined)?.acceptProxyProtocol === true : false;
}

/** Headers the WebSocket handshake sets itself (gorilla's dialer refuses them as duplicates). */
const WS_OWN_HEADERS = [
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
];

/**
 * `wsSettings` as v2ray 4.34 (`path`, its misspelled `Path`, `headers`; `acceptProxyProtocol` is
 * read with the inbound's stream, see readAcceptProxyProtocol),
 * plus early data: v2fly's `maxEarlyData` + `earlyDataHeaderName`, and Xray's `?ed=N` in the path
 * (taken out of the path; the data goes in Sec-WebSocket-Protocol).
 */
function readWs(r: Reader, s: Obj, sp: string): WsTransportConfig | undefined {
  const section = r.section(s, "wsSettings", sp, [
    "path",
    "Path",
    "headers",
    "acceptProxyProtocol",
    "maxEarlyData",
    "earlyDataHeaderName",
  ], {
    useBrowserForwarding: "the browser dialer is",
    heartbeatPeriod: "heartbeatPeriod is (dray pings an idle WebSocket every 30 s)",
  });
  if (section === undefined) return undefined;
  const { o: w, path: wp } = section;
  let ok = r.bool(w, "acceptProxyProtocol", wp) !== undefined;
  // 4.34: "path", else the old misspelled key "Path".
  const key = typeof w.path === "string" && w.path !== "" ? "path" : "Path";
  const rawPath = r.string(w, key, wp, "");
  const headers: Record<string, string> = {};
  const ho = r.optObject(w, "headers", wp);
  if (ho === undefined) ok = false;
  for (const [name, value] of Object.entries(ho ?? {})) {
    const p = join(join(wp, "headers"), name);
    if (!TOKEN.test(name)) ok = r.problem(p, "is not a valid header name") ?? false;
    else if (WS_OWN_HEADERS.includes(name.toLowerCase())) {
      ok = r.problem(p, "is set by the WebSocket handshake itself") ?? false;
    } else if (typeof value !== "string") {
      ok = r.problem(p, `must be a string, got ${describe(value)}`) ?? false;
    } else headers[name] = value;
  }
  let maxEarlyData = r.int(w, "maxEarlyData", wp, 0, 0x7fffffff, 0);
  let earlyDataHeaderName = r.string(w, "earlyDataHeaderName", wp, "");
  if (earlyDataHeaderName && !TOKEN.test(earlyDataHeaderName)) {
    ok = r.problem(join(wp, "earlyDataHeaderName"), "is not a valid header name") ?? false;
  }
  if (rawPath === undefined || maxEarlyData === undefined || earlyDataHeaderName === undefined) {
    return undefined;
  }
  let path = rawPath === "" ? "/" : rawPath.startsWith("/") ? rawPath : `/${rawPath}`;
  const q = path.indexOf("?");
  if (q >= 0) {
    const params = new URLSearchParams(path.slice(q + 1));
    const ed = params.get("ed");
    if (ed !== null) {
      const pp = join(wp, key);
      if (!/^\d+$/.test(ed) || Number(ed) > 0x7fffffff) {
        return r.problem(pp, `ed must be a number of bytes, got ${describe(ed)}`);
      }
      if (maxEarlyData > 0) {
        return r.problem(pp, "ed and maxEarlyData both set early data; keep one");
      }
      params.delete("ed");
      const rest = params.toString();
      path = path.slice(0, q) + (rest ? `?${rest}` : "");
      maxEarlyData = Number(ed);
      earlyDataHeaderName = "Sec-WebSocket-Protocol";
    }
  }
  return ok ? { path, headers, maxEarlyData, earlyDataHeaderName } : undefined;
}
