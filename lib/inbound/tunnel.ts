import type { Destination } from "../net/destination.ts";
import { formatDestination, formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { relay } from "../net/relay.ts";
import {
  type DatagramContext,
  type DatagramHandler,
  describeRelay,
  errorMessage,
  IdleTimer,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  openOutbound,
} from "./inbound.ts";

export interface TunnelOptions {
  /** v2ray dokodemo-door `address` and `port`: where every connection goes. */
  address: string;
  port: number;
}

/** Client addresses served at once on the UDP side; the least recently active makes room. */
const MAX_UDP_FLOWS = 1024;
/** Datagrams held per client while its outbound is still opening. */
const MAX_PENDING_DATAGRAMS = 64;

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
    const flows = new Map<string, UdpFlow>();
    const dest: Destination = { network: "udp", host: this.#address, port: this.#port };
    const onAbort = () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
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
        const key = formatHostPort(from.hostname, from.port);
        let flow = flows.get(key);
        if (!flow) {
          if (flows.size >= MAX_UDP_FLOWS) flows.values().next().value!.close();
          flow = new UdpFlow(key, dest, ctx, (payload) => {
            socket.send(payload, from).catch(() => {});
          }, () => flows.delete(key));
          flows.set(key, flow);
        } else {
          // Map order = recency, so eviction takes the least recently active client.
          flows.delete(key);
          flows.set(key, flow);
        }
        flow.send(data);
      }
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      for (const flow of [...flows.values()]) flow.close();
    }
  }
}

/** One UDP client of the tunnel: its datagrams over one outbound stream, and the replies. */
class UdpFlow {
  #pending: Uint8Array[] = [];
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #duplex: Duplex | undefined;
  #closed = false;
  #timer: IdleTimer;
  #started = Date.now();
  #result: InboundResult;
  #ctx: DatagramContext;
  #source: string;
  #onClose: () => void;

  constructor(
    source: string,
    dest: Destination,
    ctx: DatagramContext,
    onReply: (payload: Uint8Array) => void,
    onClose: () => void,
  ) {
    this.#source = source;
    this.#ctx = ctx;
    this.#onClose = onClose;
    this.#result = { destination: formatDestination(dest), result: "ok", up: 0, down: 0 };
    this.#timer = new IdleTimer(ctx.policy.connIdle, () => this.close());
    openOutbound({ ...ctx, source }, dest).then(
      async (duplex) => {
        if (this.#closed) return duplex.close();
        this.#duplex = duplex;
        this.#writer = duplex.writable.getWriter();
        for (const p of this.#pending.splice(0)) this.send(p);
        try {
          for await (const chunk of duplex.readable) {
            this.#timer.touch();
            this.#result.down += chunk.byteLength;
            onReply(chunk);
          }
        } catch {
          // The flow ends with its outbound.
        }
        this.close();
      },
      (err) => {
        this.#result.result = errorMessage(err);
        this.close();
      },
    );
  }

  send(payload: Uint8Array): void {
    if (this.#closed) return;
    this.#timer.touch();
    if (!this.#writer) {
      if (this.#pending.length < MAX_PENDING_DATAGRAMS) this.#pending.push(payload);
      return;
    }
    // UDP under pressure: queue a bounded burst (a resolver sends A and AAAA back to back),
    // drop beyond it rather than queue without bound.
    if ((this.#writer.desiredSize ?? 0) <= -MAX_PENDING_DATAGRAMS) return;
    this.#result.up += payload.byteLength;
    this.#writer.write(payload).catch(() => this.close());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.stop();
    this.#pending = [];
    this.#duplex?.close();
    this.#onClose();
    this.#ctx.report(this.#source, this.#result, Date.now() - this.#started);
  }
}
