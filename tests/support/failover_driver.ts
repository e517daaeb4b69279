/**
 * Drives a SOCKS5 client (dray or v2ray) the way the failover scenarios of issue 13 do: requests
 * to the target server (tests/support/target.ts `download N`), each verified by sha256 and cut off
 * at a deadline, one after another with a pause between them; and a fault schedule keyed by the
 * request index. Used by the fault-injection tests and by scripts/failover_scenario.ts.
 */
import { createHash } from "node:crypto";
import { sha256OfPattern } from "./target.ts";

export interface RequestResult {
  ok: boolean;
  /** From the SOCKS connect to the last byte (or the failure). */
  ms: number;
  /** When it started, ms since the run began. */
  at: number;
  /** From the SOCKS connect until all N bytes were in. */
  dataMs?: number;
  /** Why it failed. */
  error?: string;
}

export interface DownloadOptions {
  socksPort: number;
  /** Where the VLESS server connects (the target server). */
  target: { host: string; port: number };
  bytes: number;
  /** The request fails when it has not finished by then. */
  timeoutMs: number;
  /** Half-close after the command (default true). */
  halfClose?: boolean;
}

const hashes = new Map<number, string>();

function expectedHash(n: number): string {
  let h = hashes.get(n);
  if (!h) hashes.set(n, h = sha256OfPattern(n));
  return h;
}

/**
 * One `download N` through the SOCKS5 proxy: greeting and CONNECT pipelined, then the command and
 * a half-close; ok once N bytes arrived and their sha256 matches the pattern's (an EOF before
 * that fails it).
 */
export async function download(
  o: DownloadOptions,
): Promise<{ ok: boolean; dataMs?: number; error?: string }> {
  const t0 = performance.now();
  let dataMs: number | undefined;
  let conn: Deno.TcpConn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn?.close();
    } catch {
      // Closed meanwhile.
    }
  }, o.timeoutMs);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port: o.socksPort });
    if (timedOut) throw new Error("timed out");
    const host = new TextEncoder().encode(o.target.host);
    const req = new Uint8Array(3 + 5 + host.byteLength + 2);
    req.set([5, 1, 0, 5, 1, 0, 3, host.byteLength]);
    req.set(host, 8);
    req[8 + host.byteLength] = o.target.port >> 8;
    req[9 + host.byteLength] = o.target.port & 255;
    await writeAll(conn, req);
    await writeAll(conn, new TextEncoder().encode(`download ${o.bytes}\n`));
    // Nothing more to send: half-close, so the server need not wait for our side to end.
    if (o.halfClose ?? true) await conn.closeWrite();
    const buf = new Uint8Array(64 * 1024);
    // The method reply (2 bytes) and the CONNECT reply (4 + address + 2) come before the payload.
    const head: number[] = [];
    let headLen = 0;
    let got = 0;
    const hash = createHash("sha256");
    // Bounded: each read consumes at least one byte or ends the loop.
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      let chunk = buf.subarray(0, n);
      while (headLen === 0 || head.length < headLen) {
        if (chunk.byteLength === 0) break;
        head.push(chunk[0]);
        chunk = chunk.subarray(1);
        if (head.length === 6) {
          if (head[0] !== 5 || head[1] !== 0) throw new Error(`SOCKS method reply ${head[1]}`);
          if (head[3] !== 0) throw new Error(`SOCKS reply REP=${head[3]}`);
          if (head[5] === 1) headLen = 2 + 4 + 4 + 2;
          else if (head[5] === 4) headLen = 2 + 4 + 16 + 2;
        } else if (head.length === 7 && head[5] === 3) headLen = 2 + 4 + 1 + head[6] + 2;
      }
      got += chunk.byteLength;
      hash.update(chunk);
      if (got > o.bytes) throw new Error(`more than ${o.bytes} bytes`);
      // Done once all N bytes are in, as an HTTP client with a Content-Length is: a client
      // that holds the EOF back (v2ray 4.34's, ~1 s) is not charged for it.
      if (got === o.bytes) {
        dataMs = performance.now() - t0;
        break;
      }
    }
    if (got !== o.bytes) throw new Error(`EOF after ${got} of ${o.bytes} bytes`);
    if (hash.digest("hex") !== expectedHash(o.bytes)) throw new Error("sha256 mismatch");
    return { ok: true, dataMs };
  } catch (err) {
    return { ok: false, error: timedOut ? "timed out" : (err as Error).message ?? String(err) };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
}

export interface SequenceOptions extends DownloadOptions {
  count: number;
  /** The pause after each request. */
  intervalMs: number;
  /** Called before request i (0-based) starts: the fault schedule. */
  before?: (i: number) => Promise<void> | void;
}

/** `count` requests one after another, `intervalMs` apart; the results in order. */
export async function sequence(o: SequenceOptions): Promise<RequestResult[]> {
  const results: RequestResult[] = [];
  const t0 = performance.now();
  for (let i = 0; i < o.count; i++) {
    await o.before?.(i);
    const at = performance.now() - t0;
    const r = await download(o);
    results.push({ ...r, at, ms: performance.now() - t0 - at });
    await new Promise((resolve) => setTimeout(resolve, o.intervalMs));
  }
  return results;
}

/** Success share and the longest wait of a run, for reports. */
export function summarize(results: RequestResult[]): {
  ok: number;
  total: number;
  rate: number;
  maxMsAfterFirstFailure: number;
  maxDataMsAfterFirstFailure: number;
} {
  const ok = results.filter((r) => r.ok).length;
  const first = results.findIndex((r) => !r.ok);
  const after = first < 0 ? [] : results.slice(first + 1);
  return {
    ok,
    total: results.length,
    rate: ok / results.length,
    maxMsAfterFirstFailure: Math.round(Math.max(0, ...after.map((r) => r.ms))),
    maxDataMsAfterFirstFailure: Math.round(
      Math.max(0, ...after.map((r) => r.dataMs ?? r.ms)),
    ),
  };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}
