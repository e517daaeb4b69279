/**
 * The HTTP/2 client benchmark (issue 3): our H2Connection against Deno.serve (hyper) over TLS on
 * loopback, next to raw TLS between two Deno processes.
 *
 *   deno run -A scripts/h2_bench.ts [--size 256] [--streams 100] [--repeats 3] [--json out.json]
 *
 * Reports single-stream download and upload throughput, 100 parallel streams' aggregate download,
 * the raw-TLS ceiling, and this (client) process's CPU seconds per GiB. Every transfer's byte
 * count is checked; figures are medians of the repeats. With `--serve` it is the server process.
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { dial, download, median, spawnServer, upload } from "./bench/h2_client.ts";
import { benchEndpoints } from "./bench/h2_endpoints.ts";

const certs = new URL("../tests/support/certs/", import.meta.url);
const MiB = 1024 * 1024;

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "boolean", default: false },
      size: { type: "string", default: "256" },
      streams: { type: "string", default: "100" },
      repeats: { type: "string", default: "3" },
      json: { type: "string" },
    },
  });
  if (values.serve) serve();
  else {
    const result = await runH2Bench({
      sizeMiB: Number(values.size),
      streams: Number(values.streams),
      repeats: Number(values.repeats),
    });
    console.log(formatH2Bench(result));
    if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
  }
}

/** The server process: Deno.serve over TLS with /down?n=N (N bytes) and /up (counts the body). */
function serve(): void {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(new URL("server.pem", certs)),
    key: Deno.readTextFileSync(new URL("server.key", certs)),
    onListen: ({ port }) => console.log(JSON.stringify({ h2: port })),
  }, benchEndpoints);
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
}

export interface H2BenchResult {
  sizeMiB: number;
  streams: number;
  repeats: number;
  rawTlsMiBs: number;
  downloadMiBs: number;
  uploadMiBs: number;
  parallelMiBs: number;
  downloadCpuSecPerGiB: number;
  uploadCpuSecPerGiB: number;
  parallelCpuSecPerGiB: number;
  oneStreamVsRawTls: number;
  parallelVsOneStream: number;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Sample {
  mibs: number;
  cpuPerGiB: number;
}

async function measure(bytes: number, run: () => Promise<void>): Promise<Sample> {
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  await run();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  return { mibs: bytes / MiB / seconds, cpuPerGiB: cpu / (bytes / 1024 / MiB) };
}

/** Raw TLS: download n bytes from scripts/bench/tls_peer.ts (another Deno process). */
async function rawTls(port: number, n: number): Promise<void> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  const tls = await Deno.startTls(tcp, {
    hostname: "localhost",
    caCerts: [Deno.readTextFileSync(new URL("ca.pem", certs))],
  });
  try {
    await tls.write(new TextEncoder().encode(`download ${n}\n`));
    const buf = new Uint8Array(256 * 1024);
    let got = 0;
    while (got < n) {
      const r = await tls.read(buf);
      if (r === null) break;
      got += r;
    }
    if (got !== n) throw new Error(`raw TLS: got ${got} of ${n} bytes`);
  } finally {
    tls.close();
  }
}

export async function runH2Bench(
  opts: { sizeMiB: number; streams: number; repeats: number },
): Promise<H2BenchResult> {
  const bytes = opts.sizeMiB * MiB;
  const self = new URL(import.meta.url).pathname;
  const h2 = await spawnServer([self, "--serve"]);
  const raw = await spawnServer([new URL("./bench/tls_peer.ts", import.meta.url).pathname]);
  const samples: Record<"raw" | "down" | "up" | "par", Sample[]> = {
    raw: [],
    down: [],
    up: [],
    par: [],
  };
  try {
    for (let r = 0; r < opts.repeats; r++) {
      samples.raw.push(await measure(bytes, () => rawTls(raw.port, bytes)));
      const conn = await dial(h2.port);
      try {
        samples.down.push(await measure(bytes, () => download(conn, bytes)));
        samples.up.push(await measure(bytes, () => upload(conn, bytes)));
        const each = Math.max(1, Math.floor(bytes / opts.streams));
        samples.par.push(
          await measure(each * opts.streams, async () => {
            await Promise.all(Array.from({ length: opts.streams }, () => download(conn, each)));
          }),
        );
      } finally {
        conn.close();
        await conn.closed;
      }
    }
  } finally {
    await h2.stop();
    await raw.stop();
  }
  const m = (k: keyof typeof samples, f: keyof Sample) => median(samples[k].map((s) => s[f]));
  const result: H2BenchResult = {
    ...opts,
    rawTlsMiBs: m("raw", "mibs"),
    downloadMiBs: m("down", "mibs"),
    uploadMiBs: m("up", "mibs"),
    parallelMiBs: m("par", "mibs"),
    downloadCpuSecPerGiB: m("down", "cpuPerGiB"),
    uploadCpuSecPerGiB: m("up", "cpuPerGiB"),
    parallelCpuSecPerGiB: m("par", "cpuPerGiB"),
    oneStreamVsRawTls: 0,
    parallelVsOneStream: 0,
  };
  result.oneStreamVsRawTls = result.downloadMiBs / result.rawTlsMiBs;
  result.parallelVsOneStream = result.parallelMiBs / result.downloadMiBs;
  return result;
}

export function formatH2Bench(r: H2BenchResult): string {
  const f = (x: number) => x.toFixed(0).padStart(6);
  return [
    `HTTP/2 client vs Deno.serve over TLS, ${r.sizeMiB} MiB per run, median of ${r.repeats}`,
    `  raw TLS (Deno ↔ Deno)         ${f(r.rawTlsMiBs)} MiB/s`,
    `  one stream download           ${f(r.downloadMiBs)} MiB/s  ${
      r.downloadCpuSecPerGiB.toFixed(2)
    } client CPU s/GiB  (${(r.oneStreamVsRawTls * 100).toFixed(0)}% of raw TLS)`,
    `  one stream upload             ${f(r.uploadMiBs)} MiB/s  ${
      r.uploadCpuSecPerGiB.toFixed(2)
    } client CPU s/GiB`,
    `  ${String(r.streams).padEnd(3)} parallel streams download ${f(r.parallelMiBs)} MiB/s  ${
      r.parallelCpuSecPerGiB.toFixed(2)
    } client CPU s/GiB  (${(r.parallelVsOneStream * 100).toFixed(0)}% of one stream)`,
  ].join("\n");
}
