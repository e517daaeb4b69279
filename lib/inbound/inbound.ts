import type { Deadlines } from "../net/deadline_queue.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { Policy } from "../dispatch/policy.ts";
import type { Logger } from "../log.ts";
import type { HostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";

/**
 * What an inbound handler is given for one accepted connection. There is no outbound here: a
 * handler reaches the world only through `dispatcher`, with a RouteContext naming this inbound's
 * `tag`, the `source` and the user it authenticated.
 */
export interface InboundContext {
  /** The inbound's tag. */
  tag: string;
  /** The client's address (over the v2ray http transport, its X-Forwarded-For IP when given). */
  source: HostPort;
  /** The address the client connected to (for SOCKS5 UDP ASSOCIATE replies); default 127.0.0.1. */
  localAddress?: string;
  /** Timeouts of the inbound's user level: `handshake` bounds reading the request. */
  policy: Policy;
  logger: Logger;
  /** Aborts on server shutdown. */
  signal: AbortSignal;
  dispatcher: Dispatcher;
  /**
   * The server's timer queues for handshake deadlines (one timer per length for all its
   * connections); without them each deadline gets a timer of its own.
   */
  deadlines?: Deadlines;
}

/**
 * How a connection went, returned by a handler. When `outbound` is set the dispatcher has written
 * the access lines; otherwise (refused before routing) the server writes one from this.
 */
export interface InboundResult {
  /** `tcp:host:port`, or "" when the request never got that far. */
  destination: string;
  /** "ok", or what ended the connection. */
  result: string;
  up: number;
  down: number;
  /** The tag of the (last) outbound the dispatcher chose; "" if routing failed. */
  outbound?: string;
}

/** Serves one accepted connection. Never throws: failures are reported in the result. */
export interface InboundHandler {
  handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult>;
  /** True when clients must authenticate (for the open-proxy warning). */
  readonly requiresAuth?: boolean;
}

/** What a datagram inbound (tunnel over UDP) is given for its socket: one per client flow. */
export type DatagramContext = Omit<InboundContext, "source">;

/** Serves a UDP socket until it closes. Never throws. */
export interface DatagramHandler {
  serveDatagrams(socket: Deno.DatagramConn, ctx: DatagramContext): Promise<void>;
}
