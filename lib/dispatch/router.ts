import type { Outbound } from "../outbound/outbound.ts";
import type { RouteContext } from "./route_context.ts";

/**
 * Picks the outbound for one connection. The dispatcher asks once per connection (per UDP flow),
 * before dialing; a rejection (or throw) fails that connection only, as a dial failure would.
 * `select` may be synchronous: most routing decisions are pure lookups.
 */
export interface Router {
  select(ctx: RouteContext): Promise<Outbound> | Outbound;
}

/** Everything goes to the first outbound: v2ray's behaviour when no routing rule matches. */
export class DefaultRouter implements Router {
  readonly #outbound: Outbound;

  constructor(outbounds: readonly Outbound[]) {
    if (outbounds.length === 0) throw new TypeError("DefaultRouter needs at least one outbound");
    this.#outbound = outbounds[0];
  }

  select(_ctx: RouteContext): Outbound {
    return this.#outbound;
  }
}
