/**
 * The `roundRobin` balancer strategy: candidates in turn, one per connection, skipping those the
 * observatory (when there is one) holds dead while any candidate is alive — with every candidate
 * dead it goes on in turn, since a probe can be wrong and a request may still get through.
 */
import type { BalancingStrategy } from "./balancer.ts";

/** What the strategies need to know about an outbound's health. */
export interface HealthSource {
  status(tag: string): { alive: boolean; delay: number | undefined } | undefined;
}

export class RoundRobinStrategy implements BalancingStrategy {
  readonly #health: HealthSource | undefined;
  #next = 0;

  constructor(health?: HealthSource) {
    this.#health = health;
  }

  pick(tags: readonly string[]): string {
    const n = tags.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      if (this.#health?.status(tags[i])?.alive === false) continue;
      this.#next = (i + 1) % n;
      return tags[i];
    }
    const tag = tags[this.#next % n];
    this.#next = (this.#next + 1) % n;
    return tag;
  }
}
