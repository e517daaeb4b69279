/**
 * The dispatcher's Router backed by routing rules: decides with a RulesRouter, then maps the tag
 * to its Outbound. Tags were checked against the outbounds when the config was read, so a
 * missing tag here is a bug; it falls back to the default outbound as v2ray 4.34 does.
 */
import type { Logger } from "../log.ts";
import { formatDestination } from "../net/destination.ts";
import type { Outbound } from "../outbound/outbound.ts";
import type { RouteRequest } from "./rule.ts";
import type { RouteDecision, RulesRouter } from "./rules_router.ts";

export interface RoutingRouterOptions {
  rules: RulesRouter;
  /** In config order; the first is the default route. */
  outbounds: readonly Outbound[];
  logger: Logger;
}

export class RoutingRouter {
  readonly #rules: RulesRouter;
  readonly #byTag: Map<string, Outbound>;
  readonly #default: Outbound;
  readonly #logger: Logger;

  constructor(options: RoutingRouterOptions) {
    this.#rules = options.rules;
    this.#byTag = new Map(options.outbounds.map((o) => [o.tag, o]));
    this.#default = options.outbounds[0];
    this.#logger = options.logger;
  }

  select(ctx: RouteRequest): Outbound | Promise<Outbound> {
    const d = this.#rules.decide(ctx);
    return d instanceof Promise ? d.then((x) => this.#take(ctx, x)) : this.#take(ctx, d);
  }

  #take(ctx: RouteRequest, d: RouteDecision): Outbound {
    const outbound = this.#byTag.get(d.tag) ?? this.#default;
    if (this.#logger.enabled("debug")) {
      this.#logger.debug(
        `route ${
          formatDestination(ctx.destination)
        } from "${ctx.inboundTag}" → ${outbound.tag} [${d.reason}]`,
      );
    }
    return outbound;
  }
}
