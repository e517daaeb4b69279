import assert from "node:assert/strict";
import { DIAL_TIMEOUT_MS, Dispatcher } from "../../lib/dispatch/dispatcher.ts";
import type { RouteContext } from "../../lib/net/route_context.ts";
import type { Router } from "../../lib/dispatch/router.ts";
import { type AccessRecord, Logger } from "../../lib/log.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import type { OpenOptions, Outbound } from "../../lib/outbound/outbound.ts";
import { FakeOutbound, readAll, readN } from "../support/fake_outbound.ts";
import { TEST_POLICY } from "../support/proxy_e2e.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function recording(router: Router, dialTimeout?: number) {
  const logger = Logger.silent();
  const access: AccessRecord[] = [];
  logger.access = (r) => void access.push(r);
  return { dispatcher: new Dispatcher({ router, logger, dialTimeout }), access };
}

const route = (port: number, inboundTag = "in"): RouteContext => ({
  destination: { network: "tcp", host: "example.com", port },
  inboundTag,
  source: { host: "127.0.0.1", port: 40000 },
  user: "alice",
});

Deno.test("Dispatcher.connect() relays over the outbound the router picked and logs one line naming it", async () => {
  const first = new FakeOutbound("first");
  const second = new FakeOutbound("second");
  const seen: RouteContext[] = [];
  const { dispatcher, access } = recording({
    select: (ctx) => {
      seen.push(ctx);
      return ctx.destination.port === 443
        ? { outbound: second, rule: "rule 1: port 443" }
        : { outbound: first };
    },
  });
  const [client, inner] = duplexPair();
  let replied = false;
  const connecting = dispatcher.connect(inner, route(443), {
    policy: TEST_POLICY,
    signal: new AbortController().signal,
    onOpened: () => void (replied = true),
  });
  const { peer } = await second.next();
  const w = client.writable.getWriter();
  await w.write(enc.encode("ping"));
  await w.close();
  assert.equal(dec.decode(await readN(peer.readable.getReader(), 4)), "ping");
  const pw = peer.writable.getWriter();
  await pw.write(enc.encode("pong!"));
  await pw.close();
  assert.equal(dec.decode(await readAll(client.readable)), "pong!");
  const r = await connecting;
  assert.equal(replied, true);
  assert.deepEqual(r, { outbound: "second", result: "ok", up: 4, down: 5 });
  assert.equal(first.opened.length, 0);
  assert.deepEqual(seen, [route(443)]);
  assert.equal(access.length, 1);
  const { ms: _ms, ...line } = access[0];
  assert.deepEqual(line, {
    inbound: "in",
    source: "127.0.0.1:40000",
    destination: "tcp:example.com:443",
    outbound: "second",
    rule: "rule 1: port 443",
    result: "ok",
    up: 4,
    down: 5,
  });
  client.close();
  await first.close();
  await second.close();
});

Deno.test("Dispatcher.connect() leaves the client alone and returns the error when the dial fails", async () => {
  const outbound = new FakeOutbound();
  outbound.fail = new Deno.errors.ConnectionRefused("connection refused");
  const { dispatcher, access } = recording({ select: () => ({ outbound }) });
  const [client, inner] = duplexPair();
  const r = await dispatcher.connect(inner, route(80), {
    policy: TEST_POLICY,
    signal: new AbortController().signal,
    onOpened: () => assert.fail("no reply for a failed dial"),
  });
  assert.ok(r.error instanceof Deno.errors.ConnectionRefused);
  assert.equal(r.outbound, "fake");
  assert.equal(access.length, 1);
  assert.equal(access[0].outbound, "fake");
  assert.equal(access[0].rule, "default");
  assert.equal(access[0].result, "connection refused");
  // Still usable: the inbound sends its refusal on it.
  const w = inner.writable.getWriter();
  await w.write(enc.encode("no"));
  await w.close();
  assert.equal(dec.decode(await readAll(client.readable)), "no");
  client.close();
  inner.close();
});

Deno.test("Dispatcher.connect() reports a router that throws without an outbound", async () => {
  const { dispatcher, access } = recording({
    select: () => {
      throw new RangeError("no rule for example.com");
    },
  });
  const [client, inner] = duplexPair();
  const r = await dispatcher.connect(inner, route(80), {
    policy: TEST_POLICY,
    signal: new AbortController().signal,
  });
  assert.equal(r.outbound, "");
  assert.ok(r.error instanceof RangeError);
  assert.equal(access[0].outbound, "-");
  assert.equal(access[0].rule, "-");
  assert.equal(access[0].result, "no rule for example.com");
  client.close();
  inner.close();
});

Deno.test("Dispatcher.connect() gives up on an outbound that never opens after the dial timeout", async () => {
  let signal: AbortSignal | undefined;
  const hanging: Outbound = {
    tag: "hang",
    open: (_dest, options?: OpenOptions) => {
      signal = options?.signal;
      return new Promise<Duplex>(() => {});
    },
    close: () => Promise.resolve(),
  };
  const { dispatcher, access } = recording({ select: () => ({ outbound: hanging }) }, 20);
  const [client, inner] = duplexPair();
  const r = await dispatcher.connect(inner, route(80), {
    policy: TEST_POLICY,
    signal: new AbortController().signal,
  });
  assert.ok(r.error instanceof Deno.errors.TimedOut);
  assert.equal(signal?.aborted, true, "the outbound's dial was aborted");
  assert.match(access[0].result, /dial timed out after 20 ms/);
  assert.ok(DIAL_TIMEOUT_MS >= 16_000);
  client.close();
  inner.close();
});

Deno.test("Dispatcher.open() hands the route to the outbound and logs once, at finish(), with the counts", async () => {
  let given: OpenOptions | undefined;
  const [mine, theirs] = duplexPair();
  const outbound: Outbound = {
    tag: "direct",
    open: (_dest, options) => {
      given = options;
      return Promise.resolve(mine);
    },
    close: () => Promise.resolve(),
  };
  const { dispatcher, access } = recording({ select: () => ({ outbound }) });
  const d = await dispatcher.open(route(53), { signal: new AbortController().signal });
  assert.equal(d.outbound, "direct");
  assert.deepEqual(given?.route, route(53));
  assert.equal(access.length, 0);
  d.finish({ up: 7, down: 9 });
  d.finish({ up: 1, down: 1, result: "again" });
  assert.equal(access.length, 1);
  assert.deepEqual([access[0].up, access[0].down, access[0].result], [7, 9, "ok"]);
  // finish() closed it: the far end sees it gone.
  await assert.rejects(theirs.readable.getReader().read(), Deno.errors.ConnectionReset);
  theirs.close();
});
