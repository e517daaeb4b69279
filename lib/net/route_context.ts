import type { Destination, HostPort } from "../net/destination.ts";

/**
 * What an inbound knows about one connection when it hands it over: where it goes and who asked.
 * The router picks an outbound from it; the access log names it; outbounds may read it
 * (`OpenOptions.route`). Plain data: routers must not change it.
 */
export interface RouteContext {
  /** Where the client wants to go (for UDP flows, the flow's destination). */
  readonly destination: Destination;
  /** The tag of the inbound that accepted the connection. */
  readonly inboundTag: string;
  /**
   * The client's address as the inbound sees it. Over the v2ray http transport, the first
   * X-Forwarded-For address when it is an IP (port 0), as v2ray does.
   */
  readonly source: HostPort;
  /** Who authenticated: a VLESS client's email, a SOCKS5 or HTTP proxy username. */
  readonly user?: string;
  /**
   * The application protocol: sniffed ("http1", "tls", "bittorrent"), or "http/1.1" for a request
   * an HTTP proxy inbound forwards (as v2ray 4.34 marks it).
   */
  readonly protocol?: string;
}
