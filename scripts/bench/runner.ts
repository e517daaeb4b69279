/**
 * Runs the matrix: every selected scenario, for each repeat, over every selected row, with the row
 * order reversed on every other repeat so no row always goes first (warm caches, a busy moment).
 * The target, the TLS peer and the two VLESS servers live for the whole run; each proxy client is
 * started fresh for every measurement, so its CPU time and peak RSS (VmHWM lasts a process's
 * lifetime) belong to that one scenario.
 */
import {
  clientConfig,
  freePort,
  type Implementation,
  serverConfig,
  type Service,
  startHelper,
  startProxy,
  type Transport,
} from "./processes.ts";
import { cpuSeconds, memory, tcpConnectionsTo } from "./proc_stats.ts";
import {
  Payloads,
  type Route,
  type Scenario,
  type ScenarioResult,
  Scope,
  type Workload,
} from "./scenarios.ts";
import { directUdp, type Endpoint, socksConnect, socksUdp } from "./socks_client.ts";

const CA_PEM = Deno.readTextFileSync(new URL("../../tests/support/certs/ca.pem", import.meta.url));
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** How long a cancelled scenario gets to unwind after its connections were closed. */
const UNWIND_MS = 5_000;
/** A measurement started just before the budget runs out may take this much longer. */
const BUDGET_GRACE_MS = 30_000;
/** Bytes pulled through the target and the TLS peer before measuring, so their JIT is warm. */
const WARM_UP_BYTES = 64 * MIB;

export interface RowSpec {
  id: string;
  label: string;
  /** The proxy client (absent: the driver talks to the target or the TLS peer itself). */
  client?: Implementation;
  server?: Implementation;
}

export const ROWS: readonly RowSpec[] = [
  { id: "direct", label: "direct" },
  { id: "tls", label: "raw TLS" },
  { id: "v2ray-v2ray", label: "v2ray→v2ray", client: "v2ray", server: "v2ray" },
  { id: "dray-v2ray", label: "dray→v2ray", client: "dray", server: "v2ray" },
  { id: "v2ray-dray", label: "v2ray→dray", client: "v2ray", server: "dray" },
  { id: "dray-dray", label: "dray→dray", client: "dray", server: "dray" },
];

export interface Sample {
  repeat: number;
  figures: Record<string, number>;
  verified: boolean;
  error?: string;
}

export interface RowResult {
  row: RowSpec;
  /** Why the row could not run at all (its server did not start). */
  unavailable?: string;
  samples: Map<string, Sample[]>;
}

export interface RunOptions {
  rows: readonly RowSpec[];
  scenarios: readonly Scenario[];
  work: Workload;
  repeats: number;
  /** Measurements not started by then are reported as skipped. */
  budgetMs: number;
  /** Progress lines (stderr). */
  progress: (line: string) => void;
}

/** The helpers and servers of a run; rows whose server failed carry the error instead. */
class Fixtures {
  target!: Service;
  targetTcp!: Endpoint;
  targetUdp!: Endpoint;
  tlsPeer?: Service;
  /** The TLS peer's ports: `tls` for bulk transfers, `tlsNoDelay` for latency (see tls_peer.ts). */
  tlsPorts: Record<string, number> = {};
  servers = new Map<Implementation, Service | Error>();
  readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  async start(rows: readonly RowSpec[]): Promise<void> {
    const t = await startHelper("target", "target_main.ts");
    this.target = t.service;
    this.targetTcp = { hostname: "127.0.0.1", port: t.ports.tcp };
    this.targetUdp = { hostname: "127.0.0.1", port: t.ports.udp };
    if (rows.some((r) => r.id === "tls")) {
      const peer = await startHelper("tls peer", "tls_peer.ts");
      this.tlsPeer = peer.service;
      this.tlsPorts = peer.ports;
    }
    // The helpers live for the whole run, so their warm-up is not part of any sample (each proxy
    // client is a fresh process per sample, so its own warm-up is).
    await warmUp(() => Deno.connect(this.targetTcp));
    for (const port of Object.values(this.tlsPorts)) await warmUp(() => tlsConnect(port));
    for (const impl of new Set(rows.flatMap((r) => r.server ? [r.server] : []))) {
      this.servers.set(impl, await startServer(impl, this.transport).catch((err: Error) => err));
    }
  }

  /** The row's server, restarted if it died since the last measurement. */
  async server(impl: Implementation): Promise<Service> {
    const s = this.servers.get(impl);
    if (s instanceof Error) throw s;
    if (s && !s.exited) return s;
    const why = s ? `${impl} server had exited:\n${s.log}` : "";
    const restarted = await startServer(impl, this.transport).catch((err: Error) => err);
    this.servers.set(impl, restarted);
    if (restarted instanceof Error) throw new Error(`${why}\n${restarted.message}`.trim());
    return restarted;
  }

  async stop(): Promise<void> {
    for (const s of this.servers.values()) if (!(s instanceof Error)) await s.stop();
    await this.tlsPeer?.stop();
    await this.target?.stop();
  }
}

async function warmUp(connect: () => Promise<Deno.Conn>): Promise<void> {
  const conn = await connect();
  try {
    await conn.write(new TextEncoder().encode(`download ${WARM_UP_BYTES}\n`));
    const buf = new Uint8Array(256 * 1024);
    for (let got = 0; got < WARM_UP_BYTES;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`warm-up download ended after ${got} bytes`);
      got += n;
    }
  } finally {
    conn.close();
  }
}

function startServer(impl: Implementation, transport: Transport): Promise<Service> {
  const port = freePort();
  return startProxy(`${impl} server`, impl, serverConfig(port, transport), port);
}

export async function runMatrix(options: RunOptions): Promise<RowResult[]> {
  const { rows, scenarios, work, repeats, progress } = options;
  const started = performance.now();
  const budgetEnd = started + options.budgetMs;
  const results = rows.map((row): RowResult => ({ row, samples: new Map() }));
  const data = new Payloads();
  const fixtures = new Fixtures(work.transport);
  try {
    progress(`preparing ${work.size} pattern bytes and their hashes`);
    data.hash(work.size);
    if (scenarios.some((s) => s.name === "upload")) data.pattern(work.size);
    await fixtures.start(rows);
    for (const r of results) {
      const s = r.row.server && fixtures.servers.get(r.row.server);
      if (s instanceof Error) r.unavailable = s.message;
    }
    for (const scenario of scenarios) {
      progress(`— ${scenario.name}: ${scenario.description(work)}`);
      for (let repeat = 0; repeat < repeats; repeat++) {
        const order = repeat % 2 === 0 ? results : [...results].reverse();
        for (const r of order) {
          if (r.unavailable) continue;
          let sample: Sample;
          if (performance.now() - started > options.budgetMs) {
            sample = { repeat, figures: {}, verified: false, error: "skipped: time budget spent" };
          } else if (scenario.udp && r.row.id === "tls") {
            continue; // raw TLS has no datagrams
          } else if (scenario.proxyClient && !r.row.client) {
            continue; // no proxy client process to measure
          } else {
            sample = await measure(r.row, scenario, repeat, { fixtures, work, data, budgetEnd });
          }
          const list = r.samples.get(scenario.name) ?? [];
          list.push(sample);
          r.samples.set(scenario.name, list);
          progress(describeSample(r.row, repeat, sample, performance.now() - started));
        }
      }
    }
  } finally {
    await fixtures.stop();
  }
  return results;
}

function describeSample(row: RowSpec, repeat: number, s: Sample, elapsedMs: number): string {
  const head = `[${(elapsedMs / 1000).toFixed(0).padStart(4)} s] ${row.label.padEnd(12)} #${
    repeat + 1
  }`;
  if (s.error) return `${head}  ERROR ${s.error.split("\n")[0]}`;
  const figures = Object.entries(s.figures)
    .map(([k, v]) => `${k} ${Number.isFinite(v) ? +v.toFixed(2) : "n/a"}`)
    .join(", ");
  return `${head}  ${s.verified ? "verified" : "NOT VERIFIED"}  ${figures}`;
}

interface MeasureContext {
  fixtures: Fixtures;
  work: Workload;
  data: Payloads;
  /** performance.now() by which the run should be over. */
  budgetEnd: number;
}

async function measure(
  row: RowSpec,
  scenario: Scenario,
  repeat: number,
  { fixtures, work, data, budgetEnd }: MeasureContext,
): Promise<Sample> {
  const scope = new Scope();
  let client: Service | undefined;
  let server: Service | undefined;
  let route: Route;
  try {
    if (row.client && row.server) {
      server = await fixtures.server(row.server);
      const socksPort = freePort();
      client = await startProxy(
        `${row.client} client`,
        row.client,
        clientConfig(socksPort, server.port, work.transport),
        socksPort,
      );
      route = {
        connect: () => socksConnect(socksPort, fixtures.targetTcp),
        udp: () => socksUdp(socksPort, fixtures.targetUdp),
      };
    } else if (row.id === "tls") {
      server = fixtures.tlsPeer!;
      const port = fixtures.tlsPorts[scenario.bulk ? "tls" : "tlsNoDelay"];
      route = { connect: () => tlsConnect(port) };
    } else {
      route = {
        connect: async () => {
          const conn = await Deno.connect(fixtures.targetTcp);
          conn.setNoDelay(true);
          return conn;
        },
        udp: () => Promise.resolve(directUdp(fixtures.targetUdp)),
      };
    }
    const probe = () => processFigures(client, server);
    const cpu0 = [client && cpuSeconds(client.pid), server && cpuSeconds(server.pid)];
    const result = await withTimeout(
      scenario.run({ route, scope, work, data, probe }),
      Math.min(
        scenario.timeoutMs(work),
        Math.max(0, budgetEnd - performance.now()) + BUDGET_GRACE_MS,
      ),
      () => {
        scope.closeAll();
        client?.stop();
      },
    );
    const figures = { ...result.figures };
    if (scenario.bulk) {
      addCpu(figures, "client CPU s/GiB", client, cpu0[0], result);
      addCpu(figures, "server CPU s/GiB", server, cpu0[1], result);
      const m = client && memory(client.pid);
      if (m) figures["client peak RSS MiB"] = m.hwm / MIB;
    }
    return { repeat, figures, verified: result.verified };
  } catch (err) {
    return { repeat, figures: {}, verified: false, error: errorText(err, client) };
  } finally {
    scope.closeAll();
    await client?.stop();
  }
}

function addCpu(
  figures: Record<string, number>,
  name: string,
  process: Service | undefined,
  before: number | undefined,
  result: ScenarioResult,
): void {
  const after = process && cpuSeconds(process.pid);
  if (before === undefined || after === undefined || result.bytes === 0) return;
  figures[name] = (after - before) / (result.bytes / GIB);
}

function processFigures(client?: Service, server?: Service): Record<string, number> {
  const out: Record<string, number> = {};
  const c = client && memory(client.pid);
  if (c) out["client RSS MiB"] = c.rss / MIB;
  const s = server && memory(server.pid);
  if (s && client) out["server RSS MiB"] = s.rss / MIB;
  if (client && server) {
    const n = tcpConnectionsTo(client.pid, server.port);
    if (n !== undefined) out["TCP conns to server"] = n;
  }
  return out;
}

/** TLS to the raw-TLS peer, with TCP_NODELAY (Deno.connectTls has no way to set it). */
async function tlsConnect(port: number): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  return await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [CA_PEM] });
}

/** Races `work` against a deadline; on timeout runs `cancel` and lets `work` unwind (bounded). */
async function withTimeout<T>(work: Promise<T>, ms: number, cancel: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), ms);
  });
  try {
    const first = await Promise.race([work, expired]);
    if (first !== "expired") return first as T;
  } finally {
    clearTimeout(timer);
  }
  cancel();
  let unwind: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    work.catch(() => {}),
    new Promise((r) => (unwind = setTimeout(r, UNWIND_MS))),
  ]);
  clearTimeout(unwind);
  throw new Error(`timed out after ${(ms / 1000).toFixed(0)} s`);
}

function errorText(err: unknown, client: Service | undefined): string {
  const message = err instanceof Error ? err.message : String(err);
  if (client?.exited && client.log) return `${message}\nclient output:\n${client.log}`;
  return message;
}
