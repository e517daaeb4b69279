import type { Outbound } from "../outbound/outbound.ts";
import type { RouteContext } from "../net/route_context.ts";

/** A router's answer: the outbound, and why (the access line names both). */
export interface Route {
  outbound: Outbound;
  /**
   * The rule that chose it, as the access line shows it: "rule 3: domain:example.com";
   * undefined = the default route (no rule matched, or no rules).
   */
  rule?: string;
}

/**
 * Picks the outbound for one connection. The dispatcher asks once per connection (per UDP flow),
 * before dialing; a rejection (or throw) fails that connection only, as a dial failure would.
 * `select` may be synchronous: most routing decisions are pure lookups.
 */
export interface Router {
  select(ctx: RouteContext): Promise<Route> | Route;
}

/** Everything goes to the first outbound: v2ray's behaviour when no routing rule matches. */
export class DefaultRouter implements Router {
  readonly #route: Route;

  constructor(outbounds: readonly Outbound[]) {
    if (outbounds.length === 0) throw new TypeError("DefaultRouter needs at least one outbound");
    this.#route = { outbound: outbounds[0] };
  }

  select(_ctx: RouteContext): Route {
    return this.#route;
  }
}
