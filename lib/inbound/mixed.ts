import { ByteReader } from "../net/byte_reader.ts";
import type { Duplex } from "../net/duplex.ts";
import { HttpProxyInbound } from "./http_proxy.ts";
import { deadline } from "./deadline.ts";
import type { InboundContext, InboundHandler, InboundResult } from "./inbound.ts";
import { SOCKS4_VERSION } from "../socks/socks4.ts";
import { SocksInbound, type SocksOptions } from "./socks.ts";
import { SOCKS_VERSION } from "../socks/socks5.ts";

export interface MixedOptions extends SocksOptions {}

/**
 * SOCKS (5, 4 and 4a) and HTTP proxy on one port, told apart by the first byte: a SOCKS request
 * starts with its version, 0x05 or 0x04, which no HTTP method token can start with.
 */
export class MixedInbound implements InboundHandler {
  readonly #socks: SocksInbound;
  readonly #http: HttpProxyInbound;

  constructor(options: MixedOptions = {}) {
    this.#socks = new SocksInbound(options);
    // The same accounts guard both protocols.
    this.#http = new HttpProxyInbound({
      accounts: options.auth === "password" ? options.accounts : undefined,
    });
  }

  get requiresAuth(): boolean {
    return this.#socks.requiresAuth;
  }

  async handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    const reader = new ByteReader(conn.readable);
    let timedOut = false;
    const disarm = deadline(conn, ctx.policy.handshake, () => (timedOut = true), ctx.deadlines);
    let first: number;
    try {
      if (!(await reader.ensure(1))) {
        conn.close();
        return {
          destination: "",
          result: timedOut ? "handshake timeout" : "closed before request",
          up: 0,
          down: 0,
        };
      }
      first = reader.peek(1)[0];
    } catch {
      conn.close();
      return {
        destination: "",
        result: timedOut ? "handshake timeout" : "reset before request",
        up: 0,
        down: 0,
      };
    } finally {
      disarm();
    }
    return first === SOCKS_VERSION || first === SOCKS4_VERSION
      ? this.#socks.serve(conn, reader, ctx)
      : this.#http.serve(conn, reader, ctx);
  }
}
