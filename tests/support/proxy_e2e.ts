/**
 * Helpers for end-to-end proxy tests: a local HTTP target (Deno.serve), curl runs, and a started
 * inbound server over the freedom outbound.
 */
import { InboundServer } from "../../lib/inbound/server.ts";
import type { Policy } from "../../lib/dispatch/policy.ts";
import type { InboundHandler } from "../../lib/inbound/inbound.ts";
import { dispatcherFor } from "./fake_outbound.ts";
import { Logger } from "../../lib/log.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import type { Outbound } from "../../lib/outbound/outbound.ts";

export const TEST_POLICY: Policy = {
  handshake: 5_000,
  connIdle: 30_000,
  uplinkOnly: 5_000,
  downlinkOnly: 5_000,
};

/** Deterministic bytes of any length: byte i is (i * 31 + i >> 8) & 0xff. */
export function bodyOf(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

export async function sha256(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * An HTTP target: `GET /bytes/N` → N deterministic bytes; `POST /sha256` → hex digest of the
 * body; `GET /echo-headers` → the request headers as JSON; `GET /chunked/N` → N bytes, chunked.
 */
export function startTarget(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const bytes = /^\/(bytes|chunked)\/(\d+)$/.exec(url.pathname);
    if (bytes) {
      const body = bodyOf(Number(bytes[2]));
      if (bytes[1] === "bytes") return new Response(body);
      // A stream of unknown length is sent chunked.
      return new Response(
        ReadableStream.from([body.subarray(0, body.length >> 1), body.subarray(body.length >> 1)]),
      );
    }
    if (url.pathname === "/sha256") {
      return new Response(await sha256(new Uint8Array(await req.arrayBuffer())));
    }
    if (url.pathname === "/echo-headers") {
      return Response.json({ path: url.pathname + url.search, headers: [...req.headers] });
    }
    return new Response("not found", { status: 404 });
  });
}

export interface CurlResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

export async function curl(args: string[], stdin?: Uint8Array): Promise<CurlResult> {
  const cmd = new Deno.Command("/usr/bin/curl", {
    args: ["--silent", "--show-error", "--max-time", "30", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: stdin ? "piped" : "null",
    clearEnv: true,
  });
  const child = cmd.spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/**
 * An inbound server on 127.0.0.1:0 in front of `outbound` (freedom by default), started as the app
 * starts it (`InboundServer.listen()`: node sockets a relay can reset).
 */
export function startInbound(
  handler: InboundHandler,
  options: { outbound?: Outbound; policy?: Partial<Policy>; logger?: Logger } = {},
): Promise<InboundServer> {
  const logger = options.logger ?? Logger.silent();
  return InboundServer.listen({
    tag: "test-in",
    port: 0,
    handler,
    dispatcher: dispatcherFor(options.outbound ?? new FreedomOutbound(), logger),
    policy: { ...TEST_POLICY, ...options.policy },
    logger,
  });
}
