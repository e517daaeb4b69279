/**
 * Profiles a dray process on the download (or upload) scenario:
 *
 *   deno run -A scripts/bench/profile.ts [--size 512MiB] [--upload | --scenario <name>]
 *        [--count 2000] [--top 30] [--profile client|server] [--client dray|v2ray]
 *        [--server v2ray|dray] [--transport http|ws]
 *
 * Defaults: the download scenario, the dray client through the v2ray server, profiling the client.
 * `--count` is the number of echoes, connects or idle connections for those scenarios. Starts the target,
 * the server and the client (the profiled one, which must be dray, under `--cpu-prof`), moves the
 * bytes (hash-verified), stops the profiled process with SIGTERM so it writes its profile, and
 * prints where its time went: self and inclusive time per function with file:line, heaviest
 * first. The raw .cpuprofile is kept (open it in Chrome DevTools).
 */
import { parseArgs } from "node:util";
import {
  clientConfig,
  freePort,
  type Implementation,
  repoPath,
  serverConfig,
  startHelper,
  startProxy,
  type Transport,
} from "./processes.ts";
import { cpuSeconds } from "./proc_stats.ts";
import { parseBytes, Payloads, SCENARIOS, Scope, type Workload } from "./scenarios.ts";
import { socksConnect } from "./socks_client.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "512MiB" },
    upload: { type: "boolean", default: false },
    scenario: { type: "string" },
    count: { type: "string", default: "2000" },
    top: { type: "string", default: "30" },
    out: { type: "string", default: "bench-results/profiles" },
    profile: { type: "string", default: "client" },
    client: { type: "string", default: "dray" },
    server: { type: "string", default: "v2ray" },
    transport: { type: "string", default: "http" },
  },
});
const impl = (v: string): Implementation => {
  if (v !== "dray" && v !== "v2ray") throw new TypeError(`expected dray or v2ray, got "${v}"`);
  return v;
};
// `--profile none`: no profiler, only the client's CPU (works for v2ray too, for comparison).
const profiling = values.profile !== "none";
const side = values.profile === "server" ? "server" : "client";
const clientImpl = impl(values.client);
const serverImpl = impl(values.server);
if (profiling && (side === "client" ? clientImpl : serverImpl) !== "dray") {
  throw new TypeError(`only dray can be profiled; --${side} is ${values[side]}`);
}
if (values.transport !== "http" && values.transport !== "ws") {
  throw new TypeError(`expected --transport http or ws, got "${values.transport}"`);
}
const transport: Transport = values.transport;
const size = parseBytes(values.size);
const scenarioName = values.scenario ?? (values.upload ? "upload" : "download");
const scenario = SCENARIOS.find((s) => s.name === scenarioName);
if (!scenario) {
  throw new TypeError(
    `unknown scenario "${scenarioName}"; one of ${SCENARIOS.map((s) => s.name).join(", ")}`,
  );
}
const count = Number(values.count);
const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "dray-prof-" }));
await Deno.mkdir(values.out, { recursive: true });

const target = await startHelper("target", "target_main.ts");
const serverPort = freePort();
const flags = profiling ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
const server = await startProxy(
  `${serverImpl} server`,
  serverImpl,
  serverConfig(serverPort, transport),
  serverPort,
  side === "server" ? flags : [],
);
const socksPort = freePort();
const client = await startProxy(
  `${clientImpl} client`,
  clientImpl,
  clientConfig(socksPort, serverPort, transport),
  socksPort,
  side === "client" ? flags : [],
);
const profiled = side === "client" ? client : server;
try {
  const work: Workload = {
    transport,
    size,
    parallelTotal: size,
    echoes: count,
    connects: count,
    eofSamples: 3,
    udpEchoes: count,
    idleConnections: count,
    burstConnections: count,
    burstSettleMs: 30_000,
  };
  const data = new Payloads();
  data.hash(size);
  if (scenarioName === "upload") data.pattern(size);
  const cpu0 = cpuSeconds(profiled.pid)!;
  const result = await scenario.run({
    route: {
      connect: () => socksConnect(socksPort, { hostname: "127.0.0.1", port: target.ports.tcp }),
    },
    scope: new Scope(),
    work,
    data,
    probe: () => ({}),
  });
  const cpu = cpuSeconds(profiled.pid)! - cpu0;
  const figures = Object.entries(result.figures).map(([k, v]) => `${v.toFixed(3)} ${k}`);
  console.log(
    `${scenarioName}: ${figures.join(", ")}, verified ${result.verified}, ` +
      `${clientImpl}→${serverImpl}, ${side} CPU ${cpu.toFixed(2)} s` +
      (result.figures["MiB/s"] ? ` (${(cpu / (size / 2 ** 30)).toFixed(2)} s/GiB)` : ""),
  );
} finally {
  await client.stop(side === "client" ? "SIGTERM" : "SIGKILL");
  await server.stop(side === "server" ? "SIGTERM" : "SIGKILL");
  await target.service.stop();
}

if (!profiling) {
  await Deno.remove(dir, { recursive: true });
  Deno.exit(0);
}
const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
if (!file) throw new Error(`dray wrote no profile into ${dir}`);
const kept =
  `${values.out}/dray-${side}-${clientImpl}-${serverImpl}-${scenarioName}-${Date.now()}` +
  ".cpuprofile";
await Deno.copyFile(`${dir}/${file.name}`, kept);
await Deno.remove(dir, { recursive: true });
summarize(JSON.parse(await Deno.readTextFile(kept)), Number(values.top));
console.log(`profile: ${kept}`);

function summarize(profile: CpuProfile, top: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + profile.timeDeltas[i]));
  const total = profile.timeDeltas.reduce((a, b) => a + b, 0);
  const root = repoPath(".");
  const key = (f: CallFrame) => {
    const where = f.url
      ? decodeURIComponent(f.url.replace(/^file:\/\//, "")).replace(root, "")
      : "";
    return `${f.functionName || "(anonymous)"} ${where}${where ? `:${f.lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    self.set(key(byId.get(id)!.callFrame), (self.get(key(byId.get(id)!.callFrame)) ?? 0) + us);
    // Inclusive: every distinct function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const k = key(byId.get(n)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const print = (title: string, m: Map<string, number>) => {
    console.log(`\n${title} (of ${(total / 1e6).toFixed(2)} s sampled)`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(
        `${(100 * us / total).toFixed(1).padStart(6)}%  ${
          (us / 1000).toFixed(0).padStart(6)
        } ms  ${k}`,
      );
    }
  };
  print("self time", self);
  print("inclusive time", inclusive);
}
