/**
 * A `routing.balancers[]` entry: the outbounds whose tags start with one of its selectors
 * (v2ray 4.34 `strings.HasPrefix`), and a strategy that picks one per connection. 4.34 has only
 * the uniform random pick; health-aware strategies implement BalancingStrategy and take the same
 * candidate list.
 */

export interface BalancingStrategy {
  /** One of `tags` (never empty). */
  pick(tags: readonly string[]): string;
}

/** 4.34's RandomStrategy: uniform, one roll per connection. */
export class RandomStrategy implements BalancingStrategy {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(tags: readonly string[]): string {
    return tags[Math.floor(this.#random() * tags.length)];
  }
}

export interface BalancerOptions {
  tag: string;
  selector: readonly string[];
  /** Every outbound tag, in config order. */
  outboundTags: readonly string[];
  strategy?: BalancingStrategy;
}

export class Balancer {
  readonly tag: string;
  readonly selector: readonly string[];
  /** The outbound tags the selectors choose, in config order. */
  readonly candidates: readonly string[];
  readonly #strategy: BalancingStrategy;

  constructor(options: BalancerOptions) {
    this.tag = options.tag;
    this.selector = options.selector;
    this.candidates = options.outboundTags.filter((t) =>
      options.selector.some((prefix) => t.startsWith(prefix))
    );
    this.#strategy = options.strategy ?? new RandomStrategy();
  }

  /** An outbound tag, or undefined when the selectors chose none (4.34: the default route). */
  pick(): string | undefined {
    if (this.candidates.length === 0) return undefined;
    return this.#strategy.pick(this.candidates);
  }
}
