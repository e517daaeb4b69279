import assert from "node:assert/strict";
import {
  AbuseLimit,
  MAX_QUEUED_URGENT,
  RESET_BURST,
  RESET_PER_SECOND,
} from "../../lib/h2/abuse_limit.ts";

/** A clock the test moves by hand. */
function fakeClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** Spends until the budget says no (at most `max` times); returns how many were allowed. */
function spendAll(limit: AbuseLimit, max: number): number {
  for (let i = 0; i < max; i++) if (!limit.spend()) return i;
  return max;
}

Deno.test("AbuseLimit.spend() allows a burst of exactly `burst` events, then refuses", () => {
  const clock = fakeClock();
  const limit = new AbuseLimit({ burst: 5, perSecond: 1, now: clock.now });
  assert.equal(limit.remaining, 5);
  assert.equal(spendAll(limit, 100), 5);
  assert.equal(limit.spend(), false);
  assert.equal(limit.remaining, 0);
});

Deno.test("AbuseLimit.spend() refills at perSecond, never past burst", () => {
  const clock = fakeClock();
  const limit = new AbuseLimit({ burst: 10, perSecond: 100, now: clock.now });
  assert.equal(spendAll(limit, 100), 10);
  clock.advance(50); // 100/s for 50 ms: 5 events
  assert.equal(spendAll(limit, 100), 5);
  clock.advance(9); // 0.9 of an event: not yet one
  assert.equal(limit.spend(), false);
  clock.advance(1);
  assert.equal(limit.spend(), true);
  clock.advance(60_000); // a long quiet spell refills to burst, not to 6000
  assert.equal(limit.remaining, 10);
});

Deno.test("AbuseLimit.spend() never refuses events spaced at the sustained rate", () => {
  const clock = fakeClock();
  const limit = new AbuseLimit({ burst: 3, perSecond: 200, now: clock.now });
  for (let i = 0; i < 10_000; i++) {
    assert.equal(limit.spend(), true, `event ${i}`);
    clock.advance(5); // 200 per second
  }
});

Deno.test("AbuseLimit.spend() refuses a sustained rate above perSecond once the burst is used", () => {
  const clock = fakeClock();
  const limit = new AbuseLimit({ burst: 100, perSecond: 200, now: clock.now });
  let allowed = 0;
  for (let i = 0; i < 1000; i++) {
    if (limit.spend()) allowed++;
    clock.advance(1); // 1000 per second for one second
  }
  // The burst plus what one second refills (200), give or take the last partial token.
  assert.ok(allowed >= 299 && allowed <= 300, `allowed ${allowed}`);
});

Deno.test("AbuseLimit: a clock stepping back refills nothing", () => {
  const clock = fakeClock(10_000);
  const limit = new AbuseLimit({ burst: 2, perSecond: 1000, now: clock.now });
  assert.equal(spendAll(limit, 10), 2);
  clock.advance(-5_000);
  assert.equal(limit.spend(), false);
  clock.advance(1); // forward from the new reading
  assert.equal(limit.spend(), true);
});

Deno.test("AbuseLimit rejects a burst below 1 or a negative rate", () => {
  assert.throws(() => new AbuseLimit({ burst: 0, perSecond: 1 }), RangeError);
  assert.throws(() => new AbuseLimit({ burst: NaN, perSecond: 1 }), RangeError);
  assert.throws(() => new AbuseLimit({ burst: 1, perSecond: -1 }), RangeError);
  // perSecond 0: a fixed allowance for the connection's life.
  const limit = new AbuseLimit({ burst: 1, perSecond: 0 });
  assert.equal(limit.spend(), true);
  assert.equal(limit.spend(), false);
});

Deno.test("AbuseLimit defaults: the reset budget allows bursts of 1000 and a few hundred per second", () => {
  assert.equal(RESET_BURST, 1000);
  assert.ok(RESET_PER_SECOND >= 100 && RESET_PER_SECOND <= 500);
  assert.ok(MAX_QUEUED_URGENT >= 1000);
});
