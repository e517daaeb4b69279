/**
 * A download the remote cuts short (an HTTP/2 stream reset before END_STREAM, a TCP reset) reaches
 * the local client as every byte received, then a TCP reset — never a clean EOF — and the access
 * log says it was cut short. Through InboundServer.listen(), as the app serves SOCKS and HTTP: on
 * `Deno.listen` (reset through libc) with --allow-ffi, and once more in a child `deno test`
 * without it, on the node:net fallback.
 */
import assert from "node:assert/strict";
import { ErrorCode, StreamError } from "../../lib/h2/errors.ts";
import { HttpProxyInbound } from "../../lib/inbound/http_proxy.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { SocksInbound } from "../../lib/inbound/socks.ts";
import { type AccessRecord, Logger } from "../../lib/log.ts";
import type { Destination } from "../../lib/net/destination.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import type { OpenOptions, Outbound } from "../../lib/outbound/outbound.ts";
import { dispatcherFor } from "../support/fake_outbound.ts";
import { TEST_POLICY } from "../support/proxy_e2e.ts";
import { socksConnect } from "../support/socks_client.ts";
import { readToEndOrError } from "../support/read_end.ts";

const TOTAL = 161_792;

/** Every connection yields TOTAL bytes in 4 KiB chunks, then fails with `cut`. */
class CuttingOutbound implements Outbound {
  readonly tag = "cutting";
  readonly #cut: () => Error;
  constructor(cut: () => Error) {
    this.#cut = cut;
  }
  open(_dest: Destination, _options?: OpenOptions): Promise<Duplex> {
    let sent = 0;
    const cut = this.#cut;
    const readable = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= TOTAL) return controller.error(cut());
        const n = Math.min(4096, TOTAL - sent);
        controller.enqueue(new Uint8Array(n).fill(sent / 4096 & 0xff));
        sent += n;
      },
    }, { highWaterMark: 0 });
    const writable = new WritableStream<Uint8Array>();
    return Promise.resolve({ readable, writable, close: () => {} });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function recordingLogger() {
  const logger = Logger.silent();
  const access: AccessRecord[] = [];
  const debug: string[] = [];
  logger.access = (r) => void access.push(r);
  logger.debug = (line) => void debug.push(line);
  return { logger, access, debug };
}

/** The listener InboundServer.listen() picks for plain TCP here: node:net only without FFI. */
const EXPECTED_LISTENER = Deno.permissions.querySync({ name: "ffi" }).state === "granted"
  ? /plain TCP on Deno\.listen/
  : /plain TCP on node:net, since FFI is not granted/;

const peerReset = () =>
  new StreamError(3, ErrorCode.NO_ERROR, "peer reset stream 3 (NO_ERROR)", { initiator: "peer" });

Deno.test("SocksInbound: a remote stream reset before its end reaches the client as every byte, then ECONNRESET; the access log says cut short", async () => {
  const { logger, access, debug } = recordingLogger();
  const server = await InboundServer.listen({
    tag: "socks-in",
    port: 0,
    handler: new SocksInbound({}),
    dispatcher: dispatcherFor(new CuttingOutbound(peerReset), logger),
    policy: TEST_POLICY,
    logger,
  });
  assert.match(debug.join("\n"), EXPECTED_LISTENER);
  try {
    const s = await socksConnect(server.port, 1, "example.com", 80);
    s.reader.releaseLock();
    s.writer.releaseLock();
    const r = await readToEndOrError(s.duplex.conn);
    s.duplex.close();
    assert.deepEqual(r, { bytes: TOTAL - s.carry.buf.byteLength, end: "ConnectionReset" });
  } finally {
    await server.close();
  }
  assert.equal(access.length, 1);
  assert.equal(access[0].result, "cut short: peer reset stream 3 (NO_ERROR)");
  assert.equal(access[0].down, TOTAL);
});

Deno.test("HttpProxyInbound: a CONNECT tunnel whose remote TCP resets reaches the client as every byte, then ECONNRESET", async () => {
  const { logger, access, debug } = recordingLogger();
  const server = await InboundServer.listen({
    tag: "http-in",
    port: 0,
    handler: new HttpProxyInbound({}),
    dispatcher: dispatcherFor(
      new CuttingOutbound(() => new Deno.errors.ConnectionReset("Connection reset by peer")),
      logger,
    ),
    policy: TEST_POLICY,
    logger,
  });
  assert.match(debug.join("\n"), EXPECTED_LISTENER);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(
      new TextEncoder().encode("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    );
    // The reply head, byte by byte so that no tunnel byte is read with it.
    let head = "";
    const one = new Uint8Array(1);
    for (let i = 0; i < 1024 && !head.endsWith("\r\n\r\n"); i++) {
      if ((await conn.read(one)) !== 1) break;
      head += String.fromCharCode(one[0]);
    }
    assert.match(head, /^HTTP\/1\.1 200/);
    const r = await readToEndOrError(conn);
    conn.close();
    assert.deepEqual(r, { bytes: TOTAL, end: "ConnectionReset" });
  } finally {
    await server.close();
  }
  assert.equal(access.length, 1);
  assert.match(access[0].result, /^cut short: Connection reset by peer/);
});

Deno.test("InboundServer.listen() without --allow-ffi serves plain TCP on node:net, whose cut-short streams end in a reset too", async () => {
  // The tests above once more, in a process that may not use FFI: they check the listener chosen.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--sanitize-ops",
      "--sanitize-resources",
      "--filter",
      "/^(SocksInbound|HttpProxyInbound): /",
      new URL(import.meta.url).pathname,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  assert.match(text, /ok \| 2 passed \| 0 failed/);
});
