/**
 * v2ray 4.34 JSON (with comments) → {@link Config}, every default filled in.
 *
 * Validation collects every problem before failing, one `path: reason` line each, e.g.
 * `outbounds[0].settings.vnext[0].port: must be an integer 1-65535, got "abc"`, and throws them
 * together as one {@link ConfigError}. Features v2ray has and dray lacks are refused by name,
 * unknown keys are refused as such: nothing in a config is silently ignored.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { parseJsonc } from "./jsonc.ts";
import { parseUserId, USER_ID_RULE } from "./uuid.ts";
import {
  type Account,
  type Config,
  DEFAULT_LEVEL_POLICY,
  type DokodemoInboundConfig,
  type FreedomOutboundConfig,
  type HttpServerTransportConfig,
  type HttpTransportConfig,
  type InboundConfig,
  type InboundStreamConfig,
  type LevelPolicy,
  type LogConfig,
  type OutboundConfig,
  type PolicyConfig,
  type SocksSettings,
  type StreamConfig,
  type TlsClientConfig,
  type TlsServerConfig,
  type VlessClient,
  type VlessServer,
  type VlessUser,
} from "./types.ts";
import type { LogLevel } from "../log.ts";

/** Every problem found in a config, one `path: reason` line each. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[], options?: ErrorOptions) {
    super(problems.join("\n"), options);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface ParseConfigOptions {
  /**
   * Directory that relative `certificateFile`/`keyFile` paths are resolved against: the config
   * file's directory. (v2ray resolves them against its working directory; a config that works
   * from wherever it is started is the better default.) Default: the current directory.
   */
  baseDir?: string;
  /** Reads a file as text; default Deno.readTextFileSync. Injected by tests. */
  readFile?: (path: string) => string;
}

/** Parses and validates config text (JSON with comments). Throws ConfigError. */
export function parseConfig(text: string, opts: ParseConfigOptions = {}): Config {
  let value: unknown;
  try {
    value = parseJsonc(text);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new ConfigError([`Cannot parse config: ${err.message}`], { cause: err });
    }
    throw err;
  }
  return parseConfigObject(value, opts);
}

/** Validates an already parsed JSON value (e.g. one built from a share link). Throws ConfigError. */
export function parseConfigObject(value: unknown, opts: ParseConfigOptions = {}): Config {
  const r = new Reader(opts);
  const config = readRoot(r, value);
  if (r.problems.length > 0 || config === undefined) {
    throw new ConfigError(r.problems.length > 0 ? r.problems : ["config: is empty"]);
  }
  return config;
}

/** The config file's directory, for {@link ParseConfigOptions.baseDir}. */
export function configBaseDir(configPath: string): string {
  return dirname(resolve(configPath));
}

/**
 * Hosts whose certificates must not be verified: the TLS server name of every vless outbound
 * with `allowInsecure`. Deno can only skip verification process-wide, per host name
 * (`--unsafely-ignore-certificate-errors=HOST,…`), so main.ts passes exactly these.
 */
export function insecureHosts(config: Config): string[] {
  const hosts = new Set<string>();
  for (const o of config.outbounds) {
    if (o.protocol !== "vless" || o.stream.security !== "tls" || !o.stream.tls.allowInsecure) {
      continue;
    }
    hosts.add(o.stream.tls.serverName);
  }
  return [...hosts];
}

// ---------------------------------------------------------------------------------------------
// The reader: typed accessors that record a problem and return undefined on a bad value.

type Obj = Record<string, unknown>;

/** `got …` text for a value: strings quoted, arrays and objects by kind (they can be long). */
function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") {
    return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  }
  return String(v);
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function oneOf(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(", ");
}

const MAX_U32 = 4294967295;

class Reader {
  readonly problems: string[] = [];
  readonly baseDir: string;
  readonly readFile: (path: string) => string;

  constructor(opts: ParseConfigOptions) {
    this.baseDir = opts.baseDir ?? Deno.cwd();
    this.readFile = opts.readFile ?? ((p) => Deno.readTextFileSync(p));
  }

  problem(path: string, reason: string): undefined {
    this.problems.push(`${path}: ${reason}`);
    return undefined;
  }

  /** `what` ends in "is"/"are": `"ws" is not supported by dray (supported: tcp, http, h2)`. */
  unsupported(path: string, what: string, supported?: string): undefined {
    const tail = supported === undefined ? "" : ` (supported: ${supported})`;
    return this.problem(path, `${what} not supported by dray${tail}`);
  }

  /**
   * Checks the keys of `o`: each must be in `known` (handled by the caller) or `unsupported`
   * (a v2ray feature dray lacks: refused with the given words). Anything else is unknown.
   */
  keys(o: Obj, path: string, known: readonly string[], unsupported: Record<string, string> = {}) {
    for (const key of Object.keys(o)) {
      if (known.includes(key)) continue;
      if (Object.hasOwn(unsupported, key)) this.unsupported(join(path, key), unsupported[key]);
      else this.problem(join(path, key), "unknown field");
    }
  }

  object(v: unknown, path: string): Obj | undefined {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Obj;
    return this.problem(path, `must be an object, got ${describe(v)}`);
  }

  /** An optional object member; `{}` when absent or null. */
  optObject(o: Obj, key: string, path: string): Obj | undefined {
    const v = o[key];
    if (v === undefined || v === null) return {};
    return this.object(v, join(path, key));
  }

  array(v: unknown, path: string): unknown[] | undefined {
    if (Array.isArray(v)) return v;
    return this.problem(path, `must be an array, got ${describe(v)}`);
  }

  optArray(o: Obj, key: string, path: string): unknown[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return [];
    return this.array(v, join(path, key));
  }

  string(o: Obj, key: string, path: string, fallback: string): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "string") return v;
    return this.problem(join(path, key), `must be a string, got ${describe(v)}`);
  }

  requiredString(o: Obj, key: string, path: string): string | undefined {
    const v = o[key];
    if (v === undefined || v === null || v === "") {
      return this.problem(join(path, key), "is required");
    }
    return this.string(o, key, path, "");
  }

  bool(o: Obj, key: string, path: string, fallback = false): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "boolean") return v;
    return this.problem(join(path, key), `must be true or false, got ${describe(v)}`);
  }

  int(o: Obj, key: string, path: string, min: number, max: number, fallback: number) {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    return this.problem(join(path, key), `must be an integer ${min}-${max}, got ${describe(v)}`);
  }

  /** A required port. `digitStrings`: v2ray's inbound `port` also takes "1080". */
  port(o: Obj, key: string, path: string, digitStrings = false): number | undefined {
    const p = join(path, key);
    let v = o[key];
    if (v === undefined || v === null) return this.problem(p, "is required");
    if (digitStrings && typeof v === "string") {
      if (/^\d+-\d+$/.test(v)) return this.unsupported(p, `port ranges (${describe(v)}) are`);
      if (v.startsWith("env:")) return this.unsupported(p, `ports from the environment are`);
      if (/^\d{1,5}$/.test(v)) v = Number(v);
    }
    if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535) return v;
    return this.problem(p, `must be an integer 1-65535, got ${describe(v)}`);
  }

  /** One of `values`, compared without case as v2ray does; returns the canonical spelling. */
  choice<T extends string>(
    o: Obj,
    key: string,
    path: string,
    values: readonly T[],
    fallback: T,
  ): T | undefined {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "string") {
      const hit = values.find((x) => x.toLowerCase() === v.toLowerCase());
      if (hit !== undefined) return hit;
    }
    return this.problem(join(path, key), `must be one of ${oneOf(values)}, got ${describe(v)}`);
  }

  /** v2ray's StringList: an array of strings, or one string split at commas. */
  stringList(o: Obj, key: string, path: string): string[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (typeof v === "string") return v === "" ? [] : v.split(",");
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
    return this.problem(
      join(path, key),
      `must be a string or an array of strings, got ${describe(v)}`,
    );
  }

  /** `{"enabled": false}` blocks (mux, sniffing) are fine; enabling them is not. */
  disabledOnly(o: Obj, key: string, path: string, what: string): void {
    const v = o[key];
    if (v === undefined || v === null) return;
    const b = this.object(v, join(path, key));
    if (b === undefined) return;
    if (b.enabled === true) this.unsupported(join(join(path, key), "enabled"), what);
  }

  /** Reads a file named in the config, relative to the config's directory. */
  file(name: string, path: string): string | undefined {
    const full = isAbsolute(name) ? name : resolve(this.baseDir, name);
    try {
      return this.readFile(full);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return this.problem(path, `cannot read ${JSON.stringify(full)}: ${why}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Root, log, policy, routing

const ROOT_UNSUPPORTED: Record<string, string> = {
  dns: "the built-in DNS server (dns) is",
  api: "the gRPC API (api) is",
  stats: "statistics (stats) are",
  reverse: "reverse proxy (reverse) is",
  transport: "the global transport block (transport) is",
  fakedns: "fake DNS (fakedns) is",
  observatory: "observatory is",
  browserForwarder: "the browser forwarder is",
  inbound: "the pre-4.0 inbound block (use inbounds[]) is",
  outbound: "the pre-4.0 outbound block (use outbounds[]) is",
  inboundDetour: "inboundDetour (use inbounds[]) is",
  outboundDetour: "outboundDetour (use outbounds[]) is",
};

function readRoot(r: Reader, value: unknown): Config | undefined {
  const root = r.object(value, "config");
  if (root === undefined) return undefined;
  r.keys(root, "", ["log", "inbounds", "outbounds", "policy", "routing"], ROOT_UNSUPPORTED);

  const log = readLog(r, root);
  const policy = readPolicy(r, root);
  readRouting(r, root);

  const inbounds: InboundConfig[] = [];
  const rawIn = root.inbounds === undefined ? undefined : r.array(root.inbounds, "inbounds");
  if (root.inbounds === undefined) r.problem("inbounds", "is required");
  else if (rawIn !== undefined && rawIn.length === 0) r.problem("inbounds", "must not be empty");
  rawIn?.forEach((v, i) => {
    const ib = readInbound(r, v, `inbounds[${i}]`);
    if (ib) inbounds.push(ib);
  });
  if (rawIn && inbounds.length === rawIn.length) {
    checkListenConflicts(r, inbounds);
    nameTags(r, rawIn, inbounds, "inbounds");
  }

  const outbounds: OutboundConfig[] = [];
  const rawOut = root.outbounds === undefined ? undefined : r.array(root.outbounds, "outbounds");
  if (root.outbounds === undefined || rawOut?.length === 0) {
    r.problem("outbounds", "must have at least one outbound (the first is the default route)");
  }
  rawOut?.forEach((v, i) => {
    const ob = readOutbound(r, v, `outbounds[${i}]`);
    if (ob) outbounds.push(ob);
  });
  if (rawOut && outbounds.length === rawOut.length) nameTags(r, rawOut, outbounds, "outbounds");

  if (log === undefined || policy === undefined) return undefined;
  return { log, inbounds, outbounds, policy };
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error", "none"];

function readLog(r: Reader, root: Obj): LogConfig | undefined {
  const o = r.optObject(root, "log", "");
  if (o === undefined) return undefined;
  r.keys(o, "log", ["loglevel", "access", "error"], { dnsLog: "DNS query logging (dnsLog) is" });
  const loglevel = r.choice(o, "loglevel", "log", LOG_LEVELS, "warning");
  const access = r.string(o, "access", "log", "");
  const error = r.string(o, "error", "log", "");
  if (loglevel === undefined || access === undefined || error === undefined) return undefined;
  return { loglevel, access, error };
}

function readPolicy(r: Reader, root: Obj): PolicyConfig | undefined {
  const levels: Record<number, LevelPolicy> = { 0: { ...DEFAULT_LEVEL_POLICY } };
  const o = r.optObject(root, "policy", "");
  if (o === undefined) return undefined;
  r.keys(o, "policy", ["levels", "system"]);
  const system = r.optObject(o, "system", "policy");
  if (system) {
    for (const key of Object.keys(system)) {
      if (system[key] !== false) r.unsupported(`policy.system.${key}`, "statistics are");
    }
  }
  const lv = r.optObject(o, "levels", "policy");
  if (lv === undefined) return undefined;
  for (const [key, raw] of Object.entries(lv)) {
    const path = `policy.levels.${key}`;
    if (!/^\d{1,9}$/.test(key)) {
      r.problem(path, "a level must be a non-negative integer");
      continue;
    }
    const p = r.object(raw, path);
    if (p === undefined) continue;
    r.keys(p, path, ["handshake", "connIdle", "uplinkOnly", "downlinkOnly", ...STATS_KEYS], {
      bufferSize: "bufferSize is",
    });
    for (const k of STATS_KEYS) {
      if (p[k] !== undefined && p[k] !== false) r.unsupported(join(path, k), "statistics are");
    }
    const level: LevelPolicy = { ...DEFAULT_LEVEL_POLICY };
    for (const k of ["handshake", "connIdle", "uplinkOnly", "downlinkOnly"] as const) {
      const v = r.int(p, k, path, 0, MAX_U32, DEFAULT_LEVEL_POLICY[k]);
      if (v !== undefined) level[k] = v;
    }
    levels[Number(key)] = level;
  }
  return { levels };
}

const STATS_KEYS = ["statsUserUplink", "statsUserDownlink"];

function readRouting(r: Reader, root: Obj): void {
  const o = r.optObject(root, "routing", "");
  if (o === undefined) return;
  r.keys(o, "routing", ["domainStrategy", "domainMatcher", "rules", "balancers", "settings"]);
  r.choice(o, "domainStrategy", "routing", ["AsIs", "IPIfNonMatch", "IPOnDemand"], "AsIs");
  r.string(o, "domainMatcher", "routing", "");
  const rules = r.optArray(o, "rules", "routing");
  if (rules && rules.length > 0) {
    r.problem(
      "routing.rules",
      "routing rules are not supported by dray yet (everything goes to the first outbound)",
    );
  }
  const balancers = r.optArray(o, "balancers", "routing");
  if (balancers && balancers.length > 0) r.unsupported("routing.balancers", "balancers are");
  if (o.settings !== undefined) r.unsupported("routing.settings", "routing rules are");
}

// ---------------------------------------------------------------------------------------------
// Inbounds

const INBOUND_PROTOCOLS = ["socks", "http", "mixed", "dokodemo-door", "tunnel", "vless"] as const;
const V2RAY_ONLY_INBOUNDS = ["vmess", "trojan", "shadowsocks", "mtproto"];

function readInbound(r: Reader, v: unknown, path: string): InboundConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, ["protocol", "port", "listen", "tag", "settings", "streamSettings", "sniffing"], {
    allocate: "port allocation (allocate) is",
    domainOverride: "domainOverride is",
  });
  r.disabledOnly(o, "sniffing", path, "sniffing is");
  const protocol = readProtocol(r, o, path, INBOUND_PROTOCOLS, V2RAY_ONLY_INBOUNDS);
  const listen = readListen(r, o, path);
  const port = r.port(o, "port", path, true);
  const tag = r.string(o, "tag", path, "");
  const settings = r.optObject(o, "settings", path);
  const sp = join(path, "settings");
  if (protocol === undefined || settings === undefined) return undefined;

  if (protocol !== "vless" && o.streamSettings !== undefined && o.streamSettings !== null) {
    r.unsupported(join(path, "streamSettings"), `streamSettings on a ${protocol} inbound are`);
  }
  const base = { tag: tag ?? "", listen: listen ?? "", port: port ?? 0 };
  const ok = listen !== undefined && port !== undefined && tag !== undefined;
  switch (protocol) {
    case "socks":
    case "mixed": {
      const s = readSocksSettings(r, settings, sp);
      return s && ok ? { protocol, ...base, settings: s } : undefined;
    }
    case "http": {
      r.keys(settings, sp, ["accounts", "timeout", "allowTransparent", "userLevel"]);
      const accounts = readAccounts(r, settings, sp);
      const timeout = r.int(settings, "timeout", sp, 0, MAX_U32, 0);
      // allowTransparent lets plain (non-proxy) requests through in v2ray; a local proxy never
      // needs it, and it is read only so configs that set it still load.
      r.bool(settings, "allowTransparent", sp);
      const userLevel = r.int(settings, "userLevel", sp, 0, MAX_U32, 0);
      if (!ok || !accounts || timeout === undefined || userLevel === undefined) return undefined;
      return { protocol, ...base, settings: { accounts, timeout, userLevel } };
    }
    case "dokodemo-door":
    case "tunnel": {
      const s = readDokodemoSettings(r, settings, sp);
      return s && ok ? { protocol: "dokodemo-door", ...base, settings: s } : undefined;
    }
    case "vless": {
      const clients = readVlessClients(r, settings, sp);
      const stream = readInboundStream(r, o, path);
      if (!ok || !clients || !stream) return undefined;
      return { protocol, ...base, settings: { clients, decryption: "none" }, stream };
    }
  }
}

function readProtocol<T extends string>(
  r: Reader,
  o: Obj,
  path: string,
  known: readonly T[],
  v2rayOnly: readonly string[],
): T | undefined {
  const p = join(path, "protocol");
  const v = o.protocol;
  if (v === undefined || v === null || v === "") return r.problem(p, "is required");
  if (typeof v !== "string") return r.problem(p, `must be a string, got ${describe(v)}`);
  if ((known as readonly string[]).includes(v)) return v as T;
  const list = known.join(", ");
  if (v2rayOnly.includes(v)) return r.unsupported(p, `${describe(v)} is`, list);
  return r.problem(p, `unknown protocol ${describe(v)} (supported: ${list})`);
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIp(host: string): boolean {
  if (IPV4.test(host)) return true;
  // Let the URL parser judge IPv6 syntax; it rejects anything that is not an IPv6 literal.
  if (!host.includes(":")) return false;
  try {
    return new URL(`http://[${host}]/`).hostname !== "";
  } catch {
    return false;
  }
}

function readListen(r: Reader, o: Obj, path: string): string | undefined {
  const v = r.string(o, "listen", path, "127.0.0.1");
  if (v === undefined) return undefined;
  const p = join(path, "listen");
  if (v === "localhost" || v === "") return "127.0.0.1";
  if (v.startsWith("/") || v.startsWith("@")) return r.unsupported(p, "unix domain sockets are");
  const host = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
  if (isIp(host)) return host;
  return r.problem(p, `must be an IP address, got ${describe(v)}`);
}

/** Two inbounds on the same port conflict when their addresses are equal or either is a wildcard. */
function checkListenConflicts(r: Reader, inbounds: InboundConfig[]): void {
  const wildcard = (a: string) => a === "0.0.0.0" || a === "::";
  inbounds.forEach((b, j) => {
    for (let i = 0; i < j; i++) {
      const a = inbounds[i];
      if (a.port !== b.port) continue;
      if (a.listen === b.listen || wildcard(a.listen) || wildcard(b.listen)) {
        r.problem(
          `inbounds[${j}].port`,
          `${b.port} is already used by inbounds[${i}] (listen ${a.listen})`,
        );
        break;
      }
    }
  });
}

/**
 * Fills missing tags (the protocol name, or `<protocol>-<index>` when several share it) and
 * refuses duplicate tags.
 */
function nameTags(
  r: Reader,
  raw: unknown[],
  items: Array<{ tag: string; protocol: string }>,
  list: string,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    if (item.tag === "") return;
    const prev = seen.get(item.tag);
    if (prev !== undefined) {
      r.problem(`${list}[${i}].tag`, `${describe(item.tag)} is already used by ${list}[${prev}]`);
    } else seen.set(item.tag, i);
  });
  const count = (p: string) => items.filter((x) => x.protocol === p).length;
  items.forEach((item, i) => {
    if (item.tag !== "") return;
    const rawProtocol = String((raw[i] as Obj).protocol);
    let tag = count(item.protocol) === 1 ? rawProtocol : `${rawProtocol}-${i}`;
    if (seen.has(tag)) tag = `${rawProtocol}-${i}`;
    item.tag = tag;
    seen.set(tag, i);
  });
}

function readAccounts(r: Reader, o: Obj, path: string): Account[] | undefined {
  const list = r.optArray(o, "accounts", path);
  if (list === undefined) return undefined;
  const out: Account[] = [];
  let bad = false;
  list.forEach((v, i) => {
    const p = `${join(path, "accounts")}[${i}]`;
    const a = r.object(v, p);
    if (a === undefined) return void (bad = true);
    r.keys(a, p, ["user", "pass"]);
    const user = r.requiredString(a, "user", p);
    const pass = r.string(a, "pass", p, "");
    if (user === undefined || pass === undefined) bad = true;
    else out.push({ user, pass });
  });
  return bad ? undefined : out;
}

function readSocksSettings(r: Reader, s: Obj, path: string): SocksSettings | undefined {
  r.keys(s, path, ["auth", "accounts", "udp", "ip", "userLevel", "timeout"]);
  const auth = r.choice(s, "auth", path, ["noauth", "password"] as const, "noauth");
  const accounts = readAccounts(r, s, path);
  const udp = r.bool(s, "udp", path);
  const ipRaw = r.string(s, "ip", path, "");
  // `timeout` is deprecated in v2ray 4.34 and has no effect there either.
  r.int(s, "timeout", path, 0, MAX_U32, 0);
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  let ip = ipRaw;
  if (ipRaw && !isIp(ipRaw)) {
    ip = r.problem(join(path, "ip"), `must be an IP address, got ${describe(ipRaw)}`);
  }
  if (auth === "password" && accounts?.length === 0) {
    r.problem(join(path, "accounts"), 'must not be empty when "auth" is "password"');
  }
  if (auth === "noauth" && accounts && accounts.length > 0) {
    r.problem(join(path, "auth"), 'must be "password" when accounts are given');
  }
  if (!auth || !accounts || udp === undefined || ip === undefined || userLevel === undefined) {
    return undefined;
  }
  return { auth, accounts, udp, ip, userLevel };
}

function readDokodemoSettings(
  r: Reader,
  s: Obj,
  path: string,
): DokodemoInboundConfig["settings"] | undefined {
  r.keys(s, path, ["address", "port", "network", "timeout", "userLevel", "followRedirect"]);
  if (s.followRedirect !== undefined && s.followRedirect !== false) {
    r.unsupported(join(path, "followRedirect"), "transparent proxying (followRedirect) is");
  }
  const address = r.requiredString(s, "address", path);
  const port = r.port(s, "port", path);
  r.int(s, "timeout", path, 0, MAX_U32, 0);
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  const list = r.stringList(s, "network", path);
  let network: Array<"tcp" | "udp"> | undefined = ["tcp"];
  if (list && list.length > 0) {
    const names = list.map((n) => n.trim().toLowerCase());
    if (names.every((n) => n === "tcp" || n === "udp")) {
      network = [...new Set(names)] as Array<"tcp" | "udp">;
    } else {
      network = r.problem(
        join(path, "network"),
        `must be "tcp", "udp" or "tcp,udp", got ${describe(s.network)}`,
      );
    }
  } else if (!list) network = undefined;
  if (!address || !port || !network || userLevel === undefined) return undefined;
  return { address: stripBrackets(address), port, network, userLevel };
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Flows are XTLS features; only the empty flow exists in dray. */
function readFlow(r: Reader, o: Obj, path: string): string | undefined {
  const flow = r.string(o, "flow", path, "");
  if (flow) return r.unsupported(join(path, "flow"), `flow ${describe(flow)} (XTLS) is`);
  return flow;
}

function readId(r: Reader, o: Obj, path: string): { id: string; bytes: Uint8Array } | undefined {
  const p = join(path, "id");
  const v = o.id;
  if (v === undefined || v === null) return r.problem(p, "is required");
  if (typeof v !== "string") return r.problem(p, `${USER_ID_RULE}, got ${describe(v)}`);
  try {
    return parseUserId(v);
  } catch (err) {
    return r.problem(p, (err as Error).message);
  }
}

function readVlessClients(r: Reader, s: Obj, path: string): VlessClient[] | undefined {
  r.keys(s, path, ["clients", "decryption"], {
    fallbacks: "fallbacks are",
    fallback: "fallbacks are",
  });
  const decryption = s.decryption;
  if (decryption !== "none") {
    r.problem(
      join(path, "decryption"),
      decryption === undefined
        ? 'is required and must be "none", as in v2ray'
        : `must be "none", got ${describe(decryption)}`,
    );
  }
  const list = s.clients === undefined
    ? r.problem(join(path, "clients"), "is required")
    : r.array(s.clients, join(path, "clients"));
  if (list === undefined) return undefined;
  if (list.length === 0) return r.problem(join(path, "clients"), "must not be empty");
  const out: VlessClient[] = [];
  list.forEach((v, i) => {
    const p = `${join(path, "clients")}[${i}]`;
    const c = r.object(v, p);
    if (c === undefined) return;
    r.keys(c, p, ["id", "level", "email", "flow", "encryption"]);
    if (c.encryption !== undefined) {
      r.problem(join(p, "encryption"), 'belongs to outbound users; inbounds use "decryption"');
    }
    const id = readId(r, c, p);
    const level = r.int(c, "level", p, 0, MAX_U32, 0);
    const email = r.string(c, "email", p, "");
    const flow = readFlow(r, c, p);
    if (id && level !== undefined && email !== undefined && flow !== undefined) {
      out.push({ id: id.id, idBytes: id.bytes, level, email, flow });
    }
  });
  return out.length === list.length && decryption === "none" ? out : undefined;
}

// ---------------------------------------------------------------------------------------------
// Outbounds

const OUTBOUND_PROTOCOLS = ["vless", "freedom", "blackhole"] as const;
const V2RAY_ONLY_OUTBOUNDS = [
  "vmess",
  "trojan",
  "shadowsocks",
  "socks",
  "http",
  "dns",
  "mtproto",
  "loopback",
];

function readOutbound(r: Reader, v: unknown, path: string): OutboundConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, ["protocol", "tag", "settings", "streamSettings", "mux"], {
    proxySettings: "proxy chaining (proxySettings) is",
    sendThrough: "sendThrough is",
  });
  r.disabledOnly(o, "mux", path, "mux is");
  const protocol = readProtocol(r, o, path, OUTBOUND_PROTOCOLS, V2RAY_ONLY_OUTBOUNDS);
  const tag = r.string(o, "tag", path, "");
  const settings = r.optObject(o, "settings", path);
  const sp = join(path, "settings");
  if (protocol === undefined || settings === undefined) return undefined;
  if (protocol !== "vless" && o.streamSettings !== undefined && o.streamSettings !== null) {
    r.unsupported(join(path, "streamSettings"), `streamSettings on a ${protocol} outbound are`);
  }
  switch (protocol) {
    case "vless": {
      const servers = readVnext(r, settings, sp);
      // The stream is checked even when vnext is broken, so one run reports both.
      const stream = readOutboundStream(r, o, path, rawAddresses(settings));
      if (!servers || !stream || tag === undefined) return undefined;
      return { protocol, tag, servers, stream };
    }
    case "freedom": {
      const s = readFreedomSettings(r, settings, sp);
      return s && tag !== undefined ? { protocol, tag, settings: s } : undefined;
    }
    case "blackhole": {
      r.keys(settings, sp, ["response"]);
      const resp = r.optObject(settings, "response", sp);
      if (resp === undefined) return undefined;
      const rp = join(sp, "response");
      r.keys(resp, rp, ["type"]);
      const type = r.choice(resp, "type", rp, ["none", "http"] as const, "none");
      if (!type || tag === undefined) return undefined;
      return { protocol, tag, settings: { response: type } };
    }
  }
}

/** The addresses vnext lists, as far as they can be read: for TLS and Host defaults. */
function rawAddresses(settings: Obj): string[] {
  const list = Array.isArray(settings.vnext) ? settings.vnext : [];
  const out = new Set<string>();
  for (const v of list) {
    const a = (v as Obj | null)?.address;
    if (typeof a === "string" && a !== "") out.add(stripBrackets(a));
  }
  return [...out];
}

function readVnext(r: Reader, s: Obj, path: string): VlessServer[] | undefined {
  r.keys(s, path, ["vnext"]);
  const vp = join(path, "vnext");
  if (s.vnext === undefined || s.vnext === null) return r.problem(vp, "is required");
  const list = r.array(s.vnext, vp);
  if (list === undefined) return undefined;
  if (list.length === 0) return r.problem(vp, "must not be empty");
  const out: VlessServer[] = [];
  list.forEach((v, i) => {
    const p = `${vp}[${i}]`;
    const o = r.object(v, p);
    if (o === undefined) return;
    r.keys(o, p, ["address", "port", "users"]);
    const address = r.requiredString(o, "address", p);
    const port = r.port(o, "port", p);
    const users = readVlessUsers(r, o, p);
    if (address && port && users) out.push({ address: stripBrackets(address), port, users });
  });
  return out.length === list.length ? out : undefined;
}

function readVlessUsers(r: Reader, o: Obj, path: string): VlessUser[] | undefined {
  const up = join(path, "users");
  if (o.users === undefined || o.users === null) return r.problem(up, "is required");
  const list = r.array(o.users, up);
  if (list === undefined) return undefined;
  if (list.length === 0) return r.problem(up, "must not be empty");
  const out: VlessUser[] = [];
  list.forEach((v, i) => {
    const p = `${up}[${i}]`;
    const u = r.object(v, p);
    if (u === undefined) return;
    r.keys(u, p, ["id", "flow", "encryption", "level", "email"]);
    const id = readId(r, u, p);
    const flow = readFlow(r, u, p);
    const level = r.int(u, "level", p, 0, MAX_U32, 0);
    r.string(u, "email", p, "");
    const enc = u.encryption;
    let ok = true;
    if (enc !== "none") {
      ok = false;
      r.problem(
        join(p, "encryption"),
        enc === undefined
          ? 'is required and must be "none", as in v2ray'
          : `must be "none", got ${describe(enc)}`,
      );
    }
    if (id && flow !== undefined && level !== undefined && ok) {
      out.push({ id: id.id, idBytes: id.bytes, flow, encryption: "none", level });
    }
  });
  return out.length === list.length ? out : undefined;
}

const DOMAIN_STRATEGIES = ["AsIs", "UseIP", "UseIPv4", "UseIPv6"] as const;

function readFreedomSettings(
  r: Reader,
  s: Obj,
  path: string,
): FreedomOutboundConfig["settings"] | undefined {
  r.keys(s, path, ["domainStrategy", "redirect", "timeout", "userLevel"]);
  const domainStrategy = r.choice(s, "domainStrategy", path, DOMAIN_STRATEGIES, "AsIs");
  r.int(s, "timeout", path, 0, MAX_U32, 0);
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  const raw = r.string(s, "redirect", path, "");
  let redirect: FreedomOutboundConfig["settings"]["redirect"] | undefined = null;
  if (raw) {
    const colon = raw.lastIndexOf(":");
    const host = stripBrackets(colon < 0 ? raw : raw.slice(0, colon));
    const portText = colon < 0 ? "" : raw.slice(colon + 1);
    const port = portText === "" ? 0 : Number(portText);
    if (colon < 0 || !/^\d*$/.test(portText) || port > 65535) {
      redirect = r.problem(
        join(path, "redirect"),
        `must be "host:port" (either may be empty), got ${describe(raw)}`,
      );
    } else redirect = { address: host, port };
  }
  if (!domainStrategy || userLevel === undefined || redirect === undefined) return undefined;
  return { domainStrategy, redirect, userLevel };
}

// ---------------------------------------------------------------------------------------------
// streamSettings

const NETWORKS: Record<string, "tcp" | "http"> = { tcp: "tcp", http: "http", h2: "http" };
const UNSUPPORTED_NETWORKS = [
  "kcp",
  "mkcp",
  "ws",
  "websocket",
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
  "sockopt",
];
const STREAM_UNSUPPORTED: Record<string, string> = {
  kcpSettings: "the kcp transport is",
  wsSettings: "the ws transport is",
  quicSettings: "the quic transport is",
  dsSettings: "the domainsocket transport is",
  grpcSettings: "the grpc transport is",
  xtlsSettings: "XTLS is",
  realitySettings: "REALITY is",
};

interface StreamBasics {
  network: "tcp" | "http";
  security: "none" | "tls";
  s: Obj;
  path: string;
}

function readStreamBasics(r: Reader, o: Obj, path: string): StreamBasics | undefined {
  const sp = join(path, "streamSettings");
  const s = r.optObject(o, "streamSettings", path);
  if (s === undefined) return undefined;
  r.keys(s, sp, STREAM_KEYS, STREAM_UNSUPPORTED);
  let ok = true;

  let network: "tcp" | "http" = "tcp";
  const n = s.network;
  if (n !== undefined && n !== null) {
    const np = join(sp, "network");
    if (typeof n !== "string") {
      ok = r.problem(np, `must be a string, got ${describe(n)}`) ?? false;
    } else if (Object.hasOwn(NETWORKS, n.toLowerCase())) {
      network = NETWORKS[n.toLowerCase()];
    } else if (UNSUPPORTED_NETWORKS.includes(n.toLowerCase())) {
      ok = r.unsupported(np, `${describe(n)} is`, "tcp, http, h2") ?? false;
    } else {
      ok = r.problem(np, `unknown network ${describe(n)} (supported: tcp, http, h2)`) ?? false;
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

  const tcp = r.optObject(s, "tcpSettings", sp);
  if (tcp) {
    const tp = join(sp, "tcpSettings");
    r.keys(tcp, tp, ["header", "acceptProxyProtocol"]);
    if (tcp.acceptProxyProtocol !== undefined && tcp.acceptProxyProtocol !== false) {
      r.unsupported(join(tp, "acceptProxyProtocol"), "the PROXY protocol is");
    }
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

  const sockopt = r.optObject(s, "sockopt", sp);
  if (sockopt && Object.keys(sockopt).length > 0) {
    r.unsupported(join(sp, "sockopt"), "sockopt is");
  }
  return ok ? { network, security, s, path: sp } : undefined;
}

function readOutboundStream(
  r: Reader,
  o: Obj,
  path: string,
  addresses: string[],
): StreamConfig | undefined {
  const b = readStreamBasics(r, o, path);
  if (b === undefined) return undefined;
  const { network, security, s, path: sp } = b;

  if (network === "http" && security !== "tls") {
    // v2ray's http dialer refuses to dial without TLS ("TLS must be enabled for http transport").
    return r.problem(
      join(sp, "security"),
      'the http transport requires TLS ("security": "tls"), as in v2ray',
    );
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

const TLS_UNSUPPORTED: Record<string, string> = {
  fingerprint: "uTLS fingerprints are",
  pinnedPeerCertificateChainSha256: "certificate pinning is",
  minVersion: "minVersion is",
  maxVersion: "maxVersion is",
  cipherSuites: "cipherSuites is",
  rejectUnknownSni: "rejectUnknownSni is",
};

/** The parts of tlsSettings both sides share. */
function readTlsCommon(r: Reader, s: Obj, sp: string, network: "tcp" | "http") {
  const tp = join(sp, "tlsSettings");
  const t = r.optObject(s, "tlsSettings", sp);
  if (t === undefined) return undefined;
  r.keys(t, tp, [
    "serverName",
    "allowInsecure",
    "alpn",
    "certificates",
    "disableSystemRoot",
    "enableSessionResumption",
    "allowInsecureCiphers",
  ], TLS_UNSUPPORTED);
  if (t.enableSessionResumption === true) {
    r.unsupported(join(tp, "enableSessionResumption"), "TLS session resumption is");
  }
  if (t.allowInsecureCiphers === true) r.unsupported(join(tp, "allowInsecureCiphers"), "it is");
  const serverName = r.string(t, "serverName", tp, "");
  const alpnList = r.stringList(t, "alpn", tp);
  // v2ray's defaults: the http transport offers only h2; otherwise h2 and http/1.1.
  const alpn = alpnList &&
    (alpnList.length > 0 ? alpnList : network === "http" ? ["h2"] : ["h2", "http/1.1"]);
  return { t, tp, serverName, alpn };
}

interface ReadCert {
  usage: "encipherment" | "verify";
  certificate: string;
  key: string;
}

function readCertificates(r: Reader, t: Obj, tp: string): ReadCert[] | undefined {
  const list = r.optArray(t, "certificates", tp);
  if (list === undefined) return undefined;
  const out: ReadCert[] = [];
  list.forEach((v, i) => {
    const p = `${join(tp, "certificates")}[${i}]`;
    const c = r.object(v, p);
    if (c === undefined) return;
    r.keys(c, p, ["certificateFile", "certificate", "keyFile", "key", "usage"], {
      ocspStapling: "OCSP stapling is",
      oneTimeLoading: "oneTimeLoading is",
    });
    const usage = r.choice(
      c,
      "usage",
      p,
      ["encipherment", "verify", "issue"] as const,
      "encipherment",
    );
    if (usage === "issue") {
      r.unsupported(join(p, "usage"), 'usage "issue" (issuing certificates on the fly) is');
    }
    const certificate = readPem(
      r,
      c,
      p,
      "certificateFile",
      "certificate",
      /-----BEGIN CERTIFICATE-----/,
    );
    const key = usage === "verify"
      ? ""
      : readPem(r, c, p, "keyFile", "key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    if (usage === "verify" && (c.keyFile !== undefined || c.key !== undefined)) {
      r.problem(p, 'a certificate with usage "verify" is a CA to trust and takes no key');
    }
    if (
      certificate !== undefined && key !== undefined &&
      (usage === "encipherment" || usage === "verify")
    ) {
      out.push({ usage, certificate, key });
    }
  });
  return out.length === list.length ? out : undefined;
}

/** PEM text from `<fileKey>` (a path) or `<textKey>` (an array of lines, as v2ray takes it). */
function readPem(
  r: Reader,
  c: Obj,
  p: string,
  fileKey: string,
  textKey: string,
  marker: RegExp,
): string | undefined {
  const file = c[fileKey];
  const text = c[textKey];
  const hasFile = file !== undefined && file !== null && file !== "";
  const hasText = text !== undefined && text !== null;
  if (hasFile && hasText) return r.problem(p, `give either ${fileKey} or ${textKey}, not both`);
  let pem: string | undefined;
  let where: string;
  if (hasFile) {
    where = join(p, fileKey);
    if (typeof file !== "string") {
      return r.problem(where, `must be a string, got ${describe(file)}`);
    }
    pem = r.file(file, where);
    if (pem === undefined) return undefined;
  } else if (hasText) {
    where = join(p, textKey);
    if (typeof text === "string") pem = text;
    else if (Array.isArray(text) && text.every((x) => typeof x === "string")) pem = text.join("\n");
    else return r.problem(where, `must be an array of PEM lines, got ${describe(text)}`);
  } else {
    return r.problem(p, `needs ${fileKey} or ${textKey}`);
  }
  if (!marker.test(pem)) {
    const kind = textKey === "key" ? "private key" : "certificate";
    return r.problem(where, `does not contain a PEM ${kind}`);
  }
  return pem;
}

function readTlsClient(
  r: Reader,
  s: Obj,
  sp: string,
  network: "tcp" | "http",
  addresses: string[],
): TlsClientConfig | undefined {
  const common = readTlsCommon(r, s, sp, network);
  if (common === undefined) return undefined;
  const { t, tp, alpn } = common;
  const allowInsecure = r.bool(t, "allowInsecure", tp);
  const disableSystemRoot = r.bool(t, "disableSystemRoot", tp);
  const certs = readCertificates(r, t, tp);
  let serverName = common.serverName;
  if (serverName === "") {
    // v2ray verifies each server against its own address; one resolved name per outbound keeps
    // the config simple to consume, so several distinct addresses need an explicit serverName.
    if (addresses.length > 1) {
      return r.problem(
        join(tp, "serverName"),
        "is required when vnext lists servers with different addresses",
      );
    }
    serverName = addresses[0];
  }
  if (
    serverName === undefined || !alpn || allowInsecure === undefined ||
    disableSystemRoot === undefined || !certs
  ) return undefined;
  if (disableSystemRoot && !certs.some((c) => c.usage === "verify")) {
    r.problem(
      join(tp, "disableSystemRoot"),
      'needs a certificate with "usage": "verify" to trust instead',
    );
    return undefined;
  }
  return {
    serverName,
    allowInsecure,
    alpn,
    caCerts: certs.filter((c) => c.usage === "verify").map((c) => c.certificate),
    certificates: certs.filter((c) => c.usage === "encipherment").map(({ certificate, key }) => ({
      certificate,
      key,
    })),
    disableSystemRoot,
  };
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

function readInboundStream(r: Reader, o: Obj, path: string): InboundStreamConfig | undefined {
  const b = readStreamBasics(r, o, path);
  if (b === undefined) return undefined;
  const { network, security, s, path: sp } = b;
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
    const common = readTlsCommon(r, s, sp, network);
    if (common === undefined) return undefined;
    const { t, tp, alpn, serverName } = common;
    for (const key of ["allowInsecure", "disableSystemRoot"]) {
      if (t[key] === true) r.problem(join(tp, key), "applies to outbounds only");
    }
    const certs = readCertificates(r, t, tp);
    if (!certs || !alpn || serverName === undefined) return undefined;
    if (certs.some((c) => c.usage === "verify")) {
      return r.unsupported(
        join(tp, "certificates"),
        'client certificate verification (usage "verify" on an inbound) is',
      );
    }
    if (certs.length === 0) {
      return r.problem(
        join(tp, "certificates"),
        "needs a certificate and key (certificateFile and keyFile) for a TLS inbound",
      );
    }
    tls = {
      certificates: certs.map(({ certificate, key }) => ({ certificate, key })),
      alpn,
      serverName,
    };
  }
  if (network === "tcp") {
    return tls ? { network, security: "tls", tls } : { network, security: "none" };
  }
  return tls
    ? { network, security: "tls", tls, http: http! }
    : { network, security: "none", http: http! };
}
