/**
 * v2ray 4.34 JSON (with comments) → {@link Config}, every default filled in.
 *
 * Validation collects every problem before failing, one `path: reason` line each, e.g.
 * `outbounds[0].settings.vnext[0].port: must be an integer 1-65535, got "abc"`, and throws them
 * together as one {@link ConfigError}. Features v2ray has and dray lacks are refused by name,
 * unknown keys are refused as such: nothing in a config is silently ignored.
 *
 * One file per section, as Xray's infra/conf: this one reads the root, `log` and `policy`;
 * routing.ts `routing`, `dns` and `sniffing`; inbounds.ts, outbounds.ts, stream_settings.ts and tls_settings.ts the rest, through
 * the path-tracking {@link Reader} (reader.ts).
 */
import { dirname, resolve } from "node:path";
import { parseJsonc } from "./jsonc.ts";
import { checkListenConflicts, readInbound } from "./inbounds.ts";
import { readOutbound } from "./outbounds.ts";
import { readObservatory } from "./observatory.ts";
import { checkRuleTargets, readDns, readRouting } from "./routing.ts";
import { describe, join, MAX_U32, type Obj, type ParseConfigOptions, Reader } from "./reader.ts";
import {
  type Config,
  DEFAULT_LEVEL_POLICY,
  type InboundConfig,
  type LevelPolicy,
  type LogConfig,
  type OutboundConfig,
  type PolicyConfig,
} from "./types.ts";
import type { LogLevel } from "../log.ts";

export type { ParseConfigOptions } from "./reader.ts";

/** Every problem found in a config, one `path: reason` line each. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[], options?: ErrorOptions) {
    super(problems.join("\n"), options);
    this.name = "ConfigError";
    this.problems = problems;
  }
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

const ROOT_UNSUPPORTED: Record<string, string> = {
  api: "the gRPC API (api) is",
  stats: "statistics (stats) are",
  reverse: "reverse proxy (reverse) is",
  transport: "the global transport block (transport) is",
  fakedns: "fake DNS (fakedns) is",
  browserForwarder: "the browser forwarder is",
  inbound: "the pre-4.0 inbound block (use inbounds[]) is",
  outbound: "the pre-4.0 outbound block (use outbounds[]) is",
  inboundDetour: "inboundDetour (use inbounds[]) is",
  outboundDetour: "outboundDetour (use outbounds[]) is",
};

function readRoot(r: Reader, value: unknown): Config | undefined {
  const root = r.object(value, "config");
  if (root === undefined) return undefined;
  r.keys(
    root,
    "",
    ["log", "inbounds", "outbounds", "policy", "routing", "dns", "observatory"],
    ROOT_UNSUPPORTED,
  );

  const log = readLog(r, root);
  const policy = readPolicy(r, root);
  const routing = readRouting(r, root);
  const hosts = readDns(r, root);
  const observatory = readObservatory(r, root);
  if (routing && observatory === undefined) {
    routing.balancers.forEach((b, i) => {
      if (b.strategy === "leastPing") {
        r.problem(
          `routing.balancers[${i}].strategy.type`,
          '"leastPing" needs the observatory section (which outbounds to probe, and how)',
        );
      }
    });
  }

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
  if (rawOut && outbounds.length === rawOut.length) {
    nameTags(r, rawOut, outbounds, "outbounds");
    if (routing) checkRuleTargets(r, routing, outbounds.map((o) => o.tag));
  }

  if (log === undefined || policy === undefined || !routing || !hosts || observatory === null) {
    return undefined;
  }
  return {
    log,
    inbounds,
    outbounds,
    policy,
    routing,
    dns: { hosts },
    ...(observatory ? { observatory } : {}),
  };
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
