/**
 * `dray exec [-c|--link|--sub] [--] CMD [ARGS…]`: run one command through the proxy. dray starts
 * the client with one mixed (SOCKS5 + HTTP) inbound on a free loopback port — the config's own
 * inbounds are not started — and runs CMD with the proxy variables that curl, wget, git, pip,
 * npm, Go and most other tools read. No LD_PRELOAD and no namespaces: a static binary works as
 * long as it honours the variables.
 *
 * CMD's exit code becomes dray's (128+N when a signal N ended it, as a shell reports it);
 * SIGINT/SIGTERM sent to dray are passed on to CMD. dray's own failures before CMD starts exit
 * with dray's codes (1, 2, 23); a CMD that cannot be found or run exits 127 / 126, as env(1),
 * timeout(1) and shells do.
 */
import { startApp } from "../app.ts";
import { insecureHosts } from "../config/tls_settings.ts";
import type { Config, MixedInboundConfig } from "../config/types.ts";
import { Logger } from "../log.ts";
import { ExitCode, parseCommandArgs, stringValue, usageError, UserError } from "./args.ts";
import { CONFIG_FLAGS, configSources, loadConfig } from "./config_source.ts";
import { relaunchInsecure } from "./insecure_relaunch.ts";
import { messageOf } from "../error_message.ts";

export const EXEC_HELP =
  `Usage: dray exec (-c <config.json> | --link <vless://…>… | --sub <source>) [options] [--] CMD [ARGS…]

Runs CMD through the proxy: starts the client with a mixed SOCKS5 + HTTP inbound on a free
127.0.0.1 port (the config's own inbounds are not started), waits until it listens, and runs CMD
with stdin, stdout and stderr inherited and these variables set:

  ALL_PROXY, all_proxy       socks5h://127.0.0.1:PORT
  HTTP_PROXY, http_proxy     http://127.0.0.1:PORT
  HTTPS_PROXY, https_proxy   http://127.0.0.1:PORT
  NO_PROXY, no_proxy         localhost,127.0.0.1,::1 (or --no-proxy)

SIGINT and SIGTERM are passed on to CMD. When CMD exits, dray stops the proxy and exits with
CMD's exit code (128+N if signal N ended it).

Options:
  -c, --config <file>   v2ray-style JSON config (its outbounds are used)
      --link <url>      a vless:// share link (repeatable)
      --sub <source>    a subscription: a file, - (stdin) or an http(s) URL
      --no-proxy <list> the NO_PROXY value (default localhost,127.0.0.1,::1; "" = none)
  -h, --help            print this help

Exit codes: CMD's; before CMD starts: 1 runtime failure (the proxy cannot start), 2 usage error,
23 invalid config; 127 CMD not found, 126 CMD not executable.`;

export const DEFAULT_NO_PROXY = "localhost,127.0.0.1,::1";
/** How long connections CMD left open may finish after it exits. */
const CLOSE_GRACE_MS = 1_000;

export interface ExecIo {
  out(line: string): void;
  err(line: string): void;
  version: string;
}

export async function cmdExec(args: string[], io: ExecIo): Promise<number> {
  const { values, positionals: command } = parseCommandArgs("exec", args, {
    ...CONFIG_FLAGS,
    "no-proxy": { type: "string" },
  }, { stopAtPositional: true });
  if (values.help) {
    io.out(EXEC_HELP);
    return ExitCode.ok;
  }
  if (command.length === 0) throw usageError("exec", "give the command to run: dray exec … -- CMD");

  // Caught from the start so that a signal during startup is not the default kill; forwarded to
  // CMD once it runs. Never removed: a late signal must not replace CMD's code with a signal's.
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let child: Deno.ChildProcess | undefined;
  let early: Deno.Signal | undefined;
  for (const sig of signals) {
    Deno.addSignalListener(sig, () => {
      if (child === undefined) {
        early ??= sig;
        return;
      }
      try {
        child.kill(sig);
      } catch {
        // Already gone.
      }
    });
  }

  const config = await loadConfig("exec", configSources(values), {
    version: io.version,
    warn: io.err,
  });
  const insecure = insecureHosts(config);
  const code = await relaunchInsecure(insecure, { warn: io.err });
  if (code !== undefined) return code;

  let logger: Logger;
  try {
    // stdout belongs to CMD: access lines go to a file or nowhere.
    logger = new Logger({
      level: config.log.loglevel,
      access: config.log.access === "" ? "none" : config.log.access,
      error: config.log.error,
    });
  } catch (e) {
    throw new UserError(`Cannot open log file: ${messageOf(e)}`);
  }
  const app = await startApp(withOnlyExecInbound(config), { logger }).catch((e) => {
    throw new UserError(`dray exec: cannot start the proxy: ${messageOf(e)}`);
  });
  try {
    if (early !== undefined) return 128 + signalNumber(early);
    const port = app.inbounds[0].port;
    const noProxy = stringValue(values, "no-proxy") ?? DEFAULT_NO_PROXY;
    try {
      child = new Deno.Command(command[0], {
        args: command.slice(1),
        env: proxyEnv(port, noProxy),
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        io.err(`dray exec: ${command[0]}: command not found`);
        return 127;
      }
      io.err(`dray exec: cannot run ${command[0]}: ${messageOf(e)}`);
      return 126;
    }
    // Deno reports a signal's end as code 128+N already, as a shell does.
    return (await child.status).code;
  } finally {
    await app.close(CLOSE_GRACE_MS);
  }
}

/** The config with one mixed inbound on a free loopback port instead of its own inbounds. */
function withOnlyExecInbound(config: Config): Config {
  const inbound: MixedInboundConfig = {
    protocol: "mixed",
    tag: "exec",
    listen: "127.0.0.1",
    // Port 0: the system picks a free port; RunningInbound.port tells which.
    port: 0,
    settings: { auth: "noauth", accounts: [], udp: true, ip: "", userLevel: 0 },
    sniffing: { enabled: false, destOverride: [] },
  };
  return { ...config, inbounds: [inbound] };
}

/** The proxy variables, both spellings (curl reads only lowercase http_proxy, others uppercase). */
export function proxyEnv(port: number, noProxy: string): Record<string, string> {
  const socks = `socks5h://127.0.0.1:${port}`;
  const http = `http://127.0.0.1:${port}`;
  return {
    ALL_PROXY: socks,
    all_proxy: socks,
    HTTP_PROXY: http,
    http_proxy: http,
    HTTPS_PROXY: http,
    https_proxy: http,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
  };
}

/** POSIX numbers of the signals dray forwards. */
function signalNumber(sig: Deno.Signal): number {
  return sig === "SIGINT" ? 2 : 15;
}
