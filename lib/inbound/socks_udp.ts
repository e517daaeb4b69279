/**
 * One SOCKS5 UDP ASSOCIATE (RFC 1928 §7): the relay socket the client sends its datagrams to, and
 * one outbound UDP flow per destination.
 */
import { unmapIpv4 } from "../net/destination.ts";
import { encodeUdpDatagram, parseUdpDatagram, type UdpDatagram } from "../socks/socks5.ts";
import type { InboundContext } from "./inbound.ts";
import { UdpFlow, UdpFlowTable } from "./udp_flow.ts";
import { closeQuietly } from "../net/close_quietly.ts";

/** How many destinations one UDP association may talk to at once; the oldest flow makes room. */
const MAX_UDP_FLOWS = 256;

export interface AssociationOptions {
  /** Where the client will send from (RFC 1928 §4: DST.PORT of UDP ASSOCIATE); 0 = not known. */
  clientPort: number;
  /** Who authenticated, for routing. */
  user?: string;
}

/** One UDP ASSOCIATE: the relay socket, and one outbound UDP Duplex per destination. */
export class UdpAssociation {
  up = 0;
  down = 0;
  /** The tag of the outbound of the last flow that ended, if any did. */
  outbound: string | undefined;
  readonly done: Promise<void>;
  #socket: Deno.DatagramConn;
  #ctx: InboundContext;
  #clientHost: string;
  #client: Deno.NetAddr | undefined;
  #clientPort: number;
  #user: string | undefined;
  #flows = new UdpFlowTable(MAX_UDP_FLOWS);
  #closed = false;

  constructor(socket: Deno.DatagramConn, ctx: InboundContext, opts: AssociationOptions) {
    this.#socket = socket;
    this.#ctx = ctx;
    // Only the client that asked for the association may use it: the TCP peer's host.
    this.#clientHost = unmapIpv4(ctx.source.host);
    this.#clientPort = opts.clientPort;
    this.#user = opts.user;
    this.done = this.#receive();
  }

  async #receive(): Promise<void> {
    for (let n = 0; n < Number.MAX_SAFE_INTEGER && !this.#closed; n++) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await this.#socket.receive();
      } catch {
        return; // socket closed
      }
      const from = addr as Deno.NetAddr;
      // Only the client that asked for the association may use it.
      if (unmapIpv4(from.hostname) !== this.#clientHost) continue;
      if (this.#client) {
        if (from.port !== this.#client.port) continue;
      } else {
        if (this.#clientPort !== 0 && from.port !== this.#clientPort) continue;
        this.#client = { transport: "udp", hostname: from.hostname, port: from.port };
      }
      let dg: UdpDatagram | null;
      try {
        dg = parseUdpDatagram(data);
      } catch {
        continue; // unknown address type: drop
      }
      // RFC 1928 §7: "An implementation that does not support fragmentation MUST drop any
      // datagram whose FRAG field is other than X'00'."
      if (!dg || dg.frag !== 0) continue;
      this.#flow(dg.host, dg.port).send(dg.payload.slice());
    }
  }

  #flow(host: string, port: number): UdpFlow {
    return this.#flows.flow(`${host}|${port}`, (onClose) =>
      new UdpFlow({
        ctx: this.#ctx,
        route: {
          destination: { network: "udp", host, port },
          inboundTag: this.#ctx.tag,
          source: this.#ctx.source,
          user: this.#user,
        },
        onReply: (payload) => this.#reply(host, port, payload),
        onClose: (flow) => {
          onClose(flow);
          this.up += flow.up;
          this.down += flow.down;
          if (flow.outbound !== undefined) this.outbound = flow.outbound;
        },
      }));
  }

  #reply(host: string, port: number, payload: Uint8Array): void {
    if (this.#closed || !this.#client) return;
    this.#socket.send(encodeUdpDatagram(host, port, payload), this.#client).catch(() => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#socket);
    this.#flows.closeAll();
  }
}
