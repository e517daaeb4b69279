import assert from "node:assert/strict";
import { UdpFlow, UdpFlowTable } from "../../lib/inbound/udp_flow.ts";
import { FakeOutbound, testContext } from "../support/fake_outbound.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A table whose flows go to `outbound`; `closed` resolves with each flow as it ends. */
function flows(outbound: FakeOutbound, max: number, connIdle = 10_000) {
  const ctx = testContext(outbound, { policy: { connIdle } });
  const table = new UdpFlowTable(max);
  const ended: UdpFlow[] = [];
  let wake: (() => void) | undefined;
  const replies: string[] = [];
  const open = (key: string) =>
    table.flow(key, (onClose) =>
      new UdpFlow({
        ctx,
        route: {
          destination: { network: "udp", host: key, port: 53 },
          inboundTag: "test-in",
          source: { host: "127.0.0.1", port: 40000 },
        },
        onReply: (p) => replies.push(dec.decode(p)),
        onClose: (flow) => {
          onClose(flow);
          ended.push(flow);
          wake?.();
        },
      }));
  /** Waits (bounded) until `n` flows have ended. */
  const endedCount = async (n: number) => {
    for (let i = 0; i < 100 && ended.length < n; i++) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, 100);
      });
      clearTimeout(timer);
    }
    assert.equal(ended.length, n, `${ended.length} flows ended, want ${n}`);
  };
  return { table, open, ended, endedCount, replies };
}

Deno.test("UdpFlow carries datagrams both ways over one outbound and counts them", async () => {
  const outbound = new FakeOutbound();
  const t = flows(outbound, 8);
  try {
    const flow = t.open("a");
    // Sent before the outbound is open: held, then written in order.
    flow.send(enc.encode("q1"));
    flow.send(enc.encode("q2"));
    const { dest, peer } = await outbound.next();
    assert.deepEqual(dest, { network: "udp", host: "a", port: 53 });
    const r = peer.readable.getReader();
    assert.equal(dec.decode((await r.read()).value), "q1");
    assert.equal(dec.decode((await r.read()).value), "q2");
    const w = peer.writable.getWriter();
    await w.write(enc.encode("answer"));
    assert.equal(t.open("a"), flow, "the same key reuses the live flow");
    assert.equal(outbound.opened.length, 1);
    // The outbound ends: the flow closes and the table forgets it.
    await w.close();
    await t.endedCount(1);
    assert.deepEqual(t.replies, ["answer"]);
    assert.equal(flow.up, 4);
    assert.equal(flow.down, 6);
    assert.equal(t.table.size, 0);
    r.releaseLock();
  } finally {
    t.table.closeAll();
    await outbound.close();
  }
});

Deno.test("UdpFlowTable: a datagram after the flow's outbound ended opens a new outbound", async () => {
  const outbound = new FakeOutbound();
  const t = flows(outbound, 8);
  try {
    t.open("dns").send(enc.encode("first"));
    const one = await outbound.next();
    // The server side ends the stream (its own idle timeout, a restart).
    one.peer.close();
    await t.endedCount(1);
    t.open("dns").send(enc.encode("second"));
    const two = await outbound.next();
    assert.equal(outbound.opened.length, 2);
    const r = two.peer.readable.getReader();
    assert.equal(dec.decode((await r.read()).value), "second");
    r.releaseLock();
  } finally {
    t.table.closeAll();
    await outbound.close();
  }
});

Deno.test("UdpFlow closes its outbound after connIdle without datagrams", async () => {
  const outbound = new FakeOutbound();
  const t = flows(outbound, 8, 50);
  try {
    const flow = t.open("quiet");
    flow.send(enc.encode("x"));
    const { peer } = await outbound.next();
    const r = peer.readable.getReader();
    assert.equal(dec.decode((await r.read()).value), "x");
    await t.endedCount(1);
    assert.equal(flow.closed, true);
    // The outbound saw the end of its stream.
    const end = await r.read().then((x) => x.done, () => true);
    assert.equal(end, true);
    assert.equal(t.table.size, 0);
  } finally {
    t.table.closeAll();
    await outbound.close();
  }
});

Deno.test("UdpFlowTable evicts the least recently used flow beyond its size", async () => {
  const outbound = new FakeOutbound();
  const t = flows(outbound, 2);
  try {
    const a = t.open("a");
    const b = t.open("b");
    t.open("a"); // a is now the most recent
    const c = t.open("c");
    await t.endedCount(1);
    assert.equal(t.ended[0], b);
    assert.equal(a.closed, false);
    assert.equal(c.closed, false);
    assert.equal(t.table.size, 2);
  } finally {
    t.table.closeAll();
    await outbound.close();
  }
});

Deno.test("UdpFlow: a failed outbound closes the flow with the error and drops its datagrams", async () => {
  const outbound = new FakeOutbound();
  outbound.fail = new Error("no route");
  const t = flows(outbound, 8);
  try {
    const flow = t.open("down");
    flow.send(enc.encode("lost"));
    await t.endedCount(1);
    assert.match(flow.error ?? "", /no route/);
    assert.equal(flow.up, 0);
    assert.equal(t.table.size, 0);
  } finally {
    t.table.closeAll();
    await outbound.close();
  }
});
