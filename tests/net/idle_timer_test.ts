import { equal, ok } from "node:assert/strict";
import { Deadlines } from "../../lib/net/deadline_queue.ts";
import { IdleTimer } from "../../lib/net/idle_timer.ts";

function fired(): { promise: Promise<number>; onFire: () => void } {
  const t0 = performance.now();
  const { promise, resolve } = Promise.withResolvers<number>();
  return { promise, onFire: () => resolve(performance.now() - t0) };
}

Deno.test("IdleTimer fires once its limit passes without touch()", async () => {
  const f = fired();
  new IdleTimer(30, f.onFire);
  ok((await f.promise) >= 29);
});

Deno.test("IdleTimer keeps going while touched between its checks, then fires once idle", async () => {
  const f = fired();
  const timer = new IdleTimer(80, f.onFire);
  let done = false;
  f.promise.then(() => (done = true));
  // Activity for ~200 ms (bounded): two checks pass, each seeing activity.
  for (let i = 0; i < 20; i++) {
    timer.touch();
    await new Promise((r) => setTimeout(r, 10));
    if (done) break;
  }
  equal(done, false, "fired while active");
  ok((await f.promise) >= 200);
});

Deno.test("IdleTimer.set() restarts with a new limit; stop() cancels; 0 and Infinity never fire", async () => {
  const f = fired();
  const timer = new IdleTimer(60_000, f.onFire);
  timer.set(20);
  ok((await f.promise) >= 19);
  let n = 0;
  const stopped = new IdleTimer(10, () => n++);
  stopped.stop();
  new IdleTimer(0, () => n++);
  new IdleTimer(Infinity, () => n++).set(-1);
  await new Promise((r) => setTimeout(r, 30));
  equal(n, 0);
});

Deno.test("IdleTimer with shared deadlines fires once idle and keeps going while touched", async () => {
  const deadlines = new Deadlines();
  const idle = fired();
  new IdleTimer(80, idle.onFire, deadlines);
  const busy = fired();
  const active = new IdleTimer(80, busy.onFire, deadlines);
  let done = false;
  busy.promise.then(() => (done = true));
  for (let i = 0; i < 20 && !done; i++) {
    active.touch();
    await new Promise((r) => setTimeout(r, 10));
  }
  ok((await idle.promise) >= 79);
  equal(done, false, "fired while active");
  ok((await busy.promise) >= 200);
});
