import assert from "node:assert/strict";
import { AcceptQueue } from "../../lib/net/accept_queue.ts";

/** A stand-in connection that records whether it was closed. */
function conn(name: string) {
  const c = { name, closed: false, duplex: { close: () => (c.closed = true) } };
  return c;
}

Deno.test("AcceptQueue.offer() hands a connection to the oldest take() waiting, else keeps it in order", async () => {
  const q = new AcceptQueue<ReturnType<typeof conn>>();
  const first = q.take();
  const second = q.take();
  assert.equal(q.offer(conn("a")), true);
  assert.equal(q.offer(conn("b")), true);
  assert.equal((await first).name, "a");
  assert.equal((await second).name, "b");
  assert.equal(q.offer(conn("c")), false);
  assert.equal(q.offer(conn("d")), false);
  assert.equal(q.length, 2);
  assert.equal((await q.take()).name, "c");
  assert.equal((await q.take()).name, "d");
  q.close();
});

Deno.test("AcceptQueue.remove() takes out a connection still waiting, and only once", async () => {
  const q = new AcceptQueue<ReturnType<typeof conn>>();
  const a = conn("a");
  const b = conn("b");
  q.offer(a);
  q.offer(b);
  assert.equal(q.remove(a), true);
  assert.equal(q.remove(a), false);
  assert.equal((await q.take()).name, "b");
  q.close();
});

Deno.test("AcceptQueue.close() rejects waiting takes with BadResource and closes what nobody took", async () => {
  const q = new AcceptQueue<ReturnType<typeof conn>>();
  const waiting = q.take();
  q.close();
  await assert.rejects(waiting, Deno.errors.BadResource);
  const q2 = new AcceptQueue<ReturnType<typeof conn>>();
  const left = conn("left");
  q2.offer(left);
  q2.close();
  assert.equal(left.closed, true);
  await assert.rejects(q2.take(), Deno.errors.BadResource);
  // Offered after close: closed at once, never queued.
  const late = conn("late");
  q2.offer(late);
  assert.equal(late.closed, true);
  assert.equal(q2.length, 0);
});
