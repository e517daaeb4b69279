/**
 * UDP over stream outbounds, shared by the SOCKS5 UDP relay and dokodemo-door's UDP side: each
 * flow (one SOCKS destination, one tunnel client) gets its own outbound Duplex carrying one
 * datagram per chunk, and a table keeps the flows of one socket.
 *
 * A flow ends after `connIdle` without a datagram either way (v2ray's UDP idle rule), when its
 * outbound ends or fails, or when the table needs its slot; the table then forgets it, so the next
 * datagram for the same key opens a fresh outbound instead of falling into a dead flow.
 */
import type { Dispatched } from "../dispatch/dispatcher.ts";
import type { RouteContext } from "../net/route_context.ts";
import { errorMessage } from "../error_message.ts";
import { formatDestination } from "../net/destination.ts";
import { IdleTimer } from "../net/idle_timer.ts";
import type { DatagramContext } from "./inbound.ts";

/** Datagrams held per flow while its outbound is still opening (or its writer is busy). */
export const MAX_PENDING_DATAGRAMS = 64;

export interface UdpFlowOptions {
  /** Supplies the dispatcher, the policy (`connIdle`), the logger and the shutdown signal. */
  ctx: DatagramContext;
  /** The flow's destination (network "udp") and who asked; the dispatcher logs the flow. */
  route: RouteContext;
  /** A datagram back from the outbound. */
  onReply: (payload: Uint8Array) => void;
  /** The flow has ended; called once. */
  onClose: (flow: UdpFlow) => void;
}

/**
 * Datagrams to one destination over one outbound UDP Duplex, and the replies. The flow is one
 * dispatched connection: one access line when it ends.
 */
export class UdpFlow {
  /** Payload bytes sent and received. */
  up = 0;
  down = 0;
  /** Why the outbound could not be opened, if it could not. */
  error: string | undefined;
  /** The tag of the outbound carrying the flow, once open. */
  outbound: string | undefined;
  #pending: Uint8Array[] = [];
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #dispatched: Dispatched | undefined;
  #closed = false;
  #timer: IdleTimer;
  #onClose: (flow: UdpFlow) => void;

  constructor(options: UdpFlowOptions) {
    const { ctx, route, onReply } = options;
    this.#onClose = options.onClose;
    this.#timer = new IdleTimer(ctx.policy.connIdle, () => this.close());
    ctx.dispatcher.open(route, { signal: ctx.signal }).then(
      async (dispatched) => {
        this.#dispatched = dispatched;
        this.outbound = dispatched.outbound;
        if (this.#closed) return this.#finish();
        const { duplex } = dispatched;
        this.#writer = duplex.writable.getWriter();
        for (const p of this.#pending.splice(0)) this.send(p);
        try {
          for await (const chunk of duplex.readable) {
            this.#timer.touch();
            this.down += chunk.byteLength;
            onReply(chunk);
          }
        } catch {
          // The flow ends with its outbound; the socket keeps serving other flows.
        }
        this.close();
      },
      (err) => {
        this.error = errorMessage(err);
        ctx.logger.debug(`${formatDestination(route.destination)}: ${this.error}`);
        this.close();
      },
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one datagram (the flow keeps `payload`: pass a copy if the buffer is reused). */
  send(payload: Uint8Array): void {
    if (this.#closed) return;
    this.#timer.touch();
    if (!this.#writer) {
      if (this.#pending.length < MAX_PENDING_DATAGRAMS) this.#pending.push(payload);
      return;
    }
    // UDP semantics under pressure: queue a bounded burst (a resolver sends A and AAAA back to
    // back), drop beyond it rather than queue without bound.
    if ((this.#writer.desiredSize ?? 0) <= -MAX_PENDING_DATAGRAMS) return;
    this.up += payload.byteLength;
    this.#writer.write(payload).catch(() => this.close());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.stop();
    this.#pending = [];
    this.#finish();
    this.#onClose(this);
  }

  /** Closes the outbound side and writes the flow's access line (the dispatcher's). */
  #finish(): void {
    this.#dispatched?.finish({ up: this.up, down: this.down });
  }
}

/**
 * The flows of one UDP socket by key, at most `max` of them. Map order is recency: using a flow
 * moves it to the end, and a new flow beyond `max` evicts the least recently used one.
 */
export class UdpFlowTable {
  readonly #max: number;
  readonly #flows = new Map<string, UdpFlow>();

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#flows.size;
  }

  /**
   * The live flow for `key`, or a new one from `make`, which must pass `onClose` on to the flow
   * (the table forgets a flow when it closes).
   */
  flow(key: string, make: (onClose: (flow: UdpFlow) => void) => UdpFlow): UdpFlow {
    const known = this.#flows.get(key);
    if (known) {
      this.#flows.delete(key);
      this.#flows.set(key, known);
      return known;
    }
    if (this.#flows.size >= this.#max) this.#flows.values().next().value!.close();
    const flow = make((closed) => {
      if (this.#flows.get(key) === closed) this.#flows.delete(key);
    });
    // A flow whose outbound failed at once has closed already: nothing to remember.
    if (!flow.closed) this.#flows.set(key, flow);
    return flow;
  }

  closeAll(): void {
    for (const flow of [...this.#flows.values()]) flow.close();
    this.#flows.clear();
  }
}
