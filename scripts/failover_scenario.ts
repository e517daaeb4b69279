/**
 * The failover scenarios of issue 13, dray and the v2ray 4.34 client side by side. Both read the
 * same v2ray JSON client config (SOCKS5 inbound → one VLESS outbound whose vnext lists the
 * servers, http/h2 + TLS, read_idle_timeout 2 s, health_check_timeout 2 s); the servers are real
 * v2ray 4.34 processes. Every request is a `download` from the target server, sha256-verified.
 *
 *   deno run -A scripts/failover_scenario.ts [--client dray|v2ray|both] [--case name,...]
 *
 * Cases: freeze (one of two SIGSTOPped for 40 of 80 requests), kill (one of two killed for good),
 * restart (the only server killed, restarted 4 s later on its port), blackhole (one of two in a
 * network namespace whose end goes down for 40 requests; needs root), parallel (64 parallel 1 MiB
 * downloads while one of two freezes), long (a long download through B while A is killed and
 * restarted). Prints one JSON line per case and client, then a table.
 */
import { parseArgs } from "node:util";
import {
  download,
  type RequestResult,
  sequence,
  summarize,
} from "../tests/support/failover_driver.ts";
import { FaultProxy } from "../tests/support/fault_proxy.ts";
import { NetnsHost } from "../tests/support/netns.ts";
import { startTarget } from "../tests/support/target.ts";
import { V2rayServer } from "../tests/support/v2ray.ts";
import { freePort, type Implementation, repoPath, startProxy } from "./bench/processes.ts";

const USER_ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
const CASES = ["freeze", "kill", "restart", "blackhole", "parallel", "long"] as const;
type Case = typeof CASES[number];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    client: { type: "string", default: "both" },
    case: { type: "string", default: CASES.join(",") },
  },
});
const clients: Implementation[] = values.client === "both"
  ? ["dray", "v2ray"]
  : [values.client as Implementation];
const cases = values.case!.split(",") as Case[];
for (const c of cases) if (!CASES.includes(c)) throw new Error(`unknown case ${c}`);

const certs = (name: string) => repoPath(`tests/support/certs/${name}`);

function clientConfig(socksPort: number, servers: Array<{ address: string; port: number }>) {
  return {
    log: { loglevel: "warning", access: "none" },
    inbounds: [{
      listen: "127.0.0.1",
      port: socksPort,
      protocol: "socks",
      settings: { auth: "noauth", udp: false },
    }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: servers.map((s) => ({
          address: s.address,
          port: s.port,
          users: [{ id: USER_ID, encryption: "none" }],
        })),
      },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: {
          serverName: "localhost",
          certificates: [{ usage: "verify", certificateFile: certs("ca.pem") }],
        },
        httpSettings: {
          host: ["localhost"],
          path: "/",
          read_idle_timeout: 2,
          health_check_timeout: 2,
        },
      },
    }],
  };
}

function startServer(o: { port?: number; listen?: string; netns?: string } = {}) {
  return V2rayServer.start({
    clients: [USER_ID],
    network: "http",
    security: "tls",
    httpPath: "/",
    httpHost: ["localhost"],
    ...o,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  case: Case;
  client: Implementation;
  [k: string]: unknown;
}

async function withClient<T>(
  impl: Implementation,
  servers: Array<{ address: string; port: number }>,
  run: (socksPort: number) => Promise<T>,
): Promise<T> {
  const socksPort = freePort();
  const proxy = await startProxy(
    `${impl}-client`,
    impl,
    clientConfig(socksPort, servers),
    socksPort,
  );
  try {
    return await run(socksPort);
  } finally {
    await proxy.stop();
  }
}

const SMALL = 16 * 1024;

async function freezeCase(impl: Implementation, target: { host: string; port: number }) {
  await using a = await startServer();
  await using b = await startServer();
  return await withClient(impl, [srv(a), srv(b)], async (socksPort) => {
    const results = await sequence({
      socksPort,
      target,
      bytes: SMALL,
      timeoutMs: 3000,
      count: 80,
      intervalMs: 200,
      before: (i) => {
        if (i === 20) a.signal("SIGSTOP");
        if (i === 60) a.signal("SIGCONT");
      },
    });
    return { ...summarize(results), failedAt: failedIndexes(results) };
  });
}

async function killCase(impl: Implementation, target: { host: string; port: number }) {
  await using a = await startServer();
  await using b = await startServer();
  return await withClient(impl, [srv(a), srv(b)], async (socksPort) => {
    const results = await sequence({
      socksPort,
      target,
      bytes: SMALL,
      timeoutMs: 3000,
      count: 80,
      intervalMs: 200,
      before: async (i) => {
        if (i === 20) await a.kill();
      },
    });
    return { ...summarize(results), failedAt: failedIndexes(results) };
  });
}

async function restartCase(impl: Implementation, target: { host: string; port: number }) {
  let a = await startServer();
  const port = a.port;
  let listening = 0;
  try {
    return await withClient(impl, [srv(a)], async (socksPort) => {
      const t0 = performance.now();
      const results = await sequence({
        socksPort,
        target,
        bytes: SMALL,
        timeoutMs: 3000,
        count: 60,
        intervalMs: 200,
        before: async (i) => {
          if (i === 10) await a.kill();
          if (i === 30) {
            a = await startServer({ port });
            listening = performance.now() - t0;
          }
        },
      });
      const after = results.filter((r) => r.at >= listening);
      const firstOk = after.find((r) => r.ok);
      return {
        ...summarize(results),
        failedAt: failedIndexes(results),
        allOkAfterRestart: after.every((r) => r.ok),
        firstOkAfterListenMs: firstOk ? Math.round(firstOk.at + firstOk.ms - listening) : null,
      };
    });
  } finally {
    await a.stop();
  }
}

async function blackholeCase(impl: Implementation) {
  await using ns = await NetnsHost.create();
  await using target = startTarget({ hostname: "0.0.0.0" });
  await using a = await startServer({ netns: ns.name, listen: ns.address });
  await using b = await startServer();
  const servers = [{ address: ns.address, port: a.port }, srv(b)];
  return await withClient(impl, servers, async (socksPort) => {
    const results = await sequence({
      socksPort,
      target: { host: ns.hostAddress, port: target.tcpPort },
      bytes: SMALL,
      timeoutMs: 3000,
      count: 80,
      intervalMs: 200,
      before: async (i) => {
        if (i === 20) await ns.blackhole();
        if (i === 60) await ns.restore();
      },
    });
    return { ...summarize(results), failedAt: failedIndexes(results) };
  });
}

async function parallelCase(impl: Implementation, target: { host: string; port: number }) {
  await using a = await startServer();
  await using b = await startServer();
  return await withClient(impl, [srv(a), srv(b)], async (socksPort) => {
    const MiB = 1024 * 1024;
    // Both servers have a connection already: the downloads spread over them.
    for (let i = 0; i < 2; i++) {
      await download({ socksPort, target, bytes: SMALL, timeoutMs: 3000 });
    }
    const runs = Array.from(
      { length: 64 },
      // No half-close, as a browser's download: after one, both clients' uplinkOnly policy (1 s,
      // v2ray's default) ends a stalled downlink with a clean FIN, which would read as a cut.
      () => download({ socksPort, target, bytes: MiB, timeoutMs: 30_000, halfClose: false }),
    );
    await sleep(100);
    a.signal("SIGSTOP");
    const results = await Promise.all(runs);
    a.signal("SIGCONT");
    const errors = results.filter((r) => !r.ok).map((r) => r.error!);
    return {
      completedExact: results.filter((r) => r.ok).length,
      failed: errors.length,
      // "EOF after …" or "sha256 mismatch" would be a completed-looking download that is wrong.
      truncatedOrCorrupt: errors.filter((e) => /EOF after [1-9]|sha256|more than/.test(e)).length,
      errors: [...new Set(errors)].slice(0, 4),
    };
  });
}

async function longCase(impl: Implementation, target: { host: string; port: number }) {
  let a = await startServer();
  const port = a.port;
  await using b = await startServer();
  try {
    return await withClient(impl, [srv(a), srv(b)], async (socksPort) => {
      // The first connection goes to A (both clients start their round-robin there); the long
      // download is the second, through B.
      const warm = await download({ socksPort, target, bytes: SMALL, timeoutMs: 3000 });
      // Paced to 8 MiB/s by a fault proxy in front of the target: 32 MiB take about 4 s.
      await using paced = await FaultProxy.start({
        target: { hostname: target.host, port: target.port },
      });
      paced.set("down", { bytesPerSecond: 8 * 1024 * 1024 });
      const bytes = 32 * 1024 * 1024;
      const t0 = performance.now();
      const long = download({
        socksPort,
        target: { host: "127.0.0.1", port: paced.port },
        bytes,
        timeoutMs: 60_000,
      });
      await sleep(500);
      await a.kill();
      await sleep(1000);
      a = await startServer({ port });
      const r = await long;
      return {
        warmOk: warm.ok,
        longOk: r.ok,
        longMs: Math.round(performance.now() - t0),
        error: r.error,
      };
    });
  } finally {
    await a.stop();
  }
}

function srv(s: V2rayServer) {
  return { address: "127.0.0.1", port: s.port };
}

function failedIndexes(results: RequestResult[]): number[] {
  return results.flatMap((r, i) => (r.ok ? [] : [i]));
}

const outcomes: Outcome[] = [];
await using target = startTarget();
const local = { host: "127.0.0.1", port: target.tcpPort };
for (const c of cases) {
  for (const impl of clients) {
    let o: Record<string, unknown>;
    try {
      o = c === "freeze"
        ? await freezeCase(impl, local)
        : c === "kill"
        ? await killCase(impl, local)
        : c === "restart"
        ? await restartCase(impl, local)
        : c === "blackhole"
        ? await blackholeCase(impl)
        : c === "parallel"
        ? await parallelCase(impl, local)
        : await longCase(impl, local);
    } catch (err) {
      o = { error: (err as Error).message };
    }
    const outcome = { case: c, client: impl, ...o };
    outcomes.push(outcome);
    console.log(JSON.stringify(outcome));
  }
}
