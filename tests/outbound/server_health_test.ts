import { deepStrictEqual as assertEquals, equal, ok, throws } from "node:assert/strict";
import {
  DEFAULT_RACE_DELAY_MS,
  MAX_RACE_DELAY_MS,
  MIN_RACE_DELAY_MS,
  ServerHealth,
} from "../../lib/outbound/server_health.ts";

function clocked(count: number) {
  const clock = { t: 1000 };
  const health = new ServerHealth(count, { now: () => clock.t });
  return { clock, health };
}

Deno.test("ServerHealth.pick() goes round-robin while every server is up", () => {
  const { health } = clocked(3);
  assertEquals([0, 1, 2, 3, 4, 5].map(() => health.pick()), [0, 1, 2, 0, 1, 2]);
});

Deno.test("ServerHealth.pick() skips a down server while any other is up", () => {
  const { health } = clocked(3);
  health.failed(1, new Error("connect refused"));
  assertEquals([0, 1, 2, 3].map(() => health.pick()), [0, 2, 0, 2]);
  const s = health.state(1);
  equal(s.up, false);
  equal(s.failures, 1);
  equal(s.lastError, "connect refused");
});

Deno.test("ServerHealth.failed() doubles the back-off from 1 s up to 60 s", () => {
  const { clock, health } = clocked(2);
  const backoffs: number[] = [];
  for (let k = 0; k < 9; k++) {
    health.failed(0);
    backoffs.push(health.state(0).retryAt - clock.t);
  }
  assertEquals(backoffs, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
});

Deno.test("ServerHealth.pick() gives a down server a trial once its back-off ran out", () => {
  const { clock, health } = clocked(2);
  health.failed(0);
  equal(health.pick(), 1);
  equal(health.pick(), 1);
  clock.t += 999;
  equal(health.available(0), false);
  clock.t += 1;
  equal(health.available(0), true);
  // One trial for server 0; while it runs, the others get the requests.
  assertEquals([health.pick(), health.pick(), health.pick()], [0, 1, 1]);
  // It failed its trial: down again for 2 s.
  health.failed(0);
  equal(health.state(0).retryAt - clock.t, 2000);
});

Deno.test("ServerHealth.succeeded() marks a server up and resets its back-off", () => {
  const { clock, health } = clocked(2);
  health.failed(0);
  health.failed(0);
  health.succeeded(0);
  assertEquals(health.state(0), {
    up: true,
    failures: 0,
    retryAt: 0,
    srtt: undefined,
    lastError: undefined,
  });
  health.failed(0);
  equal(health.state(0).retryAt - clock.t, 1000);
});

Deno.test("ServerHealth.pick() picks the server back first when every server is down", () => {
  const { clock, health } = clocked(3);
  health.failed(0);
  health.failed(0); // back in 2 s
  clock.t += 100;
  health.failed(1); // back in 1 s from now: first
  health.failed(2);
  health.failed(2);
  health.failed(2); // back in 4 s
  equal(health.pick(), 1);
  equal(health.pick(), 1);
});

Deno.test("ServerHealth.pick() never returns a server the request already tried", () => {
  const { health } = clocked(3);
  health.failed(2);
  equal(health.pick(new Set([0])), 1);
  equal(health.pick(new Set([0, 1])), 2);
  equal(health.pick(new Set([0, 1, 2])), undefined);
});

Deno.test("ServerHealth.pick() with one server always returns it, down or not", () => {
  const { health } = clocked(1);
  health.failed(0);
  health.failed(0);
  equal(health.pick(), 0);
  equal(health.pick(new Set()), 0);
});

Deno.test("ServerHealth.raceDelay() is 250 ms before any handshake was measured", () => {
  const { health } = clocked(2);
  equal(health.raceDelay(0), DEFAULT_RACE_DELAY_MS);
});

Deno.test("ServerHealth.raceDelay() follows SRTT + 4·RTTVAR, clamped to 100 ms-2 s", () => {
  const { health } = clocked(3);
  health.succeeded(0, 200); // SRTT 200, RTTVAR 100 → 600
  equal(health.raceDelay(0), 600);
  health.succeeded(0, 200); // RTTVAR 75, SRTT 200 → 500
  equal(health.raceDelay(0), 500);
  health.succeeded(1, 5); // 5 + 10 → clamped up
  equal(health.raceDelay(1), MIN_RACE_DELAY_MS);
  health.succeeded(2, 5000);
  equal(health.raceDelay(2), MAX_RACE_DELAY_MS);
});

Deno.test("ServerHealth.raceDelay() borrows the other servers' mean for an unmeasured one", () => {
  const { health } = clocked(3);
  health.succeeded(0, 100); // 300
  health.succeeded(1, 300); // 900
  equal(health.raceDelay(2), 600);
});

Deno.test("ServerHealth constructor refuses no servers and a bad back-off", () => {
  throws(() => new ServerHealth(0), RangeError);
  throws(() => new ServerHealth(2, { baseBackoffMs: 0 }), /back-off/);
  throws(() => new ServerHealth(2, { baseBackoffMs: 5000, maxBackoffMs: 1000 }), /back-off/);
  const h = new ServerHealth(2);
  throws(() => h.failed(2), /server index 2 out of range 0-1/);
  ok(h.available(0));
});

Deno.test("ServerHealth.pick() sends one request to a server on trial, the rest elsewhere", () => {
  const { clock, health } = clocked(2);
  health.failed(0);
  clock.t += 1000;
  equal(health.pick(), 0);
  equal(health.pick(), 1);
  equal(health.pick(), 1);
  health.succeeded(0, 10);
  assertEquals([health.pick(), health.pick()], [0, 1]);
});

Deno.test("ServerHealth.suspect() holds a server back for a while without counting a failure", () => {
  const { clock, health } = clocked(2);
  health.suspect(0, 1500);
  assertEquals([health.pick(), health.pick()], [1, 1]);
  equal(health.state(0).failures, 0);
  clock.t += 1500;
  assertEquals(new Set([health.pick(), health.pick()]), new Set([0, 1]));
  // An answer clears it at once.
  health.suspect(1, 5000);
  health.succeeded(1);
  equal(health.available(1), true);
});
