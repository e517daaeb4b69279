/**
 * `dray probe`: is each server usable, and how fast — every server of a config, links and a
 * subscription, in one process, no inbound opened. Results go to stdout only (an aligned table,
 * or one JSON object per line with --json, in input order as they complete); a live progress
 * line goes to stderr when it is a terminal.
 */
import { createTransport } from "../app.ts";
import { insecureHosts } from "../config/tls_settings.ts";
import type { Config } from "../config/types.ts";
import { PROBE_DEFAULTS, probeAll, type ProbeResult } from "../probe/probe.ts";
import { type ProbeTarget, probeTargets } from "../probe/probe_targets.ts";
import {
  ExitCode,
  intValue,
  type OptionSpec,
  parseCommandArgs,
  secondsValue,
  stringValue,
  usageError,
  UserError,
} from "./args.ts";
import {
  CONFIG_FLAGS,
  configFromLinks,
  configSources,
  loadLinks,
  readConfigFile,
} from "./config_source.ts";
import { relaunchInsecure } from "./insecure_relaunch.ts";
import { messageOf } from "../error_message.ts";

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Writes without a newline (the progress line); only called when `progress` is true. */
  errRaw(text: string): void;
  /** stderr is a terminal: show a live progress line. */
  progress: boolean;
  version: string;
}

export const PROBE_FLAGS: OptionSpec = {
  ...CONFIG_FLAGS,
  url: { type: "string" },
  tries: { type: "string" },
  "connect-timeout": { type: "string" },
  timeout: { type: "string" },
  concurrency: { type: "string" },
  cacert: { type: "string" },
  json: { type: "boolean" },
  any: { type: "boolean" },
};

export const PROBE_HELP =
  `Usage: dray probe [-c <config.json>] [--link <vless://…>]… [--sub <source>] [options]

Checks that each server works, and how fast: a GET to --url through that server alone (its real
transport, TLS, HTTP/2 and VLESS), every server in one process, no inbound opened. The delay is
the best of --tries requests. A failure names its stage: tcp, tls, transport (HTTP/2 status or
reset), vless (nothing came back: wrong user id, target unreachable from the server) or http
(the target's answer; a non-2xx status fails).

Servers: every vnext entry of every vless outbound of -c, each --link, each link of --sub (any mix).

Options:
  -c, --config <file>         a v2ray-style JSON config
      --link <url>            a vless:// share link (repeatable)
      --sub <source>          a subscription: a file, - (stdin) or an http(s) URL
      --url <url>             what to GET (default ${PROBE_DEFAULTS.url})
      --tries <n>             requests per server, the best counts (default ${PROBE_DEFAULTS.tries})
      --connect-timeout <s>   deadline for each connection setup, seconds (default ${
    PROBE_DEFAULTS.connectTimeoutMs / 1000
  })
      --timeout <s>           deadline for each server, every try included (default ${
    PROBE_DEFAULTS.timeoutMs / 1000
  })
      --concurrency <n>       servers probed at once (default ${PROBE_DEFAULTS.concurrency})
      --cacert <file>         trust only this CA (PEM) for --url's certificate, as curl's --cacert
      --json                  one JSON object per server and line: name, server, ok, ms, status,
                              stage, error, timings {tcp, connect, firstByte}, tries
      --any                   exit 0 when at least one server passed (default: all must pass)
  -h, --help                  print this help

Exit codes: 0 every server passed (--any: one did); 1 otherwise; 2 usage error; 23 invalid
config, link or subscription.`;

export async function cmdProbe(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs("probe", args, PROBE_FLAGS);
  if (values.help) {
    io.out(PROBE_HELP);
    return ExitCode.ok;
  }
  const urlText = stringValue(values, "url") ?? PROBE_DEFAULTS.url;
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw usageError("probe", `--url must be an http(s) URL, got "${urlText}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw usageError("probe", `--url must be an http(s) URL, got "${urlText}"`);
  }
  const tries = intValue("probe", values, "tries", { min: 1, max: 10, fallback: 2 });
  const concurrency = intValue("probe", values, "concurrency", {
    min: 1,
    max: 1024,
    fallback: PROBE_DEFAULTS.concurrency,
  });
  const connectTimeoutMs = secondsValue(
    "probe",
    values,
    "connect-timeout",
    PROBE_DEFAULTS.connectTimeoutMs,
  );
  const timeoutMs = secondsValue("probe", values, "timeout", PROBE_DEFAULTS.timeoutMs);
  const cacert = stringValue(values, "cacert");
  let targetCaCerts: string[] | undefined;
  if (cacert !== undefined) {
    try {
      targetCaCerts = [Deno.readTextFileSync(cacert)];
    } catch (e) {
      throw new UserError(`Cannot read --cacert "${cacert}": ${messageOf(e)}`);
    }
  }

  const sources = configSources(values);
  if (sources.config === undefined && sources.links.length === 0 && sources.sub === undefined) {
    throw usageError("probe", "give servers with -c <config.json>, --link <vless://…> or --sub");
  }
  const configs: Config[] = [];
  if (sources.config !== undefined) configs.push(readConfigFile(sources.config));
  if (sources.links.length > 0 || sources.sub !== undefined) {
    const links = await loadLinks(sources, { version: io.version, warn: io.err });
    configs.push(configFromLinks(links, {}));
  }
  const targets: ProbeTarget[] = configs.flatMap(probeTargets);
  if (targets.length === 0) {
    throw new UserError("dray probe: the config has no vless outbound to probe", ExitCode.config);
  }

  const insecure = [...new Set(configs.flatMap(insecureHosts))];
  const code = await relaunchInsecure(insecure, { warn: io.err });
  if (code !== undefined) return code;

  const printer = new ResultPrinter(io, targets.length, values.json === true);
  const results = await probeAll(targets, {
    url,
    tries,
    connectTimeoutMs,
    timeoutMs,
    targetCaCerts,
    userAgent: `dray/${io.version}`,
    concurrency,
    createTransport: (t) => createTransport(t.outbound.stream),
    onResult: (r, i) => printer.add(r, i),
  });
  printer.finish(results);
  const passed = results.filter((r) => r.ok).length;
  const success = values.any ? passed > 0 : passed === results.length;
  return success ? ExitCode.ok : ExitCode.failure;
}

/**
 * JSON lines as soon as every earlier server is done (so the order is the input's and nothing
 * waits for the slowest), or the table at the end; the progress line on a terminal meanwhile.
 */
class ResultPrinter {
  readonly #io: CliIo;
  readonly #total: number;
  readonly #json: boolean;
  readonly #done: Array<ProbeResult | undefined>;
  #printed = 0;
  #ok = 0;
  #count = 0;

  constructor(io: CliIo, total: number, json: boolean) {
    this.#io = io;
    this.#total = total;
    this.#json = json;
    this.#done = new Array(total);
  }

  add(result: ProbeResult, index: number): void {
    this.#count++;
    if (result.ok) this.#ok++;
    this.#done[index] = result;
    if (this.#json) {
      this.#clearProgress();
      // Bounded by the number of servers.
      while (this.#printed < this.#total && this.#done[this.#printed] !== undefined) {
        this.#io.out(JSON.stringify(this.#done[this.#printed]));
        this.#done[this.#printed++] = undefined;
      }
    }
    if (this.#io.progress) {
      this.#io.errRaw(
        `\r\x1b[Kprobing: ${this.#count}/${this.#total} done, ${this.#ok} ok, ` +
          `${this.#count - this.#ok} failed`,
      );
    }
  }

  finish(results: ProbeResult[]): void {
    this.#clearProgress();
    if (!this.#json) { for (const line of formatTable(results)) this.#io.out(line); }
    this.#io.err(`${this.#ok} of ${this.#total} servers passed`);
  }

  #clearProgress(): void {
    if (this.#io.progress) this.#io.errRaw("\r\x1b[K");
  }
}

/** An aligned table: one row per server, the error last (it is the long one). */
export function formatTable(results: readonly ProbeResult[]): string[] {
  const rows = [
    ["NAME", "SERVER", "RESULT", "MS", "STATUS", "STAGE", "ERROR"],
    ...results.map((r) => [
      r.name,
      r.server,
      r.ok ? "ok" : "FAIL",
      r.ms === null ? "-" : r.ms.toFixed(1),
      r.status === null ? "-" : String(r.status),
      r.stage ?? "-",
      r.error ?? "-",
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) =>
    row.map((cell, c) => c === row.length - 1 ? cell : cell.padEnd(widths[c])).join("  ")
      .trimEnd()
  );
}
