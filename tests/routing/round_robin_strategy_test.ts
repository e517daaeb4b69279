import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { RoundRobinStrategy } from "../../lib/routing/round_robin_strategy.ts";

const health = (dead: string[]) => ({
  status: (tag: string) => ({ alive: !dead.includes(tag), delay: undefined }),
});

Deno.test("RoundRobinStrategy.pick() takes the candidates in turn", () => {
  const s = new RoundRobinStrategy();
  assertEquals([1, 2, 3, 4].map(() => s.pick(["a", "b", "c"])), ["a", "b", "c", "a"]);
});

Deno.test("RoundRobinStrategy.pick() skips outbounds the observatory holds dead", () => {
  const dead: string[] = ["b"];
  const s = new RoundRobinStrategy(health(dead));
  assertEquals([1, 2, 3, 4].map(() => s.pick(["a", "b", "c"])), ["a", "c", "a", "c"]);
  // All dead: still in turn, a probe may be wrong.
  dead.push("a", "c");
  assertEquals(new Set([1, 2, 3].map(() => s.pick(["a", "b", "c"]))), new Set(["a", "b", "c"]));
});
