import type { Destination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { RouteContext } from "../net/route_context.ts";

/**
 * Where an inbound hands a connection. `open()` resolves once the path to the destination is
 * usable (transport connected; for VLESS the request header is sent with the first payload) and
 * rejects with an error naming the destination and cause when it is not.
 *
 * For `dest.network === "udp"` the returned Duplex carries one datagram per chunk, both ways.
 */
export interface Outbound {
  readonly tag: string;
  open(dest: Destination, options?: OpenOptions): Promise<Duplex>;
  /** Releases pooled connections and timers. */
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Aborts dialing (handshake deadline, shutdown). */
  signal?: AbortSignal;
  /** Who asked and from where, for outbounds that want it (the dispatcher always sets it). */
  route?: RouteContext;
}
