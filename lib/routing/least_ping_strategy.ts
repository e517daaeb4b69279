/**
 * The `leastPing` balancer strategy (Xray): the alive candidate with the smallest observed delay.
 * Candidates not measured yet come after measured ones; with none alive it falls back to the
 * first candidate (Xray picks none and takes the default route; dray still tries one).
 */
import type { BalancingStrategy } from "./balancer.ts";
import type { HealthSource } from "./round_robin_strategy.ts";

export class LeastPingStrategy implements BalancingStrategy {
  readonly #health: HealthSource;

  constructor(health: HealthSource) {
    this.#health = health;
  }

  pick(tags: readonly string[]): string {
    let best: string | undefined;
    let bestDelay = Infinity;
    for (const tag of tags) {
      const s = this.#health.status(tag);
      if (s?.alive === false) continue;
      const delay = s?.delay ?? Number.MAX_VALUE;
      if (best === undefined || delay < bestDelay) {
        best = tag;
        bestDelay = delay;
      }
    }
    return best ?? tags[0];
  }
}
