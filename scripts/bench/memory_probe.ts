/**
 * Where a dray SOCKS5 → VLESS client's memory goes: a diagnostic tool, not a test.
 *
 * Three processes, so the client's figures are its own: the target server
 * (scripts/bench/target_main.ts), a VLESS server (v2ray 4.34 by default, or dray with
 * `--server dray`), and the dray client run by this same file in `--child <config>` mode. The
 * child starts the app from a config like the benchmark's and answers commands on stdin, one JSON
 * line each on stdout: `mem` (Deno.memoryUsage, node:v8 heap statistics, /proc VmRSS/VmHWM),
 * `gc` (two full collections, then `mem`), `trim` (glibc malloc_trim, then `mem`: RSS without
 * the allocator's free memory), `snapshot <path>` (node:v8 writeHeapSnapshot) and
 * `alloc-start`/`alloc-stop` (the allocation profile below).
 *
 * Phases, each measured before and after a forced GC:
 *
 * 1. start, then one warm-up echo (the HTTP/2 connection to the server is dialled);
 * 2. N idle connections, each having echoed one byte (measured after a trim too);
 * 3. N parallel downloads of SIZE bytes read as fast as possible (the benchmark's parallel-N),
 *    with the client's peak RSS sampled from /proc and its heap/external/anon at the highest
 *    RSS it reported (sampled every 100 ms), then (`--bulk SIZE`) one timed download;
 * 4. N parallel downloads of SIZE bytes whose readers first stall (read one byte, then nothing)
 *    until the client stops growing — the most a slow reader lets the client buffer — and then
 *    read the rest, `--read-chunk` bytes per read with `--read-delay` ms between reads;
 * 5. everything closed again.
 *
 * With `--alloc-profile`, V8's sampling heap profiler runs through phases 2 and 3 (objects the GC
 * freed included), and the functions that allocated most are listed, per connection and per KiB
 * downloaded: where garbage comes from, which snapshots cannot show.
 *
 * With `--snapshot DIR`, heap snapshots are taken after phases 1, 2 and 3 and summarized by
 * constructor (count and self size, total and per connection, against phase 1). Snapshots cost
 * the client memory of their own: take RSS figures from a run without them.
 *
 *   deno run -A scripts/bench/memory_probe.ts [--n 512] [--size 256KiB] [--server v2ray|dray]
 *     [--snapshot /tmp/probe] [--alloc-profile] [--read-chunk 16384] [--read-delay 0] [--bulk 0]
 *     [--client-v8-flags=<flags>] [--json out.json]   (default: the start task's V8 flags)
 */
import { Session } from "node:inspector";
import v8 from "node:v8";
import { parseArgs } from "node:util";
import { startApp } from "../../lib/app.ts";
import { configBaseDir, parseConfig } from "../../lib/config/parse.ts";
import { Logger } from "../../lib/log.ts";
import {
  clientConfig,
  freePort,
  repoPath,
  serverConfig,
  type Service,
  startHelper,
  startProxy,
  V8_FLAGS,
} from "./processes.ts";
import { memory as procMemory, tcpConnectionsTo } from "./proc_stats.ts";
import { readExact, socksConnect, writeAll } from "./socks_client.ts";

const MIB = 1024 * 1024;
/** Connections opened at once (as the benchmark's idle scenario). */
const OPEN_BATCH = 64;
/** How long any one child command may take (a heap snapshot of a big heap takes seconds). */
const COMMAND_TIMEOUT_MS = 120_000;
/** The stall phase samples the client this often, and ends once it stopped growing. */
const STALL_SAMPLE_MS = 100;
/** RSS growth below this between samples counts as "stopped growing". */
const STALL_SETTLED_BYTES = 256 * 1024;
/** Samples in a row without growth that end the stall. */
const STALL_SETTLED_SAMPLES = 5;
/** Bound on the stall, whatever the client does. */
const STALL_MAX_MS = 15_000;
/** Bound on a whole phase's connection work. */
const PHASE_TIMEOUT_MS = 120_000;
/** Constructors listed in a snapshot summary, sites in an allocation profile. */
const TOP = 30;
/** The allocation profiler samples about one allocation per this many bytes. */
const ALLOC_SAMPLING_BYTES = 4096;

const encoder = new TextEncoder();

/** What the child reports for `mem` and `gc`. */
interface Mem {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  /** node:v8 getHeapStatistics(): malloced_memory (V8's own malloc, not ArrayBuffers). */
  malloced: number;
  /** /proc VmHWM: peak RSS over the process's life. */
  hwm: number;
  /** /proc smaps_rollup: anonymous resident bytes (V8 heap, ArrayBuffers, malloc arenas). */
  anon: number;
  /** V8 heap spaces: name → [committed physical bytes, used bytes]. */
  spaces: Record<string, [number, number]>;
}

// ---------------------------------------------------------------------------------------------
// The child: the dray client, driven over stdin/stdout.

/**
 * V8's sampling heap profiler over node:inspector, counting objects the GC has freed too: where a
 * phase allocates (garbage included), by function, not what it keeps.
 */
const allocations = (() => {
  let session: Session | undefined;
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) =>
      session!.post(
        method,
        params ?? {},
        (err: Error | null, result?: unknown) => err ? reject(err) : resolve(result as T),
      )
    );
  return {
    async start(): Promise<void> {
      if (!session) {
        session = new Session();
        session.connect();
        await post("HeapProfiler.enable");
      }
      await post("HeapProfiler.startSampling", {
        samplingInterval: ALLOC_SAMPLING_BYTES,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    },
    async stop(): Promise<Array<[string, number]>> {
      const { profile } = await post<{ profile: { head: ProfileNode } }>(
        "HeapProfiler.stopSampling",
      );
      const bySite = new Map<string, number>();
      const walk = (node: ProfileNode) => {
        const f = node.callFrame;
        const file = f.url.replace(/^.*\/(lib|ext|node|scripts)\//, "$1/");
        const site = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
        bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
        for (const child of node.children) walk(child);
      };
      walk(profile.head);
      return [...bySite].sort((a, b) => b[1] - a[1]).slice(0, TOP);
    },
  };
})();

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

async function runChild(configPath: string): Promise<void> {
  const text = await Deno.readTextFile(configPath);
  const config = parseConfig(text, { baseDir: configBaseDir(configPath) });
  const app = await startApp(config, { logger: Logger.silent() });
  const gc = (globalThis as { gc?: () => void }).gc;
  const out = (value: unknown) =>
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
  out({ ready: true, port: app.inbounds[0].port });
  let line = "";
  for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    line += text;
    for (let nl = line.indexOf("\n"); nl >= 0; nl = line.indexOf("\n")) {
      const [command, arg] = line.slice(0, nl).trim().split(" ");
      line = line.slice(nl + 1);
      if (command === "gc") {
        if (!gc) {
          out({ error: "run the child with --v8-flags=--expose-gc" });
          continue;
        }
        // Two rounds: the first may only run finalizers that free more on the second.
        gc();
        await new Promise((r) => setTimeout(r, 0));
        gc();
        out(childMemory());
      } else if (command === "trim") {
        // glibc's free memory back to the OS, as HeapTrimmer would a few seconds later: what is
        // left is in use (opening libc costs ~4 MiB of RSS itself, counted in).
        try {
          const libc = Deno.dlopen("libc.so.6", {
            malloc_trim: { parameters: ["usize"], result: "i32" },
          });
          libc.symbols.malloc_trim(0n);
          libc.close();
        } catch {
          // Not glibc: nothing to trim.
        }
        out(childMemory());
      } else if (command === "mem") {
        out(childMemory());
      } else if (command === "active") {
        out({ active: app.inbounds.reduce((sum, i) => sum + i.active, 0) });
      } else if (command === "alloc-start") {
        await allocations.start();
        out({ ok: true });
      } else if (command === "alloc-stop") {
        out({ top: await allocations.stop() });
      } else if (command === "snapshot") {
        out({ path: v8.writeHeapSnapshot(arg) });
      } else if (command === "quit") {
        await app.close(0);
        out({ bye: true });
        return;
      } else {
        out({ error: `unknown command ${command}` });
      }
    }
  }
  await app.close(0);
}

function childMemory(): Mem {
  const m = Deno.memoryUsage();
  const h = v8.getHeapStatistics();
  return {
    rss: m.rss,
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    malloced: h.malloced_memory,
    hwm: procMemory(Deno.pid)?.hwm ?? 0,
    anon: anonymousBytes(Deno.pid),
    spaces: Object.fromEntries(
      v8.getHeapSpaceStatistics()
        .filter((s) => s.physical_space_size > 0)
        .map((s) => [s.space_name, [s.physical_space_size, s.space_used_size]]),
    ),
  };
}

function anonymousBytes(pid: number): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    const m = /^Anonymous:\s+(\d+) kB/m.exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The child process and its command channel. */
class Client {
  readonly pid: number;
  readonly port: number;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;

  private constructor(child: Deno.ChildProcess, lines: AsyncIterator<string>, port: number) {
    this.#child = child;
    this.pid = child.pid;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines;
    this.port = port;
  }

  static async start(configPath: string, v8Flags: string): Promise<Client> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--v8-flags=--expose-gc${v8Flags ? `,${v8Flags}` : ""}`,
        repoPath("scripts/bench/memory_probe.ts"),
        "--child",
        configPath,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(child.stdout);
    const first = await withTimeout(lines.next(), COMMAND_TIMEOUT_MS, "client start");
    if (first.done) throw new Error("client exited before it was ready");
    const { port } = JSON.parse(first.value) as { port: number };
    const client = new Client(child, lines, port);
    return client;
  }

  async command<T>(line: string): Promise<T> {
    await this.#writer.write(encoder.encode(line + "\n"));
    const r = await withTimeout(this.#lines.next(), COMMAND_TIMEOUT_MS, `client "${line}"`);
    if (r.done) throw new Error(`client exited during "${line}"`);
    const value = JSON.parse(r.value);
    if (value.error) throw new Error(`client: ${value.error}`);
    return value as T;
  }

  async stop(): Promise<void> {
    try {
      await this.command("quit");
      await this.#writer.close();
    } catch {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited already.
      }
    }
    await this.#child.status;
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buf += text;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Heap snapshot summary.

/** Count and self size per "type:name" (constructor name for objects). */
export type HeapSummary = Map<string, { count: number; size: number }>;

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Aggregates a .heapsnapshot file by node type and name (strings and code by type only). */
export async function summarizeSnapshot(path: string): Promise<HeapSummary> {
  const json = JSON.parse(await Deno.readTextFile(path)) as SnapshotJson;
  const fields = json.snapshot.meta.node_fields;
  const types = json.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const summary: HeapSummary = new Map();
  const nodes = json.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    let name: string;
    switch (type) {
      case "string":
      case "concatenated string":
      case "sliced string":
      case "code":
      case "number":
      case "hidden":
        name = `(${type})`;
        break;
      case "closure":
        name = `closure ${json.strings[nodes[i + nameAt]].slice(0, 40) || "(anonymous)"}`;
        break;
      default:
        name = `${type === "object" ? "" : `${type} `}${json.strings[nodes[i + nameAt]]}`
          .slice(0, 60);
    }
    const e = summary.get(name);
    const size = nodes[i + sizeAt];
    if (e) {
      e.count++;
      e.size += size;
    } else summary.set(name, { count: 1, size });
  }
  return summary;
}

/** The constructors that grew most from `base` to `now`, per unit of `per`. */
function diffSummary(base: HeapSummary, now: HeapSummary, per: number): string {
  const rows: Array<{ name: string; count: number; size: number }> = [];
  for (const [name, e] of now) {
    const b = base.get(name) ?? { count: 0, size: 0 };
    rows.push({ name, count: e.count - b.count, size: e.size - b.size });
  }
  rows.sort((a, b) => b.size - a.size);
  let total = 0;
  for (const r of rows) total += r.size;
  const lines = [
    `  ${"constructor / type".padEnd(62)} ${"count".padStart(8)} ${"per conn".padStart(8)} ${
      "KiB".padStart(9)
    } ${"B/conn".padStart(8)}`,
  ];
  for (const r of rows.slice(0, TOP)) {
    lines.push(
      `  ${r.name.padEnd(62)} ${String(r.count).padStart(8)} ${
        (r.count / per).toFixed(2).padStart(8)
      } ${(r.size / 1024).toFixed(0).padStart(9)} ${(r.size / per).toFixed(0).padStart(8)}`,
    );
  }
  lines.push(
    `  ${"(all)".padEnd(62)} ${"".padStart(17)} ${(total / 1024).toFixed(0).padStart(9)} ${
      (total / per).toFixed(0).padStart(8)
    }`,
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// The driver.

/** Downloads `size` bytes through the SOCKS proxy, reading as fast as it can. */
async function download(
  socksPort: number,
  dest: { hostname: string; port: number },
  size: number,
): Promise<void> {
  const conn = await socksConnect(socksPort, dest);
  try {
    await writeAll(conn, encoder.encode(`download ${size}\n`));
    const buf = new Uint8Array(256 * 1024);
    for (let got = 0; got < size;) {
      const k = await conn.read(buf);
      if (k === null) throw new Error(`download ended after ${got} of ${size} bytes`);
      got += k;
    }
  } finally {
    conn.close();
  }
}

function fmt(m: Mem): string {
  const f = (n: number) => (n / MIB).toFixed(1).padStart(6);
  const spaces = Object.entries(m.spaces)
    .map(([name, [committed, used]]) => `${name.replace("_space", "")} ${f(committed)}/${f(used)}`)
    .join("  ");
  return `rss ${f(m.rss)}  anon ${f(m.anon)}  heapUsed ${f(m.heapUsed)}  heapTotal ${
    f(m.heapTotal)
  }  external ${f(m.external)}  hwm ${
    f(m.hwm)
  }  MiB\n            spaces (committed/used MiB): ${spaces}`;
}

function perConn(label: string, from: Mem, to: Mem, n: number): string {
  const f = (k: "rss" | "anon" | "heapUsed" | "heapTotal" | "external") =>
    `${k} ${((to[k] - from[k]) / n / 1024).toFixed(1)}`;
  const rest = (m: Mem) => m.rss - m.heapTotal - m.external;
  return `  per connection (${label}, KiB): ${f("rss")}  ${f("anon")}  ${f("heapUsed")}  ${
    f("heapTotal")
  }  ${f("external")}  rss-heapTotal-external ${((rest(to) - rest(from)) / n / 1024).toFixed(1)}`;
}

function parseSize(s: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib)?$/i.exec(s.trim());
  if (!m) throw new TypeError(`Cannot parse size "${s}"`);
  const unit = (m[2] ?? "").toLowerCase();
  return Number(m[1]) * (unit.startsWith("m") ? MIB : unit.startsWith("k") ? 1024 : 1);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      n: { type: "string", default: "512" },
      size: { type: "string", default: "256KiB" },
      server: { type: "string", default: "v2ray" },
      snapshot: { type: "string" },
      "alloc-profile": { type: "boolean", default: false },
      "read-chunk": { type: "string", default: "16384" },
      "read-delay": { type: "string", default: "0" },
      json: { type: "string" },
      bulk: { type: "string", default: "0" },
      "client-v8-flags": { type: "string", default: V8_FLAGS },
    },
  });
  if (values.child) return await runChild(values.child);
  const n = Number(values.n);
  const size = parseSize(values.size);
  const readChunk = Number(values["read-chunk"]);
  const readDelay = Number(values["read-delay"]);
  const bulk = parseSize(values.bulk);
  const server = values.server;
  if (server !== "v2ray" && server !== "dray") throw new TypeError("--server is v2ray or dray");
  if (!(n >= 1 && n <= 4096)) throw new RangeError("--n must be 1-4096");

  const services: Service[] = [];
  let client: Client | undefined;
  const dir = await Deno.makeTempDir({ prefix: "dray-memory-probe-" });
  const results: Record<string, unknown> = { n, size, server };
  const snapshots: Record<string, HeapSummary> = {};
  try {
    const { service: target, ports } = await startHelper("target", "target_main.ts");
    services.push(target);
    const serverPort = freePort();
    services.push(
      await startProxy("server", server, serverConfig(serverPort), serverPort),
    );
    const socksPort = freePort();
    const cfgPath = `${dir}/client.json`;
    await Deno.writeTextFile(cfgPath, JSON.stringify(clientConfig(socksPort, serverPort)));
    client = await Client.start(cfgPath, values["client-v8-flags"]);
    const c = client;
    const dest = { hostname: "127.0.0.1", port: ports.tcp };
    /** Waits (bounded) until the client serves no connection: closes have propagated. */
    const drained = async () => {
      const t0 = performance.now();
      while (performance.now() - t0 < STALL_MAX_MS) {
        if ((await c.command<{ active: number }>("active")).active === 0) return;
        await new Promise((r) => setTimeout(r, STALL_SAMPLE_MS));
      }
      console.log("  (client still had active connections)");
    };
    const measure = async (label: string): Promise<{ live: Mem; gc: Mem }> => {
      const h2 = tcpConnectionsTo(c.pid, serverPort);
      const live = await c.command<Mem>("mem");
      const gc = await c.command<Mem>("gc");
      console.log(
        `${label} (HTTP/2 connections to the server: ${h2})\n  live      ${fmt(live)}\n` +
          `  after gc  ${fmt(gc)}`,
      );
      results[label] = { live, gc };
      return { live, gc };
    };
    const snapshot = async (label: string) => {
      if (!values.snapshot) return;
      await Deno.mkdir(values.snapshot, { recursive: true });
      const path = `${values.snapshot}/${label}.heapsnapshot`;
      const t0 = performance.now();
      await c.command(`snapshot ${path}`);
      snapshots[label] = await summarizeSnapshot(path);
      console.log(
        `  snapshot ${path} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
    };

    const allocStart = async () => {
      if (values["alloc-profile"]) await c.command("alloc-start");
    };
    const allocReport = async (label: string, per: number, unit: string) => {
      if (!values["alloc-profile"]) return;
      const { top } = await c.command<{ top: Array<[string, number]> }>("alloc-stop");
      console.log(`allocated during ${label} (sampled, freed objects included), by function:`);
      console.log(
        `  ${"function site".padEnd(90)} ${"KiB".padStart(9)} ${`B/${unit}`.padStart(9)}`,
      );
      for (const [site, bytes] of top) {
        console.log(
          `  ${site.slice(0, 90).padEnd(90)} ${(bytes / 1024).toFixed(0).padStart(9)} ${
            (bytes / per).toFixed(1).padStart(9)
          }`,
        );
      }
    };

    console.log(`client pid ${c.pid}, server ${server}, N=${n}, size=${size}`);
    const start = await measure("start");

    // Phase 1: one echo dials the HTTP/2 connection, so later phases count connections only.
    {
      const conn = await socksConnect(c.port, dest);
      await writeAll(conn, encoder.encode("echo\n!"));
      await readExact(conn, 1);
      conn.close();
    }
    const warm = await measure("warm (1 echo done)");
    await snapshot("warm");

    // Phase 2: N idle connections.
    const conns: Deno.TcpConn[] = [];
    try {
      await allocStart();
      const t0 = performance.now();
      await withTimeout(
        (async () => {
          for (let opened = 0; opened < n; opened += OPEN_BATCH) {
            await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, n - opened) }, async () => {
              const conn = await socksConnect(c.port, dest);
              conns.push(conn);
              await writeAll(conn, encoder.encode("echo\n!"));
              if ((await readExact(conn, 1))[0] !== 0x21) throw new Error("echo mismatch");
            }));
          }
        })(),
        PHASE_TIMEOUT_MS,
        "opening idle connections",
      );
      console.log(`opened ${n} idle connections in ${(performance.now() - t0).toFixed(0)} ms`);
      await allocReport("opening the idle connections", n, "conn");
      const idle = await measure(`idle x${n}`);
      const trimmed = await c.command<Mem>("trim");
      console.log(`  after trim ${fmt(trimmed)}`);
      console.log(perConn("after gc+trim vs warm", warm.gc, trimmed, n));
      console.log(perConn("live vs warm", warm.live, idle.live, n));
      console.log(perConn("after gc vs warm", warm.gc, idle.gc, n));
      await snapshot("idle");
      if (snapshots.idle && snapshots.warm) {
        console.log(`heap growth warm → idle x${n}, by constructor:`);
        console.log(diffSummary(snapshots.warm, snapshots.idle, n));
      }
    } finally {
      for (const conn of conns) conn.close();
    }
    await drained();
    const closedIdle = await measure("idle connections closed");
    console.log(perConn("after gc vs warm", warm.gc, closedIdle.gc, n));

    // Phase 3: N downloads read as fast as possible, as the benchmark's parallel-N does.
    {
      const sampler = samplePeakRss(c.pid);
      await allocStart();
      const breakdown = sampleChildMemory(c);
      const t0 = performance.now();
      let peak: number;
      let atPeak: Mem | undefined;
      try {
        await withTimeout(
          Promise.all(Array.from({ length: n }, () => download(c.port, dest, size))),
          PHASE_TIMEOUT_MS,
          "fast downloads",
        );
      } finally {
        peak = await sampler.stop();
        atPeak = await breakdown.stop();
      }
      const ms = performance.now() - t0;
      console.log(
        `fast: ${n} x ${size} B downloaded in ${ms.toFixed(0)} ms ` +
          `(${((n * size) / MIB / (ms / 1000)).toFixed(0)} MiB/s); client RSS peak ` +
          `${(peak / MIB).toFixed(1)} MiB`,
      );
      // Where the peak went: the child's own figures at the sample with the highest RSS (taken
      // every 100 ms, so a little below the /proc peak above).
      if (atPeak) console.log(`  at the highest sampled rss  ${fmt(atPeak)}`);
      await allocReport("the fast downloads", (n * size) / 1024, "KiB");
      results.fastPeakRss = peak;
      results.fastAtPeak = atPeak;
      results.fastMs = ms;
      await drained();
      await measure(`fast downloads x${n} done`);
    }
    if (bulk > 0) {
      const t0 = performance.now();
      await withTimeout(download(c.port, dest, bulk), PHASE_TIMEOUT_MS, "bulk download");
      const ms = performance.now() - t0;
      console.log(
        `bulk: one ${(bulk / MIB).toFixed(0)} MiB download in ${ms.toFixed(0)} ms (${
          (bulk / MIB / (ms / 1000)).toFixed(0)
        } MiB/s)`,
      );
      results.bulkMs = ms;
    }

    // Phase 4: N downloads that stall first, then read.
    const downloads: Deno.TcpConn[] = [];
    try {
      await withTimeout(
        (async () => {
          for (let opened = 0; opened < n; opened += OPEN_BATCH) {
            await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, n - opened) }, async () => {
              const conn = await socksConnect(c.port, dest);
              downloads.push(conn);
              await writeAll(conn, encoder.encode(`download ${size}\n`));
              await readExact(conn, 1);
            }));
          }
        })(),
        PHASE_TIMEOUT_MS,
        "starting downloads",
      );
      // Stalled: nobody reads. Wait until the client stops growing.
      const t0 = performance.now();
      let last = procMemory(c.pid)?.rss ?? 0;
      let settled = 0;
      let samples = 0;
      while (settled < STALL_SETTLED_SAMPLES && performance.now() - t0 < STALL_MAX_MS) {
        await new Promise((r) => setTimeout(r, STALL_SAMPLE_MS));
        const rss = procMemory(c.pid)?.rss ?? 0;
        settled = rss - last < STALL_SETTLED_BYTES ? settled + 1 : 0;
        last = rss;
        samples++;
      }
      console.log(
        `stalled ${n} downloads for ${(performance.now() - t0).toFixed(0)} ms (${samples} samples)`,
      );
      const stalled = await measure(`stalled downloads x${n}`);
      console.log(perConn("live vs warm", warm.live, stalled.live, n));
      console.log(perConn("after gc vs warm", warm.gc, stalled.gc, n));
      await snapshot("stalled");
      if (snapshots.stalled && snapshots.warm) {
        console.log(`heap growth warm → stalled x${n}, by constructor:`);
        console.log(diffSummary(snapshots.warm, snapshots.stalled, n));
      }

      // Now read everything, sampling the client's RSS for its peak.
      const sampler = samplePeakRss(c.pid);
      const t1 = performance.now();
      let total = 0;
      const reading = withTimeout(
        Promise.all(downloads.map(async (conn) => {
          const buf = new Uint8Array(readChunk);
          for (let got = 1; got < size;) {
            const k = await conn.read(buf);
            if (k === null) throw new Error(`download ended after ${got} of ${size} bytes`);
            got += k;
            total += k;
            if (readDelay > 0) await new Promise((r) => setTimeout(r, readDelay));
          }
        })),
        PHASE_TIMEOUT_MS,
        "reading downloads",
      );
      let peak: number;
      try {
        await reading;
      } finally {
        peak = await sampler.stop();
      }
      const ms = performance.now() - t1;
      console.log(
        `read ${(total / MIB).toFixed(1)} MiB in ${ms.toFixed(0)} ms; client RSS peak while ` +
          `reading ${(peak / MIB).toFixed(1)} MiB`,
      );
      results.readPeakRss = peak;
      await measure(`downloads read x${n}`);
    } finally {
      for (const conn of downloads) conn.close();
    }
    await drained();
    const end = await measure("all closed");
    console.log(perConn("after gc vs start", start.gc, end.gc, n));
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2));
  } finally {
    await client?.stop();
    for (const s of services.reverse()) await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();

/**
 * Asks the child for its memory (`mem`) every 100 ms until `stop()`, which resolves with the
 * sample of highest RSS: heap, external (ArrayBuffers) and anon at the peak, not after it.
 */
function sampleChildMemory(c: Client): { stop(): Promise<Mem | undefined> } {
  let top: Mem | undefined;
  let sampling = true;
  const done = (async () => {
    for (let i = 0; sampling && i < PHASE_TIMEOUT_MS / 100; i++) {
      const m = await c.command<Mem>("mem");
      if (!top || m.rss > top.rss) top = m;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await done;
      return top;
    },
  };
}

/**
 * Samples a process's RSS every 20 ms until `stop()`, which resolves with the highest seen. Bounded
 * by PHASE_TIMEOUT_MS of samples even if nobody stops it.
 */
function samplePeakRss(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let sampling = true;
  const done = (async () => {
    for (let i = 0; sampling && i < PHASE_TIMEOUT_MS / 20; i++) {
      peak = Math.max(peak, procMemory(pid)?.rss ?? 0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await done;
      return peak;
    },
  };
}
