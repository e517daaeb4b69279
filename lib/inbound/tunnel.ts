import type { Destination } from "../net/destination.ts";
import { formatDestination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type {
  DatagramContext,
  DatagramHandler,
  InboundContext,
  InboundHandler,
  InboundResult,
} from "./inbound.ts";
import { UdpFlow, UdpFlowTable } from "./udp_flow.ts";
import { closeQuietly } from "../net/close_quietly.ts";

export interface TunnelOptions {
  /** v2ray dokodemo-door `address` and `port`: where every connection goes. */
  address: string;
  port: number;
}

/** Client addresses served at once on the UDP side; the least recently active makes room. */
const MAX_UDP_FLOWS = 1024;

/**
 * dokodemo-door: every TCP connection and every UDP client is forwarded to one fixed destination.
 * On UDP, each client address gets its own outbound stream, closed after `connIdle` of silence.
 */
export class TunnelInbound implements InboundHandler, DatagramHandler {
  readonly #address: string;
  readonly #port: number;

  constructor(options: TunnelOptions) {
    if (!(options.port >= 1 && options.port <= 65535)) {
      throw new RangeError(`Cannot create tunnel: port must be 1-65535, got ${options.port}`);
    }
    this.#address = options.address;
    this.#port = options.port;
  }

  get requiresAuth(): boolean {
    return false;
  }

  async handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    const destination: Destination = { network: "tcp", host: this.#address, port: this.#port };
    const route = { destination, inboundTag: ctx.tag, source: ctx.source };
    const r = await ctx.dispatcher.connect(conn, route, { policy: ctx.policy, signal: ctx.signal });
    // No protocol to answer in: when the dial failed the client sees the connection close.
    if (r.error !== undefined) conn.close();
    return {
      destination: formatDestination(destination),
      result: r.result,
      up: r.up,
      down: r.down,
      outbound: r.outbound,
    };
  }

  async serveDatagrams(socket: Deno.DatagramConn, ctx: DatagramContext): Promise<void> {
    const flows = new UdpFlowTable(MAX_UDP_FLOWS);
    const destination: Destination = { network: "udp", host: this.#address, port: this.#port };
    const onAbort = () => closeQuietly(socket);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (let n = 0; n < Number.MAX_SAFE_INTEGER; n++) {
        let data: Uint8Array, addr: Deno.Addr;
        try {
          [data, addr] = await socket.receive();
        } catch {
          return; // closed
        }
        const from = addr as Deno.NetAddr;
        const source = { host: from.hostname, port: from.port };
        // One flow, and so one access line, per client address, as v2ray logs one per UDP
        // "connection".
        flows.flow(`${source.host}|${source.port}`, (onClose) =>
          new UdpFlow({
            ctx,
            route: { destination, inboundTag: ctx.tag, source },
            onReply: (payload) => {
              socket.send(payload, from).catch(() => {});
            },
            onClose,
          })).send(data);
      }
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      flows.closeAll();
    }
  }
}
