/**
 * Many parallel downloads through a SOCKS5 proxy, every one checked for length and sha256: the
 * load of issue 13's bugs 1 and 3 (512 connections at once, each `download N` from the target of
 * tests/support/target.ts). Each download reads to EOF, so a short stream, extra bytes, a reset,
 * and a SOCKS refusal are all told apart; nothing here retries.
 */
import { createHash } from "node:crypto";
import { socksConnect } from "./socks_client.ts";
import { sha256OfPattern } from "./target.ts";

export interface ParallelDownloadsOptions {
  socksPort: number;
  target: { host: string; port: number };
  /** Connections opened at once. */
  count: number;
  /** Bytes each one downloads. */
  size: number;
  /** Safety net: downloads still running after this many ms are closed and counted as stalled. */
  timeoutMs: number;
}

export interface DownloadOutcome {
  index: number;
  /** Bytes received before EOF, error or the deadline. */
  bytes: number;
  /** "ok" | "short" (clean EOF before the end) | "long" | "corrupt" | "error" | "stalled". */
  kind: "ok" | "short" | "long" | "corrupt" | "error" | "stalled";
  /** The error's message for "error" (where it happened: socks or read). */
  detail?: string;
}

export interface ParallelDownloadsResult {
  outcomes: DownloadOutcome[];
  /** Every outcome that is not "ok". */
  losses: DownloadOutcome[];
  ms: number;
}

const encoder = new TextEncoder();

/** Runs `count` downloads at once and reports each one; never throws for a failed download. */
export async function parallelDownloads(
  o: ParallelDownloadsOptions,
): Promise<ParallelDownloadsResult> {
  const expected = sha256OfPattern(o.size);
  const started = performance.now();
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), o.timeoutMs);
  try {
    const outcomes = await Promise.all(
      Array.from({ length: o.count }, (_, i) => downloadOne(o, i, expected, stop.signal)),
    );
    return {
      outcomes,
      losses: outcomes.filter((r) => r.kind !== "ok"),
      ms: performance.now() - started,
    };
  } finally {
    clearTimeout(timer);
  }
}

async function downloadOne(
  o: ParallelDownloadsOptions,
  index: number,
  expected: string,
  signal: AbortSignal,
): Promise<DownloadOutcome> {
  let bytes = 0;
  let conn;
  try {
    conn = await socksConnect(o.socksPort, 1, o.target.host, o.target.port);
  } catch (err) {
    return { index, bytes, kind: "error", detail: `socks: ${(err as Error).message}` };
  }
  const onAbort = () => conn.duplex.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const hash = createHash("sha256");
    const take = (b: Uint8Array) => {
      hash.update(b);
      bytes += b.byteLength;
    };
    take(conn.carry.buf);
    await conn.writer.write(encoder.encode(`download ${o.size}\n`));
    for (;;) {
      const { done, value } = await conn.reader.read();
      if (done) break;
      take(value);
    }
    if (signal.aborted) return { index, bytes, kind: "stalled" };
    if (bytes < o.size) return { index, bytes, kind: "short" };
    if (bytes > o.size) return { index, bytes, kind: "long" };
    return hash.digest("hex") === expected
      ? { index, bytes, kind: "ok" }
      : { index, bytes, kind: "corrupt" };
  } catch (err) {
    if (signal.aborted) return { index, bytes, kind: "stalled" };
    return { index, bytes, kind: "error", detail: `read: ${(err as Error).message}` };
  } finally {
    signal.removeEventListener("abort", onAbort);
    conn.duplex.close();
  }
}

/** "3 short (0, 159744, 919040 bytes), 1 error" — a loss list for logs and assertion messages. */
export function describeLosses(losses: DownloadOutcome[]): string {
  if (losses.length === 0) return "none";
  const byKind = new Map<string, DownloadOutcome[]>();
  for (const l of losses) byKind.set(l.kind, [...(byKind.get(l.kind) ?? []), l]);
  return [...byKind].map(([kind, ls]) => {
    const sizes = ls.slice(0, 8).map((l) => l.bytes).join(", ");
    const detail = ls.find((l) => l.detail)?.detail;
    return `${ls.length} ${kind} (${sizes}${ls.length > 8 ? ", …" : ""} bytes)` +
      (detail ? ` e.g. ${detail}` : "");
  }).join("; ");
}
