/**
 * Connect latency with and without routing (issue 12: a 20-rule config within 5% of none). Two
 * dray clients run side by side with the benchmark matrix's client config (SOCKS5 in, VLESS over
 * h2+TLS out to one v2ray 4.34 server, then the target's echo): A has no routing section, B has
 * 20 rules (domains, CIDRs, ports, networks, inbound tags, users, protocols) that the benchmark's
 * connections all go past to the default route, so every rule is considered. Connect → first
 * echoed byte, p50 per round; the rounds alternate which client goes first (A/B interleaved, the
 * machine is shared). CPU seconds of each client process over the whole run, per connection.
 *
 *   deno run -A scripts/bench/routing_connect_bench.ts [--rounds 30] [--connects 50]
 */
import { parseArgs } from "node:util";
import {
  clientConfig,
  freePort,
  serverConfig,
  type Service,
  startHelper,
  startProxy,
} from "./processes.ts";
import { cpuSeconds } from "./proc_stats.ts";
import { readExact, socksConnect, writeAll } from "./socks_client.ts";
import { median, percentile } from "./stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string" }, connects: { type: "string" } },
});
const ROUNDS = Number(values.rounds ?? 30);
const CONNECTS = Number(values.connects ?? 50);

/** 20 rules none of which takes a connection to 127.0.0.1:<target> from the "socks" inbound. */
function twentyRules(): Record<string, unknown> {
  const rule = (r: Record<string, unknown>) => ({ type: "field", ...r });
  return {
    domainStrategy: "AsIs",
    rules: [
      rule({ domain: ["domain:ads.example", "keyword:tracker"], outboundTag: "block" }),
      rule({
        domain: ["full:www.example.org", "regexp:^cdn\\d+\\.example\\.net$"],
        outboundTag: "direct",
      }),
      rule({ ip: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], outboundTag: "direct" }),
      rule({ ip: ["100.64.0.0/10", "fc00::/7"], outboundTag: "direct" }),
      rule({ port: "25,465,587", outboundTag: "block" }),
      rule({ network: "udp", port: "53", outboundTag: "direct" }),
      rule({ inboundTag: ["other-in"], outboundTag: "direct" }),
      rule({ user: ["admin@example.com"], outboundTag: "direct" }),
      rule({ protocol: ["bittorrent"], outboundTag: "block" }),
      rule({ source: ["192.168.1.0/24"], outboundTag: "direct" }),
      rule({ domain: ["domain:lan", "domain:local", "domain:internal"], outboundTag: "direct" }),
      rule({ ip: ["1.1.1.1", "8.8.8.8", "9.9.9.9"], port: "853", outboundTag: "direct" }),
      rule({ domain: ["domain:a.test", "domain:b.test", "domain:c.test"], outboundTag: "block" }),
      rule({ sourcePort: "1-1023", outboundTag: "block" }),
      rule({ ip: ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"], outboundTag: "block" }),
      rule({ domain: ["keyword:ads", "keyword:analytics"], outboundTag: "block" }),
      rule({ port: "6881-6889", outboundTag: "block" }),
      rule({ network: "udp", ip: ["224.0.0.0/4"], outboundTag: "block" }),
      rule({ domain: ["full:example.com", "domain:example.edu"], outboundTag: "direct" }),
      rule({ ip: ["127.0.0.2/32", "::1/128"], outboundTag: "direct" }),
    ],
  };
}

function withRouting(config: unknown): unknown {
  const c = structuredClone(config) as Record<string, unknown> & {
    inbounds: Array<Record<string, unknown>>;
    outbounds: unknown[];
  };
  c.outbounds = [
    ...c.outbounds,
    { tag: "direct", protocol: "freedom" },
    { tag: "block", protocol: "blackhole" },
  ];
  c.inbounds[0].tag = "socks";
  c.routing = twentyRules();
  return c;
}

const request = new TextEncoder().encode("echo\n!");

/** `CONNECTS` sequential connections through `socks`: connect → first echoed byte, ms each. */
async function round(socks: number, target: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const t0 = performance.now();
    const conn = await socksConnect(socks, { hostname: "127.0.0.1", port: target });
    try {
      await writeAll(conn, request);
      const first = await readExact(conn, 1);
      times.push(performance.now() - t0);
      if (first[0] !== request[request.length - 1]) throw new Error("echo mismatch");
    } finally {
      conn.close();
    }
  }
  return times;
}

const services: Service[] = [];
try {
  const t = await startHelper("target", "target_main.ts");
  services.push(t.service);
  const serverPort = freePort();
  services.push(await startProxy("v2ray server", "v2ray", serverConfig(serverPort), serverPort));
  const ports = { A: freePort(), B: freePort() };
  const plain = await startProxy(
    "dray client (no routing)",
    "dray",
    clientConfig(ports.A, serverPort),
    ports.A,
  );
  services.push(plain);
  const routed = await startProxy(
    "dray client (20 rules)",
    "dray",
    withRouting(clientConfig(ports.B, serverPort)),
    ports.B,
  );
  services.push(routed);
  // Warm both up (JIT, h2 connection to the server) before measuring.
  await round(ports.A, t.ports.tcp);
  await round(ports.B, t.ports.tcp);
  const cpu0 = { A: cpuSeconds(plain.pid) ?? NaN, B: cpuSeconds(routed.pid) ?? NaN };
  const p50 = { A: [] as number[], B: [] as number[] };
  const all = { A: [] as number[], B: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (["A", "B"] as const) : (["B", "A"] as const);
    for (const which of order) {
      const times = await round(ports[which], t.ports.tcp);
      p50[which].push(percentile(times, 50));
      all[which].push(...times);
    }
  }
  const cpu = {
    A: (cpuSeconds(plain.pid) ?? NaN) - cpu0.A,
    B: (cpuSeconds(routed.pid) ?? NaN) - cpu0.B,
  };
  const ratios = p50.B.map((b, i) => b / p50.A[i]).sort((x, y) => x - y);
  const n = ROUNDS * CONNECTS;
  const f = (x: number, d = 3) => x.toFixed(d);
  console.log(`connect → first byte, ${ROUNDS} rounds × ${CONNECTS} connections, A/B alternating`);
  for (const which of ["A", "B"] as const) {
    const label = which === "A" ? "no routing" : "20 rules  ";
    console.log(
      `${label}  p50 ${f(percentile(all[which], 50))} ms  p99 ${f(percentile(all[which], 99))} ms` +
        `  client CPU ${f((cpu[which] / n) * 1e6, 0)} µs/connection (${f(cpu[which], 2)} s)`,
    );
  }
  console.log(
    `per-round p50 ratio (20 rules / none): median ${f(median(ratios))}, ` +
      `IQR ${f(percentile(ratios, 25))}-${f(percentile(ratios, 75))}, ` +
      `range ${f(ratios[0])}-${f(ratios[ratios.length - 1])}`,
  );
  console.log(`client CPU ratio (20 rules / none): ${f(cpu.B / cpu.A)}`);
} finally {
  for (const s of services.reverse()) await s.stop();
}
