/**
 * `dray probe` at scale (issue 15): many servers, most alive and some black-holed, probed in one
 * dray process; reports the wall time and peak RSS of that process. Targets: under 15 s and
 * under 150 MiB for 100 servers, 80 alive, 20 black-holed.
 *
 *   deno run -A scripts/bench/probe_scale.ts [--servers 100] [--dead 20] [--repeats 3]
 *                                            [--concurrency 16] [--json]
 *
 * The alive servers are one real v2ray 4.34 process with one VLESS inbound per server (http/h2 +
 * TLS, dray's main transport, each on its own port); the black-holed ones are listeners that
 * accept and never answer, so each stalls in its TLS handshake until --connect-timeout (3 s). The
 * URL is a local web server answering 204. dray runs as `deno task start` runs it (its V8 flags),
 * with `probe -c <config with one outbound per server> --json`; every alive server must pass and
 * every dead one fail at the tls stage, or the run counts as failed. Peak RSS is the process's
 * VmHWM, sampled every 20 ms until it exits.
 */
import { parseArgs } from "node:util";
import { memory } from "./proc_stats.ts";
import { freePort, repoPath, USER_ID, V8_FLAGS } from "./processes.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    servers: { type: "string", default: "100" },
    dead: { type: "string", default: "20" },
    repeats: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    json: { type: "boolean", default: false },
  },
});
const SERVERS = Number(values.servers);
const DEAD = Number(values.dead);
const REPEATS = Number(values.repeats);
if (!(SERVERS >= 1 && DEAD >= 0 && DEAD <= SERVERS && REPEATS >= 1)) {
  console.error("probe_scale: --servers ≥ 1, 0 ≤ --dead ≤ --servers, --repeats ≥ 1");
  Deno.exit(2);
}
const V2RAY = Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray";
const MAIN = Deno.env.get("DRAY_MAIN") ?? repoPath("main.ts");
const CERT = (name: string) => repoPath(`tests/support/certs/${name}`);
const PATH = "/probe";

interface ProbeScaleRun {
  seconds: number;
  peakRssMiB: number;
  passed: number;
  failedAsExpected: number;
  unexpected: string[];
}

/** Black-holed servers: accept, then never say a word. */
function silentListeners(n: number) {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const held: Deno.Conn[] = [];
  const loops = listeners.map((l) =>
    (async () => {
      for await (const c of l) held.push(c);
    })().catch(() => {})
  );
  return {
    ports: listeners.map((l) => l.addr.port),
    async close() {
      for (const l of listeners) l.close();
      await Promise.all(loops);
      for (const c of held) c.close();
    },
  };
}

async function startV2ray(ports: number[], dir: string): Promise<Deno.ChildProcess> {
  const config = {
    log: { loglevel: "warning" },
    inbounds: ports.map((port) => ({
      listen: "127.0.0.1",
      port,
      protocol: "vless",
      settings: { clients: [{ id: USER_ID }], decryption: "none" },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: {
          certificates: [{ certificateFile: CERT("server.pem"), keyFile: CERT("server.key") }],
        },
        httpSettings: { path: PATH, host: ["localhost"] },
      },
    })),
    outbounds: [{ protocol: "freedom" }],
  };
  await Deno.writeTextFile(`${dir}/v2ray.json`, JSON.stringify(config));
  const child = new Deno.Command(V2RAY, {
    args: ["-config", `${dir}/v2ray.json`],
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Ready when its last inbound accepts (bounded: 20 s of 20 ms polls).
  for (let i = 0; i < 1000; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: ports[ports.length - 1] })).close();
      return child;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  child.kill();
  await child.status;
  throw new Error("v2ray did not start");
}

function clientConfig(alive: number[], dead: number[]): unknown {
  const outbound = (tag: string, port: number) => ({
    tag,
    protocol: "vless",
    settings: {
      vnext: [{ address: "127.0.0.1", port, users: [{ id: USER_ID, encryption: "none" }] }],
    },
    streamSettings: {
      network: "http",
      security: "tls",
      tlsSettings: {
        serverName: "localhost",
        certificates: [{ certificateFile: CERT("ca.pem"), usage: "verify" }],
      },
      httpSettings: { path: PATH, host: ["localhost"] },
    },
  });
  // Dead servers spread among the alive ones, as in a real subscription.
  const all: Array<[string, number]> = [];
  let a = 0, d = 0;
  for (let i = 0; a < alive.length || d < dead.length; i++) {
    const takeDead = d < dead.length && (a >= alive.length || i % 5 === 4);
    if (takeDead) all.push([`dead-${d}`, dead[d++]]);
    else all.push([`alive-${a}`, alive[a++]]);
  }
  return {
    inbounds: [{ protocol: "socks", port: 1080 }],
    outbounds: all.map(([tag, port]) => outbound(tag, port)),
  };
}

async function runOnce(configPath: string, url: string): Promise<ProbeScaleRun> {
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(V8_FLAGS ? [`--v8-flags=${V8_FLAGS}`] : []),
      MAIN,
      "probe",
      "-c",
      configPath,
      "--url",
      url,
      "--json",
      "--concurrency",
      values.concurrency,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  const sampler = setInterval(() => {
    const m = memory(child.pid);
    if (m) peak = Math.max(peak, m.hwm);
  }, 20);
  const out = await child.output();
  clearInterval(sampler);
  const seconds = (performance.now() - start) / 1000;
  const unexpected: string[] = [];
  let passed = 0, failedAsExpected = 0;
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean);
  for (const line of lines) {
    const r = JSON.parse(line);
    if (r.name.startsWith("alive-") && r.ok) passed++;
    else if (r.name.startsWith("dead-") && !r.ok && r.stage === "tls") failedAsExpected++;
    else unexpected.push(`${r.name}: ok=${r.ok} stage=${r.stage} ${r.error ?? ""}`);
  }
  if (lines.length !== SERVERS) {
    unexpected.push(
      `${lines.length} results for ${SERVERS} servers (exit ${out.code}):\n` +
        new TextDecoder().decode(out.stderr),
    );
  }
  return { seconds, peakRssMiB: peak / 2 ** 20, passed, failedAsExpected, unexpected };
}

const dir = await Deno.makeTempDir({ prefix: "dray-probe-scale-" });
const silent = silentListeners(DEAD);
const alivePorts = Array.from({ length: SERVERS - DEAD }, () => freePort());
const web = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  () => new Response(null, { status: 204 }),
);
let v2ray: Deno.ChildProcess | undefined;
const runs: ProbeScaleRun[] = [];
try {
  if (alivePorts.length > 0) v2ray = await startV2ray(alivePorts, dir);
  const configPath = `${dir}/client.json`;
  await Deno.writeTextFile(configPath, JSON.stringify(clientConfig(alivePorts, silent.ports)));
  const url = `http://127.0.0.1:${web.addr.port}/generate_204`;
  for (let i = 0; i < REPEATS; i++) {
    const run = await runOnce(configPath, url);
    runs.push(run);
    console.error(
      `run ${i + 1}/${REPEATS}: ${run.seconds.toFixed(2)} s, peak RSS ${
        run.peakRssMiB.toFixed(1)
      } MiB, ${run.passed} passed, ${run.failedAsExpected} failed at tls` +
        (run.unexpected.length ? `, UNEXPECTED:\n  ${run.unexpected.join("\n  ")}` : ""),
    );
  }
} finally {
  if (v2ray) {
    v2ray.kill();
    await v2ray.status;
  }
  await silent.close();
  await web.shutdown();
  await Deno.remove(dir, { recursive: true });
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = {
  servers: SERVERS,
  dead: DEAD,
  concurrency: Number(values.concurrency),
  repeats: REPEATS,
  medianSeconds: Number(median(runs.map((r) => r.seconds)).toFixed(2)),
  maxPeakRssMiB: Number(Math.max(...runs.map((r) => r.peakRssMiB)).toFixed(1)),
  allAsExpected: runs.every((r) => r.unexpected.length === 0),
};
if (values.json) console.log(JSON.stringify({ ...summary, runs }));
else {
  console.log(
    `dray probe, ${SERVERS} servers (${SERVERS - DEAD} alive, ${DEAD} black-holed), ` +
      `concurrency ${summary.concurrency}: median ${summary.medianSeconds} s, peak RSS ` +
      `${summary.maxPeakRssMiB} MiB (max of ${REPEATS}); results as expected: ${summary.allAsExpected}`,
  );
}
Deno.exit(summary.allAsExpected ? 0 : 1);
