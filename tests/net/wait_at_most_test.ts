import assert from "node:assert/strict";
import { waitAtMost } from "../../lib/net/wait_at_most.ts";

Deno.test("waitAtMost() resolves true when the work settles in time, even by failing", async () => {
  assert.equal(await waitAtMost(Promise.resolve(1), 1000), true);
  assert.equal(await waitAtMost(Promise.reject(new Error("x")), 1000), true);
});

Deno.test("waitAtMost() resolves false after `ms` when the work is still pending, leaving no timer", async () => {
  const started = performance.now();
  assert.equal(await waitAtMost(new Promise(() => {}), 30), false);
  assert.ok(performance.now() - started >= 25);
  // The sanitizers fail this test if the timer outlived the call.
});
