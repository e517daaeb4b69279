/**
 * The config reader: typed accessors over parsed JSON that track the JSON path, record a
 * `path: reason` problem and return undefined on a bad value, so one pass reports every problem.
 * Keys a section does not handle are refused by name ("unknown field", or "… is not supported by
 * dray" for v2ray features dray lacks): nothing in a config is silently ignored.
 */
import { isAbsolute, resolve } from "node:path";
import { addressKind } from "../net/destination.ts";
import { messageOf } from "../error_message.ts";

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

/** A JSON object as read. */
export type Obj = Record<string, unknown>;

/** `got …` text for a value: strings quoted, arrays and objects by kind (they can be long). */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") {
    return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  }
  return String(v);
}

/** The JSON path of `key` inside `path`: `outbounds[0]` + `tag` → `outbounds[0].tag`. */
export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function oneOf(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(", ");
}

/** The largest value of v2ray's uint32 fields (levels, timeouts). */
export const MAX_U32 = 4294967295;

export class Reader {
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

  /** `what` ends in "is"/"are": `"kcp" is not supported by dray (supported: tcp, http, h2, ws)`. */
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

  /**
   * An optional sub-object checked against its keys (see {@link keys}): the object ({} when
   * absent) and its JSON path, or undefined when it is not an object.
   */
  section(
    o: Obj,
    key: string,
    path: string,
    known: readonly string[],
    unsupported: Record<string, string> = {},
  ): { o: Obj; path: string } | undefined {
    const v = this.optObject(o, key, path);
    if (v === undefined) return undefined;
    const p = join(path, key);
    this.keys(v, p, known, unsupported);
    return { o: v, path: p };
  }

  /**
   * A required, non-empty array of objects (vnext, users, clients): each element's keys checked
   * against `known`, then read by `each` (undefined = a problem was reported). Undefined unless
   * every element was read.
   */
  objectList<T>(
    o: Obj,
    key: string,
    path: string,
    known: readonly string[],
    each: (item: Obj, path: string) => T | undefined,
  ): T[] | undefined {
    const lp = join(path, key);
    if (o[key] === undefined || o[key] === null) return this.problem(lp, "is required");
    const list = this.array(o[key], lp);
    if (list === undefined) return undefined;
    if (list.length === 0) return this.problem(lp, "must not be empty");
    const out: T[] = [];
    list.forEach((v, i) => {
      const p = `${lp}[${i}]`;
      const item = this.object(v, p);
      if (item === undefined) return;
      this.keys(item, p, known);
      const read = each(item, p);
      if (read !== undefined) out.push(read);
    });
    return out.length === list.length ? out : undefined;
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
      const why = messageOf(err);
      return this.problem(path, `cannot read ${JSON.stringify(full)}: ${why}`);
    }
  }
}

/**
 * `protocol` of an inbound or outbound: one of `known`, or refused as a v2ray protocol dray lacks
 * (`v2rayOnly`), or as unknown.
 */
export function readProtocol<T extends string>(
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

/** Whether `host` is an IPv4 or IPv6 literal (IPv6 without brackets). */
export function isIp(host: string): boolean {
  if (addressKind(host) === "ipv4") return true;
  // Let the URL parser judge IPv6 syntax; it rejects anything that is not an IPv6 literal.
  if (!host.includes(":")) return false;
  try {
    return new URL(`http://[${host}]/`).hostname !== "";
  } catch {
    return false;
  }
}

/** `[::1]` → `::1`: addresses are kept without brackets. */
export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
