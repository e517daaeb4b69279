/**
 * Starts dray the way `dray run -c` does — JSON text → parseConfig → startApp — for end-to-end
 * tests of the whole client, plus small helpers those tests share.
 *
 * The config parser refuses port 0 (as "must be 1-65535"), so configs name ports that were free a
 * moment ago ({@link freePort}); if another process grabs one in between, startApp fails with
 * AddrInUse and the start is retried with new ports (a bounded number of times).
 */
import { ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { type App, startApp } from "../../lib/app.ts";
import { parseConfig } from "../../lib/config/parse.ts";
import type { Config } from "../../lib/config/types.ts";
import type { RunningInbound } from "../../lib/app.ts";
import { Logger } from "../../lib/log.ts";
import { freePort } from "./v2ray.ts";

export { freePort };

/** Starts before giving up when every attempt lost its ports to someone else. */
const START_ATTEMPTS = 5;

/** Absolute path of a file in tests/support/certs/. */
export function certPath(name: string): string {
  return decodeURIComponent(new URL(`./certs/${name}`, import.meta.url).pathname);
}

export interface StartedApp extends AsyncDisposable {
  app: App;
  config: Config;
  /** The config text that was parsed. */
  text: string;
  /** The running inbound with this tag (throws when there is none). */
  inbound(tag: string): RunningInbound;
}

/**
 * Parses the JSON built by `make` and starts it. `make` is called again (for fresh ports) when a
 * port it named was taken meanwhile. Disposing closes the app without a grace period.
 */
export async function startAppFromJson(
  make: () => unknown,
  opts: { logger?: Logger } = {},
): Promise<StartedApp> {
  for (let attempt = 1;; attempt++) {
    const text = JSON.stringify(make(), null, 2);
    const config = parseConfig(text);
    let app: App;
    try {
      app = await startApp(config, { logger: opts.logger ?? Logger.silent() });
    } catch (err) {
      if (attempt < START_ATTEMPTS && isAddrInUse(err)) continue;
      throw err;
    }
    return {
      app,
      config,
      text,
      inbound(tag: string): RunningInbound {
        const s = app.inbounds.find((i) => i.tag === tag);
        if (!s) throw new Error(`no inbound "${tag}" in ${app.inbounds.map((i) => i.tag)}`);
        return s;
      },
      async [Symbol.asyncDispose]() {
        await app.close(0);
      },
    };
  }
}

function isAddrInUse(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof Deno.errors.AddrInUse) return true;
  }
  return false;
}

/** Reads exactly `n` bytes and returns their sha256 hex; fails on an early EOF or extra bytes. */
export async function readHashed(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
  carry: { buf: Uint8Array } = { buf: new Uint8Array(0) },
): Promise<string> {
  const h = createHash("sha256");
  let have = Math.min(carry.buf.byteLength, n);
  h.update(carry.buf.subarray(0, have));
  carry.buf = carry.buf.slice(have);
  while (have < n) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`EOF after ${have} of ${n} bytes`);
    const take = Math.min(value.byteLength, n - have);
    h.update(value.subarray(0, take));
    if (take < value.byteLength) carry.buf = value.slice(take);
    have += take;
  }
  return h.digest("hex");
}

export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Rejects with `what` when `p` has not settled within `ms` — a safety net, never a wait. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asserts nobody serves `port`: the connection is refused, or (when the closing listener still
 * completed the TCP handshake) reset or ended without a SOCKS reply.
 */
export async function assertNotServed(port: number): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (err) {
    ok(
      err instanceof Deno.errors.ConnectionRefused || err instanceof Deno.errors.ConnectionReset,
      `connect failed with ${err}`,
    );
    return;
  }
  const d = new ConnDuplex(conn);
  try {
    const w = d.writable.getWriter();
    await w.write(Uint8Array.of(5, 1, 0)).catch(() => {});
    const r = await within(d.readable.getReader().read(), 10_000, "a closed listener's connection")
      .catch((err) => {
        if (err instanceof Deno.errors.ConnectionReset) return { done: true };
        throw err;
      });
    if (!r.done) throw new Error("a connection made while closing got a SOCKS reply");
  } finally {
    d.close();
  }
}
