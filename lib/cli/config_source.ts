/**
 * Where a command's config comes from: `-c config.json`, one or more `--link vless://…`, and
 * `--sub SOURCE` (a subscription file, `-` or URL). Links and a subscription make one config with
 * an outbound per link (lib/config/link_list.ts). Problems become {@link UserError}s with the
 * exit code a script can act on: 23 for unusable input (a config problem is a ConfigError,
 * printed one line per problem by main), 1 for a subscription URL that failed (maybe only now).
 */
import { configBaseDir, parseConfig, parseConfigObject } from "../config/parse.ts";
import { linksToV2rayJson } from "../config/link_list.ts";
import {
  type LinkInbounds,
  type ListenAddress,
  parseVlessLink,
  type VlessLink,
} from "../config/share_link.ts";
import { parseSubscription } from "../config/subscription.ts";
import { readSubscriptionSource, SubscriptionFetchError } from "../config/subscription_source.ts";
import type { Config } from "../config/types.ts";
import {
  ExitCode,
  type OptionSpec,
  stringValue,
  stringValues,
  usageError,
  UserError,
  type Values,
} from "./args.ts";
import { messageOf } from "../error_message.ts";

export interface ConfigSources {
  config?: string;
  links: string[];
  sub?: string;
  socks?: string;
  http?: string;
}

/** The flags that name a config: -c, --link (repeatable), --sub. */
export const CONFIG_FLAGS: OptionSpec = {
  config: { type: "string", short: "c" },
  link: { type: "string", multiple: true },
  sub: { type: "string" },
};

/** The sources named by a command's flags (`-c`, `--link` (repeatable), `--sub`, inbounds). */
export function configSources(values: Values): ConfigSources {
  return {
    config: stringValue(values, "config"),
    links: stringValues(values, "link"),
    sub: stringValue(values, "sub"),
    socks: stringValue(values, "socks"),
    http: stringValue(values, "http"),
  };
}

/** Reads and validates a config file; unreadable or invalid exits 23. */
export function readConfigFile(path: string): Config {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new UserError(
      `Cannot read config file "${path}": ${messageOf(err)}`,
      ExitCode.config,
      { cause: err },
    );
  }
  return parseConfig(text, { baseDir: configBaseDir(path) });
}

/** `host:port`, `[v6]:port` or `none`. */
export function parseListen(command: string, flag: string, text: string): ListenAddress | null {
  if (text === "none") return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+|localhost)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw usageError(
      command,
      `--${flag} must be host:port (e.g. 127.0.0.1:1080) or "none", got "${text}"`,
    );
  }
  return { host: m[1] ?? (m[2] === "localhost" ? "127.0.0.1" : m[2]), port };
}

/** The local inbounds of a link config from `--socks`/`--http`. */
export function linkInbounds(command: string, sources: ConfigSources): LinkInbounds {
  const out: LinkInbounds = {};
  if (sources.socks !== undefined) out.socks = parseListen(command, "socks", sources.socks);
  if (sources.http !== undefined) out.http = parseListen(command, "http", sources.http);
  return out;
}

export interface LinkSourceOptions {
  version: string;
  /** One line per subscription line skipped. */
  warn: (line: string) => void;
  /** Test seam: what `--sub -` reads. */
  stdin?: ReadableStream<Uint8Array>;
}

/** Every link of `--link` flags then of `--sub`, in that order. */
export async function loadLinks(
  sources: ConfigSources,
  opts: LinkSourceOptions,
): Promise<VlessLink[]> {
  const links: VlessLink[] = [];
  for (const text of sources.links) {
    try {
      links.push(parseVlessLink(text));
    } catch (err) {
      if (err instanceof SyntaxError) throw new UserError(err.message, ExitCode.config);
      throw err;
    }
  }
  if (sources.sub !== undefined) {
    const sub = await loadSubscription(sources.sub, opts);
    links.push(...sub);
  }
  return links;
}

async function loadSubscription(source: string, opts: LinkSourceOptions): Promise<VlessLink[]> {
  let body: Uint8Array;
  try {
    body = await readSubscriptionSource(source, { version: opts.version, stdin: opts.stdin });
  } catch (err) {
    if (err instanceof SubscriptionFetchError) throw new UserError(err.message, ExitCode.failure);
    throw new UserError(messageOf(err), ExitCode.config, { cause: err });
  }
  try {
    const sub = parseSubscription(body);
    for (const s of sub.skipped) {
      opts.warn(`dray: warning: subscription line ${s.line} skipped: ${s.reason}`);
    }
    return sub.links.map((l) => l.link);
  } catch (err) {
    if (err instanceof SyntaxError || err instanceof RangeError) {
      throw new UserError(err.message, ExitCode.config, { cause: err });
    }
    throw err;
  }
}

/** The config of several links (at least one): see lib/config/link_list.ts. */
export function configFromLinks(links: VlessLink[], inbounds: LinkInbounds): Config {
  return parseConfigObject(linksToV2rayJson(links, inbounds));
}

/**
 * Loads the config named by `-c`, or by `--link`s and `--sub` together (exactly one of the two
 * kinds). With `-c`, `--socks`/`--http` are a usage error: a config file lists its own inbounds.
 */
export async function loadConfig(
  command: string,
  sources: ConfigSources,
  opts: LinkSourceOptions,
): Promise<Config> {
  const fromLinks = sources.links.length > 0 || sources.sub !== undefined;
  if ((sources.config === undefined) === !fromLinks) {
    throw usageError(
      command,
      "give either -c <config.json>, or --link <vless://…> (repeatable) and/or --sub <source>",
    );
  }
  if (sources.config !== undefined) {
    if (sources.socks !== undefined || sources.http !== undefined) {
      throw usageError(
        command,
        "--socks and --http go with --link or --sub; a config file lists its own inbounds",
      );
    }
    return readConfigFile(sources.config);
  }
  const inbounds = linkInbounds(command, sources);
  return configFromLinks(await loadLinks(sources, opts), inbounds);
}
