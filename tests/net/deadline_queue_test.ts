import { deepStrictEqual as assertEquals, equal, ok, throws } from "node:assert/strict";
import { DeadlineQueue, Deadlines } from "../../lib/net/deadline_queue.ts";

/** Resolves once `n` callbacks ran (bounded by a safety timeout). */
function recorder(n: number) {
  const calls: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  const timer = setTimeout(resolve, 5_000);
  return {
    calls,
    done: promise.finally(() => clearTimeout(timer)),
    add(name: string) {
      return () => {
        calls.push(name);
        if (calls.length === n) resolve();
      };
    },
  };
}

Deno.test("DeadlineQueue calls each deadline once, in order, not before ms, skipping cancelled ones", async () => {
  const q = new DeadlineQueue(30);
  const r = recorder(2);
  const started = performance.now();
  q.add(r.add("a"));
  const b = q.add(r.add("b"));
  q.add(r.add("c"));
  b.cancel();
  b.cancel();
  equal(q.pending, 2);
  await r.done;
  ok(performance.now() - started >= 29, "not before its deadline");
  assertEquals(r.calls, ["a", "c"]);
  equal(q.pending, 0);
  equal(q.queued, 0);
});

Deno.test("DeadlineQueue stops its timer once every deadline is cancelled", () => {
  const q = new DeadlineQueue(60_000);
  const ds = Array.from({ length: 5 }, () => q.add(() => {}));
  for (const d of ds) d.cancel();
  // The ops sanitizer fails this test if a timer was left behind.
  equal(q.pending, 0);
  equal(q.queued, 0);
});

Deno.test("Deadlines with keepTimer leave the timer for the next deadline until closed", async () => {
  const d = new Deadlines({ keepTimer: true });
  const r = recorder(1);
  d.add(60_000, () => {}).cancel();
  // A later deadline of the same length rides the timer still running.
  d.add(60_000, () => {}).cancel();
  d.add(20, r.add("short"));
  await r.done;
  assertEquals(r.calls, ["short"]);
  let late = false;
  d.add(60_000, () => (late = true));
  // Closing stops every timer (the ops sanitizer checks); pending deadlines never fire.
  d.close();
  equal(late, false);
});

Deno.test("DeadlineQueue times a deadline added by a callback from its own start", async () => {
  const q = new DeadlineQueue(20);
  const r = recorder(3);
  const t0 = performance.now();
  let second = 0;
  q.add(() => {
    r.add("first")();
    q.add(() => {
      second = performance.now() - t0;
      r.add("second")();
    });
  });
  await new Promise((res) => setTimeout(res, 5));
  q.add(r.add("later"));
  await r.done;
  assertEquals(r.calls, ["first", "later", "second"]);
  ok(second >= 39, `the one added at ~20 ms fired at ${second.toFixed(1)} ms`);
});

Deno.test("DeadlineQueue drops cancelled deadlines once they outnumber the pending ones", () => {
  const q = new DeadlineQueue(60_000);
  const keep = q.add(() => {});
  for (let i = 0; i < 5000; i++) q.add(() => {}).cancel();
  const late = q.add(() => {});
  for (let i = 0; i < 3000; i++) q.add(() => {}).cancel();
  equal(q.pending, 2);
  ok(q.queued < 1100, `${q.queued} entries held for 2 pending deadlines`);
  keep.cancel();
  late.cancel();
  equal(q.queued, 0);
});

Deno.test("DeadlineQueue holds a deadline longer than a timer can wait instead of firing it", async () => {
  const q = new DeadlineQueue(2 ** 32 * 1000);
  let fired = false;
  const d = q.add(() => (fired = true));
  await new Promise((r) => setTimeout(r, 20));
  equal(fired, false);
  d.cancel();
});

Deno.test("new DeadlineQueue() refuses a negative or infinite length", () => {
  throws(() => new DeadlineQueue(-1), RangeError);
  throws(() => new DeadlineQueue(Infinity), RangeError);
});
