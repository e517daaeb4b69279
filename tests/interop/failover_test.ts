/**
 * Fault injection against real v2ray 4.34 servers: the dray client (in process, started from a v2ray
 * JSON config) keeps serving while a server is frozen, killed, blackholed or cut off by the fault
 * proxy. Every transfer is sha256-verified; recovery times are measured and printed, and asserted
 * only against generous bounds (the machine is shared and noisy).
 */
import { equal, ok } from "node:assert/strict";
import { startAppFromJson } from "../support/client_app.ts";
import {
  download,
  type DownloadOptions,
  type RequestResult,
  sequence,
  summarize,
} from "../support/failover_driver.ts";
import { FaultProxy } from "../support/fault_proxy.ts";
import { NetnsHost } from "../support/netns.ts";
import { startTarget } from "../support/target.ts";
import { freePort, V2rayServer } from "../support/v2ray.ts";

const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
const CA = decodeURIComponent(new URL("../support/certs/ca.pem", import.meta.url).pathname);
const SMALL = 16 * 1024;

function startServer(o: { port?: number; listen?: string; netns?: string } = {}) {
  return V2rayServer.start({
    clients: [ID],
    network: "http",
    security: "tls",
    httpPath: "/",
    httpHost: ["localhost"],
    ...o,
  });
}

/** dray as a SOCKS5 client of `servers` (one vnext), with 1 s deadlines to keep tests short. */
function startClient(servers: Array<{ address: string; port: number }>) {
  return startAppFromJson(() => ({
    inbounds: [{ tag: "socks", listen: "127.0.0.1", port: freePort(), protocol: "socks" }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: servers.map((s) => ({ ...s, users: [{ id: ID, encryption: "none" }] })),
      },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: {
          serverName: "localhost",
          certificates: [{ usage: "verify", certificateFile: CA }],
        },
        httpSettings: {
          host: ["localhost"],
          path: "/",
          read_idle_timeout: 2,
          health_check_timeout: 2,
        },
        dray: { connectTimeout: 1, streamTimeout: 1 },
      },
    }],
  }));
}

/** A download through `app`'s SOCKS inbound from `host:port`: SMALL bytes, failing after 5 s. */
function downloadVia(
  app: Awaited<ReturnType<typeof startClient>>,
  port: number,
  host = "127.0.0.1",
): DownloadOptions {
  return {
    socksPort: app.config.inbounds[0].port,
    target: { host, port },
    bytes: SMALL,
    timeoutMs: 5000,
  };
}

function report(name: string, results: RequestResult[], extra: Record<string, unknown> = {}) {
  const s = summarize(results);
  console.log(
    `${name}: ${s.ok}/${s.total} ok, longest after the first failure ${s.maxMsAfterFirstFailure} ms`,
    JSON.stringify(extra),
  );
  return s;
}

Deno.test("failover: a frozen server (SIGSTOP) costs at most a few requests; the rest go to the other", async () => {
  await using target = startTarget();
  await using a = await startServer();
  await using b = await startServer();
  await using app = await startClient([
    { address: "127.0.0.1", port: a.port },
    { address: "127.0.0.1", port: b.port },
  ]);
  const results = await sequence({
    ...downloadVia(app, target.tcpPort),
    count: 24,
    intervalMs: 100,
    before: (i) => {
      if (i === 4) a.signal("SIGSTOP");
      if (i === 20) a.signal("SIGCONT");
    },
  });
  const s = report("SIGSTOP", results);
  // Only requests already on the frozen server's connection can fail; then it is marked down.
  ok(s.ok >= 20, `only ${s.ok}/24 succeeded: ${JSON.stringify(results.map((r) => r.error))}`);
  ok(results.slice(12).every((r) => r.ok), "requests after the server was marked down failed");
});

Deno.test("failover: the only server killed and restarted serves the first request after it listens", async () => {
  await using target = startTarget();
  let a = await startServer();
  const port = a.port;
  try {
    await using app = await startClient([{ address: "127.0.0.1", port }]);
    const req = () => download(downloadVia(app, target.tcpPort));
    equal((await req()).ok, true);
    await a.kill();
    const dead = await req();
    equal(dead.ok, false);
    a = await startServer({ port });
    const t0 = performance.now();
    const back = await req();
    console.log(
      `restart: first request after listen took ${Math.round(performance.now() - t0)} ms`,
    );
    // The back-off must not hold the request: with every server down the picker still tries one.
    equal(back.ok, true, back.error);
    equal((await req()).ok, true);
  } finally {
    await a.stop();
  }
});

Deno.test("failover: a server killed for good is skipped after its first failure", async () => {
  await using target = startTarget();
  await using a = await startServer();
  await using b = await startServer();
  await using app = await startClient([
    { address: "127.0.0.1", port: a.port },
    { address: "127.0.0.1", port: b.port },
  ]);
  const results = await sequence({
    ...downloadVia(app, target.tcpPort),
    count: 16,
    intervalMs: 50,
    before: async (i) => {
      if (i === 3) await a.kill();
    },
  });
  const s = report("kill", results);
  ok(s.ok >= 15, `only ${s.ok}/16 succeeded: ${JSON.stringify(results.map((r) => r.error))}`);
});

Deno.test("failover: a blackholed server (its netns end down) is raced past and marked down", async () => {
  await using ns = await NetnsHost.create();
  await using target = startTarget({ hostname: "0.0.0.0" });
  await using a = await startServer({ netns: ns.name, listen: ns.address });
  await using b = await startServer();
  await using app = await startClient([
    { address: ns.address, port: a.port },
    { address: "127.0.0.1", port: b.port },
  ]);
  const results = await sequence({
    ...downloadVia(app, target.tcpPort, ns.hostAddress),
    count: 24,
    intervalMs: 100,
    before: async (i) => {
      if (i === 4) await ns.blackhole();
      if (i === 20) await ns.restore();
    },
  });
  const s = report("blackhole", results);
  ok(s.ok >= 20, `only ${s.ok}/24 succeeded: ${JSON.stringify(results.map((r) => r.error))}`);
  ok(results.slice(12).every((r) => r.ok), "requests after the server was marked down failed");
});

Deno.test("failover: fault proxy — a stalled, then reset path to one server; byte-at-a-time to the other", async () => {
  await using target = startTarget();
  await using a = await startServer();
  await using b = await startServer();
  await using pa = await FaultProxy.start({ target: { hostname: "127.0.0.1", port: a.port } });
  await using pb = await FaultProxy.start({ target: { hostname: "127.0.0.1", port: b.port } });
  await using app = await startClient([
    { address: "127.0.0.1", port: pa.port },
    { address: "127.0.0.1", port: pb.port },
  ]);
  const opts = {
    ...downloadVia(app, target.tcpPort),
    timeoutMs: 8000,
  };
  // Both servers reached once, cleanly.
  equal((await download(opts)).ok, true);
  equal((await download(opts)).ok, true);
  // A's path stalls both ways (no FIN, no RST): new requests must still complete, via B.
  pa.set("both", { stall: true });
  const stalled = await sequence({ ...opts, count: 8, intervalMs: 50 });
  const s = report("stall", stalled);
  ok(s.ok >= 6, `only ${s.ok}/8 succeeded: ${JSON.stringify(stalled.map((r) => r.error))}`);
  // A's path is reset (RST both ways) and refuses new connections for a while.
  pa.clear();
  pa.refuse = true;
  pa.reset();
  const reset = await sequence({ ...opts, count: 6, intervalMs: 50 });
  report("reset", reset);
  ok(reset.filter((r) => r.ok).length >= 5, JSON.stringify(reset.map((r) => r.error)));
  // B's path delivers one byte at a time (every frame split at every byte): still byte-exact.
  pb.set("down", { byteAtATime: true, byteDelayMs: 0 });
  const slow = await download({ ...opts, bytes: 2048, timeoutMs: 30_000 });
  equal(slow.ok, true, slow.error);
});

Deno.test("failover: a leastPing balancer fed by the observatory routes around a dead outbound", async () => {
  await using target = startTarget();
  await using b = await startServer();
  await using probe = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(null, { status: 204 }),
  );
  const vless = (tag: string, port: number) => ({
    tag,
    protocol: "vless",
    settings: { vnext: [{ address: "127.0.0.1", port, users: [{ id: ID, encryption: "none" }] }] },
    streamSettings: {
      network: "http",
      security: "tls",
      tlsSettings: {
        serverName: "localhost",
        certificates: [{ usage: "verify", certificateFile: CA }],
      },
      httpSettings: { host: ["localhost"], path: "/" },
    },
  });
  await using app = await startAppFromJson(() => ({
    inbounds: [{ tag: "socks", listen: "127.0.0.1", port: freePort(), protocol: "socks" }],
    outbounds: [
      { tag: "direct", protocol: "freedom" },
      // Nobody listens there: the first candidate is dead.
      vless("proxy-a", freePort()),
      vless("proxy-b", b.port),
    ],
    routing: {
      rules: [{ type: "field", network: "tcp", balancerTag: "lp" }],
      balancers: [{ tag: "lp", selector: ["proxy-"], strategy: { type: "leastPing" } }],
    },
    observatory: {
      subjectSelector: ["proxy-"],
      probeUrl: `http://127.0.0.1:${probe.addr.port}/generate_204`,
      probeInterval: "1s",
    },
  }));
  const results = await sequence({
    ...downloadVia(app, target.tcpPort),
    count: 8,
    intervalMs: 50,
  });
  report("leastPing", results);
  // At most the first request, before the first probe round or the first failure, goes to A.
  ok(results.slice(1).every((r) => r.ok), JSON.stringify(results.map((r) => r.error)));
});

Deno.test("failover: streams on a connection declared dead end with a reset, promptly", async () => {
  await using target = startTarget();
  // The target's bytes are paced, so the download is still running when the server freezes.
  await using paced = await FaultProxy.start({
    target: { hostname: "127.0.0.1", port: target.tcpPort },
  });
  paced.set("down", { bytesPerSecond: 1024 * 1024 });
  await using a = await startServer();
  await using app = await startClient([{ address: "127.0.0.1", port: a.port }]);
  const running = download({
    ...downloadVia(app, paced.port),
    bytes: 64 * 1024 * 1024,
    timeoutMs: 20_000,
    halfClose: false,
  });
  await waitFor(() => paced.forwarded.down > 256 * 1024);
  a.signal("SIGSTOP");
  const t0 = performance.now();
  const r = await running;
  const took = performance.now() - t0;
  console.log(
    `dead connection: the client saw "${r.error}" ${Math.round(took)} ms after the freeze`,
  );
  equal(r.ok, false);
  // Abortive, never a clean EOF; and once the PING health check gives up (read_idle_timeout 2 s
  // + health_check_timeout 2 s here), well before the 20 s the request would allow.
  ok(/reset/i.test(r.error ?? ""), r.error);
  ok(took < 10_000, `took ${took} ms`);
  a.signal("SIGCONT");
});

/** Polls every 10 ms, at most 10 s. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  ok(cond(), "condition not met within 10 s");
}
