/**
 * The benchmark's workloads. Each scenario drives connections over a {@link Route} (straight to
 * the target, through a SOCKS5 proxy, or raw TLS to the TLS peer) and returns its figures; every
 * byte moved is checked by sha256 or compared with what was sent. Process figures (CPU, memory)
 * are taken around a scenario by the runner; `probe()` samples them mid-scenario.
 */
import { createHash } from "node:crypto";
import { patternChunks, sha256OfPattern } from "../../tests/support/target.ts";
import { readExact, type UdpChannel, writeAll } from "./socks_client.ts";
import type { Transport } from "./processes.ts";
import { percentile } from "./stats.ts";

const encoder = new TextEncoder();
const READ_BUFFER = 256 * 1024;
const WRITE_CHUNK = 1024 * 1024;
const ECHO_MESSAGE = 64;
/** Bytes downloaded per sample of the last byte → EOF scenario. */
const EOF_PROBE_BYTES = 1024;
/** How long a stream may stay open after its last byte before we call it stuck. */
const EOF_TIMEOUT_MS = 15_000;
/** How long one UDP echo may take before it counts as lost. */
const UDP_TIMEOUT_MS = 500;
/** Connections opened at once while building up the idle set (a burst, not a flood). */
const OPEN_BATCH = 64;
/** Bytes each connection of the burst scenario downloads (as parallel-512's share of 128 MiB). */
const BURST_BYTES = 256 * 1024;
/** How long the burst scenario watches the client's RSS come down after the burst. */
/** How often it samples the client's RSS (peak during the burst, then the way back down). */
const BURST_SAMPLE_MS = 250;
/** "Back" = RSS within this factor of the pre-burst level (issue 16: within 15%). */
const BURST_BACK_FACTOR = 1.15;

/** How connections reach the target. */
export interface Route {
  /** A byte stream to the target's TCP protocol (tests/support/target.ts). */
  connect(): Promise<Deno.Conn>;
  /** A datagram channel to the target's UDP echo; absent where UDP does not apply. */
  udp?(): Promise<UdpChannel>;
}

/** Everything a scenario opened, so a timeout can close it and unblock pending reads. */
export class Scope {
  #open = new Set<{ close(): void }>();
  #closed = false;

  track<T extends { close(): void }>(resource: T): T {
    if (this.#closed) {
      resource.close();
      throw new Error("scenario cancelled");
    }
    this.#open.add(resource);
    return resource;
  }

  release(resource: { close(): void }): void {
    if (this.#open.delete(resource)) {
      try {
        resource.close();
      } catch {
        // Closed already.
      }
    }
  }

  closeAll(): void {
    this.#closed = true;
    for (const r of [...this.#open]) this.release(r);
  }
}

/** Sizes and counts; `--quick` shrinks the counts. */
export interface Workload {
  /** What VLESS rides on between the proxy client and server (http = h2), under TLS. */
  transport: Transport;
  /** Bytes for the single-connection download and upload. */
  size: number;
  /** Bytes in total across the parallel connections. */
  parallelTotal: number;
  echoes: number;
  connects: number;
  eofSamples: number;
  udpEchoes: number;
  idleConnections: number;
  /** Connections opened at once by the burst scenario. */
  burstConnections: number;
  /** How long the burst scenario then waits for RSS to settle, ms (30 s; shorter in smoke runs). */
  burstSettleMs: number;
}

/** Process figures at a moment, provided by the runner. */
export type Probe = () => Record<string, number>;

export interface ScenarioContext {
  route: Route;
  scope: Scope;
  work: Workload;
  data: Payloads;
  probe: Probe;
}

export interface ScenarioResult {
  figures: Record<string, number>;
  /** Whether every transferred byte checked out (hash or comparison). */
  verified: boolean;
  /** Payload bytes moved, for CPU per GiB. */
  bytes: number;
}

export interface Scenario {
  name: string;
  /** A line for the report. */
  description: (w: Workload) => string;
  /** Whether it needs UDP (skipped on routes without). */
  udp?: boolean;
  /** Whether it measures a proxy client process (skipped on the direct and raw TLS rows). */
  proxyClient?: boolean;
  /** Whether it moves bulk data (CPU per GiB and peak RSS are reported). */
  bulk?: boolean;
  /** How long it may take before it is cancelled and reported as timed out. */
  timeoutMs: (w: Workload) => number;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** Pattern bytes and their hashes, computed once per size. */
export class Payloads {
  #patterns = new Map<number, Uint8Array>();
  #hashes = new Map<number, string>();

  pattern(size: number): Uint8Array {
    let p = this.#patterns.get(size);
    if (!p) {
      p = new Uint8Array(size);
      let off = 0;
      for (const chunk of patternChunks(size)) {
        p.set(chunk, off);
        off += chunk.byteLength;
      }
      this.#patterns.set(size, p);
    }
    return p;
  }

  hash(size: number): string {
    let h = this.#hashes.get(size);
    if (h === undefined) {
      h = this.#patterns.has(size)
        ? createHash("sha256").update(this.#patterns.get(size)!).digest("hex")
        : sha256OfPattern(size);
      this.#hashes.set(size, h);
    }
    return h;
  }
}

const MIB = 1024 * 1024;

/** Time for `bytes` at no less than 4 MiB/s, plus setup: slower than that is a failure anyway. */
function bulkTimeout(bytes: number): number {
  return 20_000 + (bytes / (4 * MIB)) * 1000;
}

/** Downloads `size` pattern bytes on a new connection; times command → last byte. */
async function downloadOnce(
  ctx: ScenarioContext,
  size: number,
): Promise<{ ms: number; verified: boolean }> {
  const conn = ctx.scope.track(await ctx.route.connect());
  try {
    const hash = createHash("sha256");
    const buf = new Uint8Array(Math.min(READ_BUFFER, Math.max(size, 1)));
    const t0 = performance.now();
    await writeAll(conn, encoder.encode(`download ${size}\n`));
    for (let got = 0; got < size;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`download ended after ${got} of ${size} bytes`);
      hash.update(buf.subarray(0, n));
      got += n;
    }
    const ms = performance.now() - t0;
    return { ms, verified: hash.digest("hex") === ctx.data.hash(size) };
  } finally {
    ctx.scope.release(conn);
  }
}

const download: Scenario = {
  name: "download",
  timeoutMs: (w) => bulkTimeout(w.size),
  description: (w) => `download ${formatBytes(w.size)} on one connection`,
  bulk: true,
  async run(ctx) {
    const { size } = ctx.work;
    const { ms, verified } = await downloadOnce(ctx, size);
    return { figures: { "MiB/s": size / MIB / (ms / 1000) }, verified, bytes: size };
  },
};

const upload: Scenario = {
  name: "upload",
  timeoutMs: (w) => bulkTimeout(w.size),
  description: (w) => `upload ${formatBytes(w.size)} on one connection`,
  bulk: true,
  async run(ctx) {
    const { size } = ctx.work;
    const data = ctx.data.pattern(size);
    const conn = ctx.scope.track(await ctx.route.connect());
    try {
      const t0 = performance.now();
      await writeAll(conn, encoder.encode(`upload ${size}\n`));
      for (let off = 0; off < size; off += WRITE_CHUNK) {
        await writeAll(conn, data.subarray(off, off + WRITE_CHUNK));
      }
      // The target answers with the sha256 hex of what it received and "\n".
      const reply = new TextDecoder().decode(await readExact(conn, 65));
      const ms = performance.now() - t0;
      const verified = reply === `${ctx.data.hash(size)}\n`;
      return { figures: { "MiB/s": size / MIB / (ms / 1000) }, verified, bytes: size };
    } finally {
      ctx.scope.release(conn);
    }
  },
};

function parallel(count: number): Scenario {
  return {
    name: `parallel-${count}`,
    timeoutMs: (w) => bulkTimeout(w.parallelTotal),
    description: (w) =>
      `${count} connections at once, each downloading ${formatBytes(perConnection(w, count))}`,
    bulk: true,
    async run(ctx) {
      const each = perConnection(ctx.work, count);
      ctx.data.hash(each);
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: count }, () => downloadOnce(ctx, each)),
      );
      const ms = performance.now() - t0;
      const bytes = each * count;
      return {
        figures: { "MiB/s": bytes / MIB / (ms / 1000) },
        verified: results.every((r) => r.verified),
        bytes,
      };
    },
  };
}

function perConnection(w: Workload, count: number): number {
  return Math.max(4, Math.floor(w.parallelTotal / count / 4) * 4);
}

const echo: Scenario = {
  name: "echo",
  timeoutMs: (w) => 20_000 + 20 * w.echoes,
  description: (w) => `${w.echoes} sequential ${ECHO_MESSAGE}-byte echoes on one connection`,
  async run(ctx) {
    const conn = ctx.scope.track(await ctx.route.connect());
    try {
      await writeAll(conn, encoder.encode("echo\n"));
      const message = new Uint8Array(ECHO_MESSAGE);
      const rtts: number[] = [];
      let verified = true;
      for (let i = 0; i < ctx.work.echoes; i++) {
        message.fill(i & 0xff);
        message[0] = i >> 8;
        const t0 = performance.now();
        await writeAll(conn, message);
        const back = await readExact(conn, ECHO_MESSAGE);
        rtts.push(performance.now() - t0);
        if (!sameBytes(back, message)) verified = false;
      }
      return {
        figures: { "RTT p50 ms": percentile(rtts, 50), "RTT p99 ms": percentile(rtts, 99) },
        verified,
        bytes: 2 * ECHO_MESSAGE * ctx.work.echoes,
      };
    } finally {
      ctx.scope.release(conn);
    }
  },
};

const connect: Scenario = {
  name: "connect",
  timeoutMs: (w) => 20_000 + 50 * w.connects,
  description: (w) => `${w.connects} sequential new connections, connect → first echoed byte`,
  async run(ctx) {
    const times: number[] = [];
    let verified = true;
    const request = encoder.encode("echo\n!");
    for (let i = 0; i < ctx.work.connects; i++) {
      const t0 = performance.now();
      const conn = ctx.scope.track(await ctx.route.connect());
      try {
        await writeAll(conn, request);
        const first = await readExact(conn, 1);
        times.push(performance.now() - t0);
        if (first[0] !== request[request.length - 1]) verified = false;
      } finally {
        ctx.scope.release(conn);
      }
    }
    return {
      figures: { "p50 ms": percentile(times, 50), "p99 ms": percentile(times, 99) },
      verified,
      bytes: ctx.work.connects,
    };
  },
};

const eof: Scenario = {
  name: "eof",
  timeoutMs: (w) => 5_000 + (EOF_TIMEOUT_MS + 2_000) * w.eofSamples,
  description: (w) =>
    `last byte → EOF after the target closes (${w.eofSamples} × download ${EOF_PROBE_BYTES} B)`,
  async run(ctx) {
    const delays: number[] = [];
    let verified = true;
    for (let i = 0; i < ctx.work.eofSamples; i++) {
      const conn = ctx.scope.track(await ctx.route.connect());
      const stuck = setTimeout(() => ctx.scope.release(conn), EOF_TIMEOUT_MS);
      try {
        await writeAll(conn, encoder.encode(`download ${EOF_PROBE_BYTES}\n`));
        const body = await readExact(conn, EOF_PROBE_BYTES);
        const last = performance.now();
        const extra = await conn.read(new Uint8Array(1)).catch((err) => {
          if (performance.now() - last >= EOF_TIMEOUT_MS) {
            throw new Error(`no EOF within ${EOF_TIMEOUT_MS} ms of the last byte`);
          }
          throw err;
        });
        if (extra !== null) verified = false; // a byte past the end
        delays.push(performance.now() - last);
        const hash = createHash("sha256").update(body).digest("hex");
        if (hash !== ctx.data.hash(EOF_PROBE_BYTES)) verified = false;
      } finally {
        clearTimeout(stuck);
        ctx.scope.release(conn);
      }
    }
    return {
      figures: { "p50 ms": percentile(delays, 50), "max ms": Math.max(...delays) },
      verified,
      bytes: EOF_PROBE_BYTES * ctx.work.eofSamples,
    };
  },
};

const udp: Scenario = {
  name: "udp",
  timeoutMs: (w) => 10_000 + UDP_TIMEOUT_MS * w.udpEchoes,
  description: (w) =>
    `${w.udpEchoes} sequential ${ECHO_MESSAGE}-byte UDP echoes (lost after ${UDP_TIMEOUT_MS} ms)`,
  udp: true,
  async run(ctx) {
    const channel = ctx.scope.track(await ctx.route.udp!());
    try {
      let waiting: { seq: number; sent: Uint8Array; done: (ok: boolean) => void } | undefined;
      let verified = true;
      const receiving = (async () => {
        for (;;) {
          let d: Uint8Array;
          try {
            d = await channel.receive();
          } catch {
            return; // closed
          }
          if (d.byteLength < 4 || !waiting) continue;
          const seq = new DataView(d.buffer, d.byteOffset, 4).getUint32(0);
          if (seq !== waiting.seq) continue; // a late answer to an echo already counted lost
          if (!sameBytes(d, waiting.sent)) verified = false;
          waiting.done(true);
        }
      })();
      const rtts: number[] = [];
      let lost = 0;
      for (let i = 0; i < ctx.work.udpEchoes; i++) {
        // Nothing came back at all: the path is broken, so stop instead of waiting out every echo.
        if (i >= 10 && rtts.length === 0) {
          lost += ctx.work.udpEchoes - i;
          break;
        }
        const sent = new Uint8Array(ECHO_MESSAGE).fill(0x5a);
        new DataView(sent.buffer).setUint32(0, i);
        const answered = Promise.withResolvers<boolean>();
        waiting = { seq: i, sent, done: answered.resolve };
        const timer = setTimeout(() => answered.resolve(false), UDP_TIMEOUT_MS);
        const t0 = performance.now();
        await channel.send(sent);
        const ok = await answered.promise;
        clearTimeout(timer);
        if (ok) rtts.push(performance.now() - t0);
        else lost++;
      }
      waiting = undefined;
      ctx.scope.release(channel);
      await receiving;
      return {
        figures: {
          "RTT p50 ms": percentile(rtts, 50),
          "loss %": (100 * lost) / ctx.work.udpEchoes,
        },
        verified: verified && rtts.length > 0,
        bytes: 2 * ECHO_MESSAGE * rtts.length,
      };
    } finally {
      ctx.scope.release(channel);
    }
  },
};

const idle: Scenario = {
  name: "idle",
  timeoutMs: (w) => 30_000 + 50 * w.idleConnections,
  description: (w) => `${w.idleConnections} open idle connections (each echoed one byte)`,
  async run(ctx) {
    const conns: Deno.Conn[] = [];
    let verified = true;
    const request = encoder.encode("echo\n!");
    try {
      const before = ctx.probe()["client RSS MiB"];
      const t0 = performance.now();
      for (let opened = 0; opened < ctx.work.idleConnections; opened += OPEN_BATCH) {
        const batch = Math.min(OPEN_BATCH, ctx.work.idleConnections - opened);
        await Promise.all(Array.from({ length: batch }, async () => {
          const conn = ctx.scope.track(await ctx.route.connect());
          conns.push(conn);
          await writeAll(conn, request);
          if ((await readExact(conn, 1))[0] !== request[request.length - 1]) verified = false;
        }));
      }
      const openMs = performance.now() - t0;
      return {
        figures: {
          "open all s": openMs / 1000,
          ...(before === undefined ? {} : { "client RSS before MiB": before }),
          ...ctx.probe(),
        },
        verified,
        bytes: 2 * ctx.work.idleConnections,
      };
    } finally {
      for (const c of conns) ctx.scope.release(c);
    }
  },
};

/**
 * A burst and what it leaves behind: after one warm-up echo (the client's connection to its server
 * is up), `burstConnections` connections download 256 KiB each at once; then nothing for `burstSettleMs` (30 s; 3 s with --quick).
 * Reports the client's RSS before, its peak during the burst, at the end of that wait, and how long after
 * the burst it took to come back within 15% of the level before (NaN: not within the wait).
 */
const burst: Scenario = {
  name: "burst",
  proxyClient: true,
  timeoutMs: (w) => bulkTimeout(w.burstConnections * BURST_BYTES) + 2 * w.burstSettleMs,
  description: (w) =>
    `${w.burstConnections} connections at once, each downloading ${
      formatBytes(BURST_BYTES)
    }, then ${w.burstSettleMs / 1000} s idle (client RSS before, peak, after)`,
  async run(ctx) {
    const rss = () => ctx.probe()["client RSS MiB"];
    const request = encoder.encode("echo\n!");
    const warm = ctx.scope.track(await ctx.route.connect());
    let verified = true;
    try {
      await writeAll(warm, request);
      if ((await readExact(warm, 1))[0] !== request[request.length - 1]) verified = false;
    } finally {
      ctx.scope.release(warm);
    }
    const before = rss();
    if (before === undefined) throw new Error("the burst scenario needs a proxy client's RSS");
    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      // Bounded by the scenario's own timeout; stops as soon as the burst is over.
      while (sampling) {
        peak = Math.max(peak, rss() ?? 0);
        await new Promise((r) => setTimeout(r, BURST_SAMPLE_MS));
      }
    })();
    ctx.data.hash(BURST_BYTES);
    let results: Array<{ verified: boolean }>;
    try {
      results = await Promise.all(
        Array.from({ length: ctx.work.burstConnections }, () => downloadOnce(ctx, BURST_BYTES)),
      );
    } finally {
      sampling = false;
      await sampler;
    }
    const t0 = performance.now();
    let back = NaN;
    let after = rss() ?? NaN;
    // By the clock (a probe reads /proc and may itself take a while on a busy machine).
    while (performance.now() - t0 < ctx.work.burstSettleMs) {
      after = rss() ?? NaN;
      if (Number.isNaN(back) && after <= before * BURST_BACK_FACTOR) {
        back = (performance.now() - t0) / 1000;
      }
      await new Promise((r) => setTimeout(r, BURST_SAMPLE_MS));
    }
    return {
      figures: {
        "client RSS before MiB": before,
        "client RSS peak MiB": peak,
        "client RSS 30 s after MiB": after,
        "after/before": after / before,
        "back within 15% s": back,
      },
      verified: verified && results.every((r) => r.verified),
      bytes: BURST_BYTES * ctx.work.burstConnections,
    };
  },
};

export const SCENARIOS: readonly Scenario[] = [
  download,
  upload,
  parallel(64),
  parallel(512),
  echo,
  connect,
  eof,
  udp,
  idle,
  burst,
];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function formatBytes(n: number): string {
  if (n >= 1024 * MIB && n % (1024 * MIB) === 0) return `${n / (1024 * MIB)} GiB`;
  if (n >= MIB && n % MIB === 0) return `${n / MIB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

/** "512MiB", "1 GiB", "64k", "1000" → bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(text);
  if (!m) throw new SyntaxError(`Cannot parse size "${text}": expected e.g. 512MiB, 64KiB, 1GiB`);
  const unit = (m[2] ?? "b").toLowerCase()[0];
  const scale = unit === "g" ? 1024 * MIB : unit === "m" ? MIB : unit === "k" ? 1024 : 1;
  return Math.round(Number(m[1]) * scale);
}
