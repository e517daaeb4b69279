import { dispatcherFor } from "../support/fake_outbound.ts";
import assert from "node:assert/strict";
import { InboundServer, isLoopback } from "../../lib/inbound/server.ts";
import type { InboundContext, InboundResult } from "../../lib/inbound/inbound.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { type AccessRecord, Logger } from "../../lib/log.ts";
import { FakeOutbound, readAll } from "../support/fake_outbound.ts";
import { TEST_POLICY } from "../support/proxy_e2e.ts";

function recordingLogger() {
  const logger = Logger.silent();
  const access: AccessRecord[] = [];
  const warnings: string[] = [];
  logger.access = (r) => void access.push(r);
  logger.warn = (m) => void warnings.push(m);
  return { logger, access, warnings };
}

/** Answers "hi", then waits for the client's EOF or the shutdown signal. */
const greeter = {
  async handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    const w = conn.writable.getWriter();
    await w.write(new TextEncoder().encode("hi"));
    const aborted = new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r()));
    await Promise.race([readAll(conn.readable), aborted]);
    return {
      destination: "tcp:x:1",
      result: ctx.signal.aborted ? "shutdown" : "ok",
      up: 0,
      down: 2,
    };
  },
};

Deno.test("InboundServer writes one access line per connection", async () => {
  const { logger, access } = recordingLogger();
  const server = new InboundServer({
    tag: "in",
    port: 0,
    handler: greeter,
    dispatcher: dispatcherFor(new FakeOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  for (let i = 0; i < 3; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const buf = new Uint8Array(2);
    assert.equal(await c.read(buf), 2);
    await c.closeWrite();
    assert.equal(await c.read(buf), null);
    c.close();
  }
  await server.close();
  assert.equal(access.length, 3);
  assert.deepEqual(
    {
      inbound: access[0].inbound,
      destination: access[0].destination,
      outbound: access[0].outbound,
    },
    // The handler asked the dispatcher for nothing: the server writes the line, with no outbound.
    { inbound: "in", destination: "tcp:x:1", outbound: "-" },
  );
  assert.match(access[0].source, /^127\.0\.0\.1:\d+$/);
});

Deno.test("InboundServer keeps a throwing handler inside its connection", async () => {
  const { logger, access } = recordingLogger();
  logger.error = () => {};
  let calls = 0;
  const server = new InboundServer({
    tag: "in",
    port: 0,
    handler: {
      handle: () => {
        calls++;
        return Promise.reject(new TypeError("bug"));
      },
    },
    dispatcher: dispatcherFor(new FakeOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  for (let i = 0; i < 2; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    assert.equal(await c.read(new Uint8Array(1)), null);
    c.close();
  }
  await server.close();
  assert.equal(calls, 2);
  assert.deepEqual(access.map((a) => a.result), ["bug", "bug"]);
});

Deno.test("InboundServer.close(grace) lets connections finish, then closes the rest", async () => {
  const { logger, access } = recordingLogger();
  const server = new InboundServer({
    tag: "in",
    port: 0,
    handler: greeter,
    dispatcher: dispatcherFor(new FakeOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  const quick = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await quick.read(new Uint8Array(2));
  await stuck.read(new Uint8Array(2));
  const closing = server.close(100);
  // New connections are refused once closing has begun.
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.port }));
  await quick.closeWrite();
  await closing;
  assert.deepEqual(access.map((a) => a.result).sort(), ["ok", "shutdown"]);
  assert.equal(await stuck.read(new Uint8Array(1)), null);
  quick.close();
  stuck.close();
});

Deno.test("isLoopback() tells loopback addresses; InboundServer on loopback does not warn", () => {
  assert.equal(isLoopback("127.0.0.1"), true);
  assert.equal(isLoopback("::1"), true);
  assert.equal(isLoopback("0.0.0.0"), false);
  assert.equal(isLoopback("192.168.1.1"), false);
  const { logger, warnings } = recordingLogger();
  const server = new InboundServer({
    tag: "in",
    port: 0,
    handler: greeter,
    dispatcher: dispatcherFor(new FakeOutbound(), logger),
    policy: TEST_POLICY,
    logger,
  });
  assert.equal(warnings.length, 0);
  return server.close();
});
