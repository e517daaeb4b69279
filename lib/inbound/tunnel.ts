import type { Destination } from "../net/destination.ts";
import { formatDestination, formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { relay } from "../net/relay.ts";
import {
  type DatagramContext,
  type DatagramHandler,
  describeRelay,
  errorMessage,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  openOutbound,
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
    const dest: Destination = { network: "tcp", host: this.#address, port: this.#port };
    const result: InboundResult = {
      destination: formatDestination(dest),
      result: "ok",
      up: 0,
      down: 0,
    };
    let remote: Duplex;
    try {
      remote = await openOutbound(ctx, dest);
    } catch (err) {
      // No protocol to answer in: the client sees the connection close.
      conn.close();
      result.result = errorMessage(err);
      return result;
    }
    const r = await relay(conn, remote, { ...ctx.policy, signal: ctx.signal });
    result.up = r.up;
    result.down = r.down;
    result.result = describeRelay(r);
    return result;
  }

  async serveDatagrams(socket: Deno.DatagramConn, ctx: DatagramContext): Promise<void> {
    const flows = new UdpFlowTable(MAX_UDP_FLOWS);
    const dest: Destination = { network: "udp", host: this.#address, port: this.#port };
    const destination = formatDestination(dest);
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
        const source = formatHostPort(from.hostname, from.port);
        flows.flow(source, (onClose) =>
          new UdpFlow({
            ctx: { ...ctx, source },
            dest,
            onReply: (payload) => {
              socket.send(payload, from).catch(() => {});
            },
            onClose: (flow) => {
              onClose(flow);
              // One access line per client flow, as v2ray logs one per UDP "connection".
              ctx.report(source, {
                destination,
                result: flow.error ?? "ok",
                up: flow.up,
                down: flow.down,
              }, Date.now() - flow.started);
            },
          })).send(data);
      }
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      flows.closeAll();
    }
  }
}
