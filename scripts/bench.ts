/**
 * `deno task bench`: dray against v2ray 4.34 side by side (issue 7). Everything runs on loopback
 * and is started and stopped here: a target server, a raw-TLS peer, v2ray and dray as VLESS
 * servers over http (h2) + TLS (or ws + TLS with --transport ws), and v2ray and dray as SOCKS5 → VLESS clients. The matrix is
 * {v2ray, dray} client × {v2ray, dray} server plus `direct` and raw TLS as ceilings.
 *
 * Figures are reported, never asserted: a table on stdout, and bench-results/<date>.json (every
 * sample) and .md (the table for the README). Progress goes to stderr.
 *
 *   deno task bench [--size 512MiB] [--parallel-size 128MiB] [--repeats 3] [--quick]
 *                   [--scenarios download,upload,…] [--rows dray-v2ray,v2ray-v2ray,…]
 *                   [--transport http|ws] [--budget 540] [--out bench-results]
 *
 * Environment: V2RAY_BIN (default /usr/bin/v2ray); DRAY_MAIN=<another checkout's main.ts> to
 * measure that tree (e.g. before/after a change) with this harness.
 */
import { parseArgs } from "node:util";
import { buildReport, markdown, textTable } from "./bench/report.ts";
import { ROWS, runMatrix } from "./bench/runner.ts";
import { Service, type Transport, TRANSPORTS } from "./bench/processes.ts";
import { parseBytes, SCENARIOS, type Workload } from "./bench/scenarios.ts";

const HELP = `Usage: deno task bench [options]

  --size <bytes>           single-connection download/upload size (default 512MiB)
  --parallel-size <bytes>  bytes in total across the parallel connections (default 128MiB)
  --repeats <n>            repeats per measurement; medians are reported (default 3)
  --quick                  fewer echoes, connects, EOF and UDP samples (for smoke runs)
  --scenarios <list>       comma-separated subset of: ${SCENARIOS.map((s) => s.name).join(", ")}
  --rows <list>            comma-separated subset of: ${ROWS.map((r) => r.id).join(", ")}
  --transport <name>       VLESS between the proxies over http (h2) or ws, TLS either way
                           (default http)
  --budget <seconds>       measurements not started by then are skipped (default 540)
  --out <dir>              where the JSON and markdown go (default bench-results)
  -h, --help               print this help

Environment: V2RAY_BIN (default /usr/bin/v2ray), DRAY_MAIN (default ./main.ts).`;

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${HELP}`);
  Deno.exit(2);
}

function pick<T extends { name?: string; id?: string }>(
  all: readonly T[],
  list: string | undefined,
  what: string,
): T[] {
  if (list === undefined) return [...all];
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  const key = (t: T) => t.name ?? t.id ?? "";
  for (const n of names) if (!all.some((t) => key(t) === n)) fail(`unknown ${what} "${n}"`);
  return all.filter((t) => names.includes(key(t)));
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) fail(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

async function v2rayVersion(): Promise<string> {
  try {
    const out = await new Deno.Command(Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray", {
      args: ["-version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n")[0].split(" (")[0].trim();
  } catch {
    return "v2ray (version unknown)";
  }
}

/** The commit measured, and whether dray's code (lib/, main.ts) differs from it. */
async function source(): Promise<{ commit: string; dirty: boolean }> {
  const git = async (args: string[]) => {
    const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  };
  try {
    const commit = await git(["rev-parse", "--short", "HEAD"]) ?? "unknown";
    const changes = await git(["status", "--porcelain", "--", "lib", "main.ts"]);
    return { commit, dirty: changes !== undefined && changes !== "" };
  } catch {
    return { commit: "unknown", dirty: false };
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"));
    return m ? m[1].trim() : "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        size: { type: "string", default: "512MiB" },
        "parallel-size": { type: "string", default: "128MiB" },
        repeats: { type: "string", default: "3" },
        quick: { type: "boolean", default: false },
        scenarios: { type: "string" },
        rows: { type: "string" },
        transport: { type: "string", default: "http" },
        budget: { type: "string", default: "540" },
        out: { type: "string", default: "bench-results" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  let size: number, parallelTotal: number;
  try {
    size = parseBytes(values.size);
    parallelTotal = parseBytes(values["parallel-size"]);
  } catch (err) {
    fail((err as Error).message);
  }
  const transport = values.transport as Transport;
  if (!TRANSPORTS.includes(transport)) {
    fail(`--transport must be one of ${TRANSPORTS.join(", ")}, got "${values.transport}"`);
  }
  const quick = values.quick;
  const work: Workload = {
    transport,
    size,
    parallelTotal,
    echoes: quick ? 100 : 1000,
    connects: quick ? 20 : 200,
    eofSamples: quick ? 1 : 3,
    udpEchoes: quick ? 20 : 200,
    idleConnections: 512,
    burstConnections: 250,
    burstSettleMs: quick ? 3_000 : 30_000,
  };
  const repeats = positiveInt(values.repeats, "--repeats");
  const budgetMs = positiveInt(values.budget, "--budget") * 1000;
  const scenarios = pick(SCENARIOS, values.scenarios, "scenario");
  const rows = pick(ROWS, values.rows, "row");

  const started = performance.now();
  const date = new Date();
  const results = await runMatrix({
    rows,
    scenarios,
    work,
    repeats,
    budgetMs,
    progress: (line) => console.error(line),
  });
  const report = buildReport(results, {
    date: date.toISOString(),
    // The transport is spelled out even when defaulted, so no table can be read as the other's.
    command: [
      "deno task bench",
      ...Deno.args,
      ...(values.transport === "http" && !Deno.args.some((a) => a.startsWith("--transport"))
        ? ["--transport", "http"]
        : []),
    ].join(" "),
    machine: {
      cores: navigator.hardwareConcurrency,
      cpu: cpuModel(),
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      deno: Deno.version.deno,
      v2ray: await v2rayVersion(),
    },
    source: await source(),
    workload: work,
    repeats,
    scenarios,
    elapsedSeconds: (performance.now() - started) / 1000,
  });

  console.log(textTable(report));
  await Deno.mkdir(values.out, { recursive: true });
  const stem = `${values.out}/${date.toISOString().replace(/:/g, "-").replace(/\.\d+Z$/, "Z")}`;
  await Deno.writeTextFile(`${stem}.json`, JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(`${stem}.md`, markdown(report));
  console.log(`wrote ${stem}.json and ${stem}.md`);
}

if (import.meta.main) {
  // Stopped from outside (a test's timeout, Ctrl-C): take the servers and clients down with us.
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    Deno.addSignalListener(signal, () => {
      Service.killAll();
      Deno.exit(code);
    });
  }
  await main();
  Deno.exit(0);
}
