import { equal } from "node:assert/strict";
import { LeastPingStrategy } from "../../lib/routing/least_ping_strategy.ts";

function source(table: Record<string, { alive: boolean; delay?: number }>) {
  return {
    status: (tag: string) =>
      table[tag] ? { alive: table[tag].alive, delay: table[tag].delay } : undefined,
  };
}

Deno.test("LeastPingStrategy.pick() takes the alive outbound with the smallest delay", () => {
  const s = new LeastPingStrategy(source({
    a: { alive: true, delay: 120 },
    b: { alive: false, delay: 5 },
    c: { alive: true, delay: 40 },
  }));
  equal(s.pick(["a", "b", "c"]), "c");
});

Deno.test("LeastPingStrategy.pick() puts unmeasured outbounds after measured ones", () => {
  const s = new LeastPingStrategy(source({ a: { alive: true }, b: { alive: true, delay: 300 } }));
  equal(s.pick(["a", "b"]), "b");
  equal(s.pick(["a"]), "a");
});

Deno.test("LeastPingStrategy.pick() falls back to the first candidate when none is alive", () => {
  const s = new LeastPingStrategy(source({ a: { alive: false }, b: { alive: false } }));
  equal(s.pick(["a", "b"]), "a");
});
