/**
 * The dray command line: flags → config → start → wait for SIGINT/SIGTERM → graceful close.
 *
 *   dray run -c config.json | --link 'vless://…' … | --sub SOURCE
 *   dray test -c config.json                         (exit 23 with every problem)
 *   dray link 'vless://…' | --link … | --sub SOURCE  (links → JSON config)
 *   dray link --to-link -c config.json               (JSON config → link)
 *   dray route -c config.json DEST[:PORT] [--inbound TAG] …  (which rule, which outbound)
 *   dray version | help [command]
 *
 * Exit codes, the same for every command (lib/cli/args.ts ExitCode): 0 success, 1 a runtime
 * failure, 2 a usage error, 23 an invalid config. User errors are printed as one or more plain
 * lines, never as a stack trace.
 */
import { runDemo } from "./lib/demo.ts";
import { buildRouting, startApp } from "./lib/app.ts";
import { ConfigError } from "./lib/config/parse.ts";
import { insecureHosts } from "./lib/config/tls_settings.ts";
import { RELAUNCH_MARKER, relaunchInsecure } from "./lib/cli/insecure_relaunch.ts";
import { type CliIo, cmdProbe, PROBE_HELP } from "./lib/cli/probe.ts";
import { cmdExec, EXEC_HELP } from "./lib/cli/exec.ts";
import { cmdRoute, ROUTE_HELP } from "./lib/cli/route.ts";
import { linkFromConfig, linkToV2rayJson, parseVlessLink } from "./lib/config/share_link.ts";
import { linksToV2rayJson } from "./lib/config/link_list.ts";
import type { Config } from "./lib/config/types.ts";
import { Logger } from "./lib/log.ts";
import { ExitCode, parseCommandArgs, usageError, UserError } from "./lib/cli/args.ts";
import {
  CONFIG_FLAGS,
  configSources,
  linkInbounds,
  loadConfig,
  loadLinks,
  readConfigFile,
} from "./lib/cli/config_source.ts";

export const VERSION = "0.1.0";

/** Upper bound on shutdown after SIGINT/SIGTERM, over the app's own grace period. */
const SHUTDOWN_LIMIT_MS = 15_000;

const EXIT_CODES =
  `Exit codes: 0 success; 1 runtime failure; 2 usage error (unknown command or flag);
23 invalid config, share link or subscription (every problem is listed).`;

/** What -c/--link/--sub mean, for every command that takes them. */
const SOURCE_OPTIONS = `  -c, --config <file>   v2ray-style JSON config (comments allowed)
      --link <url>      a vless:// share link; repeat for several (one outbound each, and a
                        leastPing balancer over them all that takes every connection)
      --sub <source>    a subscription: a file, - (stdin) or an http(s) URL; base64 or plain
                        text, one link per line (only vless:// lines are used)`;

const HELP: Record<string, string> = {
  main: `dray ${VERSION} — a VLESS proxy (v2ray/Xray compatible)

Usage: dray <command> [options]

Commands:
  run      Run from a v2ray JSON config (-c), share links (--link) or a subscription (--sub)
  test     Check a config: print every problem (exit 23) or "Configuration OK" (exit 0)
  link     Convert share links to a JSON config, or a config to a link (--to-link)
  probe    Check that each server works and how fast (table or --json), exit 1 if one fails
  exec     Run a command through the proxy (ALL_PROXY, HTTP(S)_PROXY set), exit with its code
  route    Print which routing rule and outbound a connection to DEST would take
  demo     Run a dray server and client on 127.0.0.1 and fetch a page through them
  version  Print the version
  help     Print this help, or a command's help: dray help <command>

Every command takes -h/--help.

${EXIT_CODES}`,
  run: `Usage: dray run -c <config.json>
       dray run --link <vless://…> [--link …] [--sub <source>] [--socks <host:port>] [--http <host:port>]

Runs until SIGINT or SIGTERM, then stops accepting, lets open connections finish for a short
grace period and exits 0.

Options:
${SOURCE_OPTIONS}
      --socks <addr>    with --link/--sub: SOCKS5 listen address (default 127.0.0.1:1080; "none" = off)
      --http <addr>     with --link/--sub: HTTP proxy listen address (default 127.0.0.1:8080; "none" = off)
  -h, --help            print this help

${EXIT_CODES}`,
  demo: `Usage: dray demo [--verbose]

Starts a dray server (VLESS over HTTP/2 + TLS, with a throwaway demo certificate) and a dray
client (SOCKS5 and HTTP proxy) on 127.0.0.1, fetches a page from a local web server through both
client inbounds, prints what happened and the curl commands to try, and keeps running until
Ctrl-C. Needs no config and no network beyond loopback.

Options:
  -v, --verbose         print the server's and client's logs (access lines, info)
  -h, --help            print this help`,
  test: `Usage: dray test -c <config.json>
       dray test --link <vless://…> [--link …] [--sub <source>]

Checks a config like "v2ray -test": prints every problem to stdout, one "path: reason" line
each, and exits 23; or prints "Configuration OK" and exits 0. Skipped subscription lines are
warnings on stderr.

Options:
${SOURCE_OPTIONS}
  -h, --help            print this help

${EXIT_CODES}`,
  link: `Usage: dray link <vless://…> [--socks <host:port>] [--http <host:port>]
       dray link --link <vless://…> [--link …] [--sub <source>] [--socks …] [--http …]
       dray link --to-link -c <config.json>

Prints the JSON config share links stand for: local SOCKS5 and HTTP inbounds plus one vless
outbound per link (tags from the link names, made unique); for several links, a balancer over
them all (tag "links", strategy leastPing: the alive server with the smallest delay, probed
once a minute by an observatory) and a rule sending every connection to it. With --to-link, prints the share link of a config's first vless outbound.

Options:
${SOURCE_OPTIONS}
      --socks <addr>    SOCKS5 listen address (default 127.0.0.1:1080; "none" = leave out)
      --http <addr>     HTTP proxy listen address (default 127.0.0.1:8080; "none" = leave out)
      --to-link         convert the config given with -c to a share link
  -h, --help            print this help

${EXIT_CODES}`,
  probe: PROBE_HELP,
  exec: EXEC_HELP,
  route: ROUTE_HELP,
  version: `Usage: dray version

Prints dray's version and the Deno runtime it runs on.`,
  help: `Usage: dray help [command]`,
};

const encoder = new TextEncoder();
function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}
function err(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text + "\n"));
}
function cliIo(): CliIo {
  return {
    out,
    err,
    errRaw: (text) => Deno.stderr.writeSync(encoder.encode(text)),
    progress: Deno.stderr.isTerminal(),
    version: VERSION,
  };
}

// ---------------------------------------------------------------------------------------------
// Commands

/** What `run` needs of a started app; `done`, when present, settles if it stops by itself. */
export interface RunningApp {
  close(): Promise<void>;
  done?: Promise<void>;
}

/** Seams for tests; the CLI itself passes nothing. */
export interface MainOptions {
  /** Default: lib/app.ts startApp. */
  startApp?: (config: Config, opts: { logger: Logger }) => Promise<RunningApp>;
  /** Default: SHUTDOWN_LIMIT_MS. */
  shutdownLimitMs?: number;
}

/** What loading links and subscriptions needs from the CLI. */
function linkSourceOptions() {
  return { version: VERSION, warn: err };
}

async function cmdRun(args: string[], opts: MainOptions): Promise<number> {
  const { values } = parseCommandArgs("run", args, {
    ...CONFIG_FLAGS,
    socks: { type: "string" },
    http: { type: "string" },
  });
  if (values.help) return help("run");

  // Signals are caught from the start, so one that arrives while dray starts up (or while a
  // relaunched child runs) still ends in a graceful close, never the default kill. The handlers
  // are never removed: the process ends right after this command, and a late second signal
  // must not cut the bounded close short or turn the exit status into a signal status.
  const stop = Promise.withResolvers<string>();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const sig of signals) Deno.addSignalListener(sig, () => stop.resolve(sig));

  const config = await loadConfig("run", configSources(values), linkSourceOptions());

  const insecure = insecureHosts(config);
  const code = await relaunchInsecure(insecure, { warn: err });
  if (code !== undefined) return code;

  let logger: Logger;
  try {
    logger = new Logger({
      level: config.log.loglevel,
      access: config.log.access,
      error: config.log.error,
    });
  } catch (e) {
    throw new UserError(`Cannot open log file: ${(e as Error).message}`);
  }
  if (insecure.length > 0 && Deno.env.get(RELAUNCH_MARKER) === "1") {
    logger.warn(`TLS certificate verification is OFF for ${insecure.join(", ")} (allowInsecure)`);
  }

  let app: RunningApp;
  try {
    app = await (opts.startApp ?? startApp)(config, { logger });
  } catch (e) {
    throw new UserError(`dray: cannot start: ${(e as Error).message}`);
  }
  logger.info(`dray ${VERSION} started`);

  try {
    const reason = await Promise.race([
      stop.promise,
      ...(app.done ? [app.done.then(() => "stopped")] : []),
    ]);
    if (reason === "stopped") return 0;
    logger.info(`${reason}: closing (open connections get a grace period)`);
    const limitMs = opts.shutdownLimitMs ?? SHUTDOWN_LIMIT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), limitMs);
    });
    const result = await Promise.race([app.close().then(() => "closed" as const), limit]);
    clearTimeout(timer);
    if (result === "timeout") logger.warn(`shutdown took over ${limitMs} ms; exiting anyway`);
    return 0;
  } catch (e) {
    logger.error(`dray stopped: ${(e as Error).message}`);
    return 1;
  }
}

async function cmdTest(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("test", args, CONFIG_FLAGS);
  if (values.help) return help("test");
  try {
    const config = await loadConfig("test", configSources(values), linkSourceOptions());
    for (const w of config.routing.warnings) out(`warning: ${w}`);
    try {
      // Geo files, list codes and regexps are checked where the router is built.
      buildRouting(config);
    } catch (err) {
      out((err as Error).message);
      return ExitCode.config;
    }
  } catch (e) {
    // The problems are the command's output: stdout, like "Configuration OK".
    if (e instanceof ConfigError) {
      for (const p of e.problems) out(p);
      return ExitCode.config;
    }
    if (e instanceof UserError && e.exitCode === ExitCode.config) {
      out(e.message);
      return ExitCode.config;
    }
    throw e;
  }
  out("Configuration OK");
  return ExitCode.ok;
}

async function cmdLink(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("link", args, {
    ...CONFIG_FLAGS,
    socks: { type: "string" },
    http: { type: "string" },
    "to-link": { type: "boolean" },
  }, { positionals: 1 });
  if (values.help) return help("link");
  const src = configSources(values);
  if (values["to-link"]) {
    if (src.config === undefined || positionals.length > 0 || src.links.length > 0 || src.sub) {
      throw usageError(
        "link",
        "--to-link converts a config file: dray link --to-link -c <config.json>",
      );
    }
    const config = readConfigFile(src.config);
    let link: string;
    try {
      link = linkFromConfig(config, {
        onLoss: (what) => err(`dray: warning: the link leaves out ${what}`),
      });
    } catch (e) {
      if (e instanceof RangeError) throw new UserError(e.message, ExitCode.config);
      throw e;
    }
    out(link);
    return ExitCode.ok;
  }
  if (src.config !== undefined) {
    throw usageError("link", "-c goes with --to-link; to convert a link: dray link <vless://…>");
  }
  const inbounds = linkInbounds("link", src);
  if (positionals.length > 0) {
    if (src.links.length > 0 || src.sub !== undefined) {
      throw usageError("link", "give the links either as one argument or with --link/--sub");
    }
    out(JSON.stringify(linkToV2rayJson(parseVlessLink(positionals[0]), inbounds), null, 2));
    return ExitCode.ok;
  }
  if (src.links.length === 0 && src.sub === undefined) {
    throw usageError("link", "give a vless:// link to convert (or --link …/--sub <source>)");
  }
  const links = await loadLinks(src, linkSourceOptions());
  out(JSON.stringify(linksToV2rayJson(links, inbounds), null, 2));
  return ExitCode.ok;
}

async function cmdDemo(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("demo", args, { verbose: { type: "boolean", short: "v" } });
  if (values.help) return help("demo");
  const logger = values.verbose ? new Logger({ level: "info" }) : undefined;
  try {
    await runDemo({ print: out, logger });
  } catch (e) {
    throw new UserError(`dray demo failed: ${(e as Error).message}`);
  }
  return 0;
}

function cmdVersion(args: string[]): number {
  const { values } = parseCommandArgs("version", args, {});
  if (values.help) return help("version");
  out(`dray ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, ${Deno.build.target})`);
  return 0;
}

function help(command: string): number {
  out(HELP[command]);
  return 0;
}

function cmdHelp(args: string[]): number {
  const { values, positionals } = parseCommandArgs("help", args, {}, { positionals: 1 });
  if (values.help) return help("help");
  const topic = positionals[0];
  if (topic === undefined) return help("main");
  if (!Object.hasOwn(HELP, topic) || topic === "main") {
    throw usageError("help", `unknown command "${topic}"`);
  }
  return help(topic);
}

/** Runs the CLI; returns the exit code. Exported for tests that drive it in-process. */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "run":
        return await cmdRun(rest, opts);
      case "test":
        return await cmdTest(rest);
      case "link":
        return await cmdLink(rest);
      case "probe":
        return await cmdProbe(rest, cliIo());
      case "exec":
        return await cmdExec(rest, { out, err, version: VERSION });
      case "route":
        return await cmdRoute(rest, { out, ...linkSourceOptions() });
      case "demo":
        return await cmdDemo(rest);
      case "version":
      case "--version":
      case "-V":
        return cmdVersion(rest);
      case "help":
        return cmdHelp(rest);
      case "-h":
      case "--help":
        return help("main");
      case undefined:
        err(HELP.main);
        return 2;
      default:
        throw usageError("main", `unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UserError) {
      err(e.message);
      return e.exitCode;
    }
    if (e instanceof ConfigError) {
      for (const p of e.problems) err(p);
      return ExitCode.config;
    }
    // A share link that does not parse is an invalid config too.
    if (e instanceof SyntaxError) {
      err(e.message);
      return ExitCode.config;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
