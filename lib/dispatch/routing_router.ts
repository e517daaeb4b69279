/**
 * The dispatcher's Router backed by routing rules: decides with a RulesRouter, then maps the tag
 * to its Outbound, handing on why (the access line's `[rule 3: domain:example.com]`). Tags were
 * checked against the outbounds when the config was read, so a missing tag here is a bug; it
 * falls back to the default outbound as v2ray 4.34 does.
 */
import type { Route } from "./router.ts";
import type { Outbound } from "../outbound/outbound.ts";
import type { RouteRequest } from "../routing/rule.ts";
import type { RouteDecision, RulesRouter } from "../routing/rules_router.ts";

export interface RoutingRouterOptions {
  rules: RulesRouter;
  /** In config order; the first is the default route. */
  outbounds: readonly Outbound[];
}

export class RoutingRouter {
  readonly #rules: RulesRouter;
  readonly #byTag: Map<string, Outbound>;
  readonly #default: Outbound;

  constructor(options: RoutingRouterOptions) {
    this.#rules = options.rules;
    this.#byTag = new Map(options.outbounds.map((o) => [o.tag, o]));
    this.#default = options.outbounds[0];
  }

  select(ctx: RouteRequest): Route | Promise<Route> {
    const d = this.#rules.decide(ctx);
    return d instanceof Promise ? d.then((x) => this.#take(x)) : this.#take(d);
  }

  #take(d: RouteDecision): Route {
    const outbound = this.#byTag.get(d.tag) ?? this.#default;
    return d.rule ? { outbound, rule: d.reason } : { outbound };
  }
}
