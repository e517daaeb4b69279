import { Dispatcher } from "../../lib/dispatch/dispatcher.ts";
import type { Policy } from "../../lib/dispatch/policy.ts";
import { DefaultRouter } from "../../lib/dispatch/router.ts";
import type { InboundContext } from "../../lib/inbound/inbound.ts";
import { Logger } from "../../lib/log.ts";
import type { Destination } from "../../lib/net/destination.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import type { OpenOptions, Outbound } from "../../lib/outbound/outbound.ts";

export interface OpenedRemote {
  dest: Destination;
  /** The far end of what `open()` returned: the test plays the remote server on it. */
  peer: Duplex;
}

/**
 * An Outbound whose connections are in-memory pairs. Each `open()` is queued for the test to
 * pick up with `next()`; `fail` makes `open()` reject with that error instead.
 */
export class FakeOutbound implements Outbound {
  readonly tag: string;

  constructor(tag = "fake") {
    this.tag = tag;
  }

  fail: Error | undefined;
  /** Every destination asked for, in order. */
  readonly opened: Destination[] = [];
  #queue: OpenedRemote[] = [];
  #waiters: ((o: OpenedRemote) => void)[] = [];
  #peers: Duplex[] = [];

  open(dest: Destination, _options?: OpenOptions): Promise<Duplex> {
    this.opened.push(dest);
    if (this.fail) return Promise.reject(this.fail);
    const [mine, peer] = duplexPair();
    this.#peers.push(peer);
    const o = { dest, peer };
    const w = this.#waiters.shift();
    if (w) w(o);
    else this.#queue.push(o);
    return Promise.resolve(mine);
  }

  /** The next opened connection (waits for it). */
  next(): Promise<OpenedRemote> {
    const o = this.#queue.shift();
    if (o) return Promise.resolve(o);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): Promise<void> {
    for (const p of this.#peers) p.close();
    return Promise.resolve();
  }
}

/** Everything `readable` yields until it ends (or fails), concatenated. */
export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  try {
    for await (const c of readable) parts.push(c);
  } catch {
    // A reset ends the stream too; the test checks what arrived.
  }
  return concat(parts);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Reads exactly `n` bytes from a reader (throws at EOF). */
export async function readN(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
  carry: { buf: Uint8Array } = { buf: new Uint8Array(0) },
): Promise<Uint8Array> {
  for (let i = 0; carry.buf.byteLength < n && i < 1_000_000; i++) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`EOF after ${carry.buf.byteLength} of ${n} bytes`);
    carry.buf = concat([carry.buf, value]);
  }
  const out = carry.buf.slice(0, n);
  carry.buf = carry.buf.slice(n);
  return out;
}

/** A dispatcher that sends everything to `outbound`, logging to `logger` (silent by default). */
export function dispatcherFor(outbound: Outbound, logger = Logger.silent()): Dispatcher {
  return new Dispatcher({ router: new DefaultRouter([outbound]), logger });
}

/** An inbound context for tests: silent logger, long timeouts unless overridden. */
export function testContext(
  outbound: Outbound,
  overrides: Partial<Omit<InboundContext, "policy">> & { policy?: Partial<Policy> } = {},
): InboundContext {
  const { policy, ...rest } = overrides;
  return {
    tag: "test-in",
    source: { host: "127.0.0.1", port: 40000 },
    dispatcher: dispatcherFor(outbound, overrides.logger),
    logger: Logger.silent(),
    signal: new AbortController().signal,
    ...rest,
    policy: {
      handshake: 5_000,
      connIdle: 10_000,
      uplinkOnly: 10_000,
      downlinkOnly: 10_000,
      ...policy,
    },
  };
}
