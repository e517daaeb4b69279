/**
 * An outbound whose connection outcomes feed the observatory (passive health): a failed open()
 * marks it dead for the balancer strategies until a probe or a connection succeeds again. The
 * duplex is the inner outbound's own: nothing is added per connection.
 */
import type { Destination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";

/** Where outcomes go (the routing Observatory). */
export interface OutcomeSink {
  failed(tag: string, err: unknown): void;
  succeeded(tag: string): void;
}

export class ObservedOutbound implements Outbound {
  readonly tag: string;
  readonly #inner: Outbound;
  readonly #sink: OutcomeSink;

  constructor(inner: Outbound, sink: OutcomeSink) {
    this.tag = inner.tag;
    this.#inner = inner;
    this.#sink = sink;
  }

  async open(dest: Destination, options?: OpenOptions): Promise<Duplex> {
    try {
      const duplex = await this.#inner.open(dest, options);
      this.#sink.succeeded(this.tag);
      return duplex;
    } catch (err) {
      // The client or the app giving up says nothing about the outbound.
      if (!options?.signal?.aborted) this.#sink.failed(this.tag, err);
      throw err;
    }
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
