/**
 * Turns samples into the report: medians per figure, the dray/v2ray ratios pair by pair, the
 * issue's targets checked against them, a plain-text table for the terminal, a markdown table for
 * the README, and the JSON that keeps every sample.
 */
import type { RowResult, Sample } from "./runner.ts";
import type { Scenario, Workload } from "./scenarios.ts";
import { median } from "./stats.ts";
import { type Transport, TRANSPORT_LABELS } from "./processes.ts";

export interface ScenarioSummary {
  samples: Sample[];
  /** Median of each figure over the samples that ran. */
  median: Record<string, number>;
  /** True when at least one sample ran and every sample ran without error and verified. */
  verified: boolean;
  errors: string[];
}

export interface RowSummary {
  id: string;
  label: string;
  client: string | null;
  server: string | null;
  status: "ok" | "errors" | "unavailable";
  unavailable?: string;
  scenarios: Record<string, ScenarioSummary>;
}

/** numerator row / denominator row, for every figure. */
export interface RatioSpec {
  name: string;
  numerator: string;
  denominator: string;
  /** Only for figures whose name matches (throughput for the TLS ceiling). */
  only?: RegExp;
}

export const RATIOS: readonly RatioSpec[] = [
  { name: "dray/v2ray client @v2ray server", numerator: "dray-v2ray", denominator: "v2ray-v2ray" },
  { name: "dray/v2ray client @dray server", numerator: "dray-dray", denominator: "v2ray-dray" },
  { name: "dray↔dray / v2ray↔v2ray", numerator: "dray-dray", denominator: "v2ray-v2ray" },
  { name: "dray↔dray / raw TLS", numerator: "dray-dray", denominator: "tls", only: /MiB\/s/ },
];

export interface TargetCheck {
  target: string;
  value: number | null;
  /** "≥ 1.0" and the like. */
  want: string;
  met: boolean | null;
}

export interface Report {
  date: string;
  command: string;
  machine: { cores: number; cpu: string; os: string; deno: string; v2ray: string };
  /** The dray tree measured: commit, and whether lib/ or main.ts had uncommitted changes. */
  source: { commit: string; dirty: boolean };
  workload: Workload;
  repeats: number;
  scenarios: { name: string; description: string }[];
  elapsedSeconds: number;
  rows: RowSummary[];
  /** ratios[scenario][figure][ratio name] */
  ratios: Record<string, Record<string, Record<string, number>>>;
  targets: TargetCheck[];
}

export function summarize(results: RowResult[]): RowSummary[] {
  return results.map(({ row, unavailable, samples }) => {
    const scenarios: Record<string, ScenarioSummary> = {};
    for (const [name, list] of samples) {
      const ran = list.filter((s) => !s.error);
      const keys = [...new Set(ran.flatMap((s) => Object.keys(s.figures)))];
      scenarios[name] = {
        samples: list,
        median: Object.fromEntries(
          keys.map((k) => [k, median(ran.map((s) => s.figures[k]).filter(Number.isFinite))]),
        ),
        verified: list.length > 0 && list.every((s) => !s.error && s.verified),
        errors: list.flatMap((s) => s.error ? [`#${s.repeat + 1}: ${s.error}`] : []),
      };
    }
    const clean = Object.values(scenarios).every((s) => s.verified);
    return {
      id: row.id,
      label: row.label,
      client: row.client ?? null,
      server: row.server ?? null,
      status: unavailable ? "unavailable" : clean ? "ok" : "errors",
      ...(unavailable ? { unavailable } : {}),
      scenarios,
    };
  });
}

function figure(rows: RowSummary[], row: string, scenario: string, name: string): number {
  const v = rows.find((r) => r.id === row)?.scenarios[scenario]?.median[name];
  return v === undefined ? NaN : v;
}

/**
 * numerator / denominator pair by pair: the ratio of the two rows' samples from the same repeat
 * (measured back to back), then the median of those ratios.
 */
function pairRatio(
  rows: RowSummary[],
  scenario: string,
  name: string,
  numerator: string,
  denominator: string,
): number {
  const samples = (id: string) => rows.find((r) => r.id === id)?.scenarios[scenario]?.samples ?? [];
  const below = samples(denominator);
  const ratios = samples(numerator).flatMap((a) => {
    const b = below.find((s) => s.repeat === a.repeat);
    if (!b || a.error || b.error) return [];
    const r = a.figures[name] / b.figures[name];
    return Number.isFinite(r) ? [r] : [];
  });
  return median(ratios);
}

export function ratios(rows: RowSummary[]): Report["ratios"] {
  const out: Report["ratios"] = {};
  for (const [scenario, name] of figureKeys(rows)) {
    for (const spec of RATIOS) {
      if (spec.only && !spec.only.test(name)) continue;
      const r = pairRatio(rows, scenario, name, spec.numerator, spec.denominator);
      if (!Number.isFinite(r)) continue;
      ((out[scenario] ??= {})[name] ??= {})[spec.name] = r;
    }
  }
  return out;
}

/** [scenario, figure] pairs, grouped by scenario, each in the order it first appears. */
function figureKeys(rows: RowSummary[]): [string, string][] {
  const seen = new Map<string, Set<string>>();
  for (const row of rows) {
    for (const [scenario, s] of Object.entries(row.scenarios)) {
      const names = seen.get(scenario) ?? new Set();
      for (const name of Object.keys(s.median)) names.add(name);
      seen.set(scenario, names);
    }
  }
  // Within a scenario: its own figures, then the client's, then the server's.
  const rank = (n: string) => n.startsWith("client ") ? 1 : n.startsWith("server ") ? 2 : 0;
  return [...seen].flatMap(([scenario, names]) =>
    [...names].sort((a, b) => rank(a) - rank(b)).map((n): [string, string] => [scenario, n])
  );
}

/**
 * The targets for the run's transport, dray's client against v2ray's measured in the same run:
 * issues 7 and 16 over http (h2), issue 14 over ws.
 */
export function checkTargets(rows: RowSummary[], transport: Transport = "http"): TargetCheck[] {
  const at = (row: string, scenario: string, name: string) => figure(rows, row, scenario, name);
  const ratio = (scenario: string, name: string, a: string, b: string) =>
    pairRatio(rows, scenario, name, a, b);
  const check = (target: string, value: number, op: "≥" | "≤" | "<", limit: number) => {
    const known = Number.isFinite(value);
    return {
      target,
      value: known ? value : null,
      want: `${op} ${limit}`,
      met: !known
        ? null
        : op === "≥"
        ? value >= limit
        : op === "≤"
        ? value <= limit
        : value < limit,
    };
  };
  const viaV2ray = (s: string, n: string) => ratio(s, n, "dray-v2ray", "v2ray-v2ray");
  const both = (s: string, n: string) => ratio(s, n, "dray-dray", "v2ray-v2ray");
  const tls = (s: string) => ratio(s, "MiB/s", "dray-dray", "tls");
  if (transport === "ws") {
    return [
      check(
        "download via v2ray server, dray/v2ray client",
        viaV2ray("download", "MiB/s"),
        "≥",
        1.3,
      ),
      check(
        "client CPU per GiB downloaded via v2ray server, dray/v2ray",
        viaV2ray("download", "client CPU s/GiB"),
        "≤",
        0.8,
      ),
      check(
        "connect → first byte p50 via v2ray server, dray/v2ray",
        viaV2ray("connect", "p50 ms"),
        "≤",
        1,
      ),
      check("download dray↔dray / v2ray↔v2ray", both("download", "MiB/s"), "≥", 2),
      check("upload dray↔dray / v2ray↔v2ray", both("upload", "MiB/s"), "≥", 2),
    ];
  }
  return [
    check("download via v2ray server, dray/v2ray client", viaV2ray("download", "MiB/s"), "≥", 1),
    check("upload via v2ray server, dray/v2ray client", viaV2ray("upload", "MiB/s"), "≥", 1),
    check(
      "client CPU per GiB downloaded via v2ray server, dray/v2ray",
      viaV2ray("download", "client CPU s/GiB"),
      "≤",
      0.8,
    ),
    check(
      "client CPU per GiB uploaded via v2ray server, dray/v2ray",
      viaV2ray("upload", "client CPU s/GiB"),
      "≤",
      0.8,
    ),
    check(
      "connect → first byte p50 via v2ray server, dray/v2ray",
      viaV2ray("connect", "p50 ms"),
      "≤",
      0.7,
    ),
    check(
      "last byte → EOF p50 via v2ray server, ms (the server's own hold is ~1000)",
      at("dray-v2ray", "eof", "p50 ms"),
      "≤",
      1100,
    ),
    check(
      "client peak RSS at 512 parallel via v2ray server, dray/v2ray",
      viaV2ray("parallel-512", "client peak RSS MiB"),
      "≤",
      0.5,
    ),
    // Issue 16: memory at or below the v2ray client's, and given back after a burst.
    check(
      "client RSS with 512 idle connections via v2ray server, dray/v2ray (issue 16)",
      viaV2ray("idle", "client RSS MiB"),
      "≤",
      1,
    ),
    check(
      "client RSS 30 s after a burst of 250 / before it, dray→v2ray (issue 16; not with --quick)",
      at("dray-v2ray", "burst", "after/before"),
      "≤",
      1.15,
    ),
    check("last byte → EOF p50 dray→dray, ms", at("dray-dray", "eof", "p50 ms"), "<", 10),
    check("download dray↔dray / v2ray↔v2ray", both("download", "MiB/s"), "≥", 3),
    check("upload dray↔dray / v2ray↔v2ray", both("upload", "MiB/s"), "≥", 3),
    check("download dray↔dray / raw TLS", tls("download"), "≥", 0.4),
    check("upload dray↔dray / raw TLS", tls("upload"), "≥", 0.4),
  ];
}

export function buildReport(
  results: RowResult[],
  meta: Omit<Report, "rows" | "ratios" | "targets" | "scenarios"> & { scenarios: Scenario[] },
): Report {
  const rows = summarize(results);
  return {
    ...meta,
    scenarios: meta.scenarios.map((s) => ({
      name: s.name,
      description: s.description(meta.workload),
    })),
    rows,
    ratios: ratios(rows),
    targets: checkTargets(rows, meta.workload.transport),
  };
}

function format(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** The table as cells: a header row, then one row per scenario figure. */
function cells(report: Report): string[][] {
  const rows = report.rows;
  const head = [
    "figure",
    ...rows.map((r) => r.label),
    ...RATIOS.map((r) => r.name),
  ];
  const body = figureKeys(rows).map(([scenario, name]) => [
    `${scenario} ${name}`,
    ...rows.map((r) => {
      const s = r.scenarios[scenario];
      if (!s) return r.status === "unavailable" ? "n/a" : "–";
      const v = format(s.median[name]);
      return s.verified ? v : `${v}!`;
    }),
    ...RATIOS.map((spec) => {
      const v = report.ratios[scenario]?.[name]?.[spec.name];
      return v === undefined ? "" : `${v.toFixed(2)}×`;
    }),
  ]);
  return [head, ...body];
}

function notes(report: Report): string[] {
  const out: string[] = [];
  for (const r of report.rows) {
    if (r.unavailable) {
      out.push(`${r.label}: unavailable — ${r.unavailable.split("\n").slice(0, 3).join(" | ")}`);
    }
    for (const [name, s] of Object.entries(r.scenarios)) {
      for (const e of s.errors) out.push(`${r.label} ${name} ${e.split("\n")[0]}`);
      if (!s.verified && s.errors.length === 0) out.push(`${r.label} ${name}: NOT VERIFIED`);
    }
  }
  return out;
}

function targetLines(report: Report): string[] {
  return report.targets.map((t) => {
    const mark = t.met === null ? "n/a " : t.met ? "met " : "MISS";
    const value = t.value === null ? "–" : format(t.value);
    return `${mark} ${t.target}: ${value} (want ${t.want})`;
  });
}

function transportText(report: Report): string {
  return TRANSPORT_LABELS[report.workload.transport];
}

/** Which issues' targets the run's transport is checked against. */
function targetIssues(report: Report): string {
  return report.workload.transport === "ws" ? "issue 14" : "issues 7, 16";
}

function sourceText(report: Report): string {
  return `${report.source.commit}${report.source.dirty ? " + uncommitted changes" : ""}`;
}

export function textTable(report: Report): string {
  const table = cells(report);
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const line = (row: string[]) =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  const m = report.machine;
  return [
    `dray benchmark over ${
      transportText(report)
    }, ${report.date} — ${m.cores} cores, ${m.cpu}; deno ${m.deno}; ${m.v2ray}; ` +
    `dray ${sourceText(report)}`,
    `command: ${report.command}   (${report.repeats} repeats, medians; "!" = not verified or failed)`,
    "",
    line(table[0]),
    ...table.slice(1).map(line),
    "",
    `targets (${targetIssues(report)}):`,
    ...targetLines(report).map((l) => `  ${l}`),
    ...(notes(report).length ? ["", "notes:", ...notes(report).map((l) => `  ${l}`)] : []),
    "",
  ].join("\n");
}

export function markdown(report: Report): string {
  const table = cells(report);
  const row = (r: string[]) => `| ${r.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
  const m = report.machine;
  return [
    `### Benchmark over ${transportText(report)}, ${report.date.slice(0, 10)}`,
    "",
    `Machine: ${m.cores} cores (${m.cpu}), ${m.os}; Deno ${m.deno}; ${m.v2ray}; ` +
    `dray ${sourceText(report)}.`,
    `Command: \`${report.command}\` — ${report.repeats} repeats, medians (ratios: median of ` +
    `the per-repeat ratios), ` +
    `${
      report.elapsedSeconds.toFixed(0)
    } s. Everything on loopback; every transfer sha256-verified ` +
    `("!" marks a figure with a failed or unverified sample).`,
    "",
    ...report.scenarios.map((s) => `- \`${s.name}\`: ${s.description}`),
    "",
    "Columns: `direct` = no proxy; `raw TLS` = TLS between two Deno processes (bulk figures from " +
    "Deno.listenTls, latency from node:tls with TCP_NODELAY, since a Deno.listenTls connection " +
    "cannot turn Nagle off); `A→B` = A client (SOCKS5 inbound) → B server, VLESS over " +
    `${transportText(report)}. CPU and RSS are per process, from /proc; each client is a fresh ` +
    "process per sample.",
    "",
    row(table[0]),
    row(table[0].map((_, i) => (i === 0 ? "---" : "---:"))),
    ...table.slice(1).map(row),
    "",
    `Targets (${targetIssues(report)}):`,
    "",
    ...targetLines(report).map((l) => `- ${l}`),
    ...(notes(report).length ? ["", "Notes:", "", ...notes(report).map((l) => `- ${l}`)] : []),
    "",
  ].join("\n");
}
