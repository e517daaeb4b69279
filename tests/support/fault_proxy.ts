/**
 * A TCP proxy that injects faults between a client and a server, after Toxiproxy's model: each
 * direction ("up" = client → server, "down" = server → client) has its own toxics, changed at any
 * time and applied to connections already open and to new ones.
 *
 * - `latencyMs`: every chunk is held this long before it is forwarded (order kept).
 * - `bytesPerSecond`: chunks are paced to this rate.
 * - `stall`: nothing more is forwarded, not even the FIN — a peer that went silent without closing
 *   (a frozen process, a dropped route). Data waits (and backs up into TCP) until the stall ends.
 * - `slowCloseMs`: the FIN is held this long after the last byte.
 * - `byteAtATime`: each byte is written on its own, `byteDelayMs` apart: every parser split point.
 * - `reset()` ends every open connection with a TCP RST both ways; `refuse` resets new ones at
 *   once (a server that went away while something still accepts).
 *
 * Built on `node:net` because a TCP RST needs `resetAndDestroy()` (SO_LINGER 0), which `Deno.Conn`
 * cannot do. Every timer is cancelled by `close()`, so tests stay clean under the sanitizers.
 */
import net from "node:net";

export type Direction = "up" | "down";

export interface Toxics {
  latencyMs?: number;
  bytesPerSecond?: number;
  stall?: boolean;
  slowCloseMs?: number;
  byteAtATime?: boolean;
  /** With `byteAtATime`: the wait between bytes (default 1 ms). */
  byteDelayMs?: number;
}

export interface FaultProxyOptions {
  /** Where connections go. */
  target: { hostname: string; port: number };
  /** Where the proxy listens (default 127.0.0.1, port 0). */
  hostname?: string;
}

/** Bytes queued in one direction before the source socket is paused (TCP backpressure). */
const HIGH_WATER = 256 * 1024;

export class FaultProxy implements AsyncDisposable {
  readonly #server: net.Server;
  readonly #target: { hostname: string; port: number };
  readonly #toxics: Record<Direction, Toxics> = { up: {}, down: {} };
  readonly #pipes = new Set<Pipe>();
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<{ timer: ReturnType<typeof setTimeout>; wake: () => void }>();
  /** Wakes pipes waiting for a stall to end. */
  #stallWaiters: Array<() => void> = [];
  #closed = false;
  /** New connections are reset as they arrive. */
  refuse = false;
  /** Connections accepted so far. */
  accepted = 0;
  /** Bytes forwarded so far, per direction. */
  readonly forwarded: Record<Direction, number> = { up: 0, down: 0 };

  private constructor(server: net.Server, target: { hostname: string; port: number }) {
    this.#server = server;
    this.#target = target;
    server.on("connection", (client: net.Socket) => this.#accept(client));
  }

  static start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const proxy = new FaultProxy(server, options.target);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, options.hostname ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve(proxy);
      });
    });
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Connections with at least one socket still open. */
  get openConnections(): number {
    return this.#pipes.size / 2;
  }

  /** Replaces the toxics of `direction` ("both" for either). */
  set(direction: Direction | "both", toxics: Toxics): void {
    for (const d of direction === "both" ? ["up", "down"] as const : [direction]) {
      this.#toxics[d] = { ...toxics };
    }
    this.#wakeStalled();
    for (const p of this.#pipes) p.kick();
  }

  /** Removes every toxic. */
  clear(): void {
    this.set("both", {});
  }

  toxics(direction: Direction): Readonly<Toxics> {
    return this.#toxics[direction];
  }

  /** Ends every open connection with a TCP RST on both of its sockets. */
  reset(): void {
    for (const s of [...this.#sockets]) s.resetAndDestroy();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.wake();
    }
    this.#timers.clear();
    this.#wakeStalled();
    for (const s of [...this.#sockets]) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await Promise.all([...this.#pipes].map((p) => p.done));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- for Pipe ----

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Resolves after `ms` (at once when the proxy closes). */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#timers.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.#timers.add(entry);
    });
  }

  /** Resolves once `direction` is no longer stalled (or the proxy closes). */
  async whileStalled(direction: Direction): Promise<void> {
    // Each round waits for a set() or close(); bounded by how often the test changes toxics.
    while (this.#toxics[direction].stall && !this.#closed) {
      await new Promise<void>((resolve) => this.#stallWaiters.push(resolve));
    }
  }

  counted(direction: Direction, n: number): void {
    this.forwarded[direction] += n;
  }

  #wakeStalled(): void {
    const waiters = this.#stallWaiters;
    this.#stallWaiters = [];
    for (const w of waiters) w();
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    this.#track(client);
    if (this.refuse || this.#closed) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({
      host: this.#target.hostname,
      port: this.#target.port,
      allowHalfOpen: true,
    });
    this.#track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // A refused or reset upstream looks to the client like the server itself resetting.
    upstream.on("error", () => client.resetAndDestroy());
    client.on("error", () => upstream.resetAndDestroy());
    const up = new Pipe(this, "up", client, upstream);
    const down = new Pipe(this, "down", upstream, client);
    for (const p of [up, down]) {
      this.#pipes.add(p);
      p.done.then(() => this.#pipes.delete(p));
    }
    upstream.once("connect", () => client.resume());
  }

  #track(s: net.Socket): void {
    this.#sockets.add(s);
    s.once("close", () => this.#sockets.delete(s));
  }

  get [Symbol.toStringTag](): string {
    return `FaultProxy(${this.port} → ${this.#target.hostname}:${this.#target.port})`;
  }

  /** The toxics a pipe applies now. */
  current(direction: Direction): Toxics {
    return this.#toxics[direction];
  }
}

/** One direction of one connection: a queue drained by one loop that applies the toxics. */
class Pipe {
  readonly done: Promise<void>;
  readonly #proxy: FaultProxy;
  readonly #dir: Direction;
  readonly #from: net.Socket;
  readonly #to: net.Socket;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #gone = false;
  #wake: (() => void) | undefined;

  constructor(proxy: FaultProxy, dir: Direction, from: net.Socket, to: net.Socket) {
    this.#proxy = proxy;
    this.#dir = dir;
    this.#from = from;
    this.#to = to;
    from.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.byteLength;
      if (this.#queued > HIGH_WATER) from.pause();
      this.kick();
    });
    from.on("end", () => {
      this.#ended = true;
      this.kick();
    });
    const gone = () => {
      this.#gone = true;
      this.kick();
    };
    // A source that ended cleanly has nothing more to lose; one that closed without its FIN
    // (destroyed, reset) takes the rest of this direction with it.
    from.on("close", () => {
      if (!this.#ended) gone();
    });
    to.on("close", gone);
    this.done = this.#run();
  }

  kick(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async #run(): Promise<void> {
    const proxy = this.#proxy;
    // Each round forwards one chunk (or the FIN) or waits for one; it ends when either socket
    // closes or the FIN went through.
    for (;;) {
      if (this.#gone || proxy.isClosed || this.#to.destroyed) return;
      await proxy.whileStalled(this.#dir);
      if (this.#gone || proxy.isClosed || this.#to.destroyed) return;
      const chunk = this.#queue.shift();
      if (chunk === undefined) {
        if (this.#ended) {
          await proxy.sleep(proxy.current(this.#dir).slowCloseMs ?? 0);
          await proxy.whileStalled(this.#dir);
          if (!this.#gone && !proxy.isClosed && !this.#to.destroyed) this.#to.end();
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      this.#queued -= chunk.byteLength;
      await this.#deliver(chunk);
      if (this.#queued <= HIGH_WATER / 2 && this.#from.isPaused()) this.#from.resume();
    }
  }

  async #deliver(chunk: Uint8Array): Promise<void> {
    const proxy = this.#proxy;
    const t = proxy.current(this.#dir);
    if (t.latencyMs) await proxy.sleep(t.latencyMs);
    if (t.byteAtATime) {
      for (let i = 0; i < chunk.byteLength; i++) {
        if (this.#gone || proxy.isClosed) return;
        await proxy.whileStalled(this.#dir);
        await this.#write(chunk.subarray(i, i + 1));
        await proxy.sleep(proxy.current(this.#dir).byteDelayMs ?? 1);
      }
      return;
    }
    if (t.bytesPerSecond) {
      // Paced in slices of at most 1/20 s worth, so a rate change takes effect quickly.
      const slice = Math.max(1, Math.floor(t.bytesPerSecond / 20));
      for (let off = 0; off < chunk.byteLength; off += slice) {
        if (this.#gone || proxy.isClosed) return;
        const part = chunk.subarray(off, off + slice);
        await this.#write(part);
        await proxy.sleep((part.byteLength / t.bytesPerSecond) * 1000);
      }
      return;
    }
    await this.#write(chunk);
  }

  #write(chunk: Uint8Array): Promise<void> {
    if (this.#to.destroyed) return Promise.resolve();
    this.#proxy.counted(this.#dir, chunk.byteLength);
    // Wait for the kernel to take it (drain), so the pace and the stall hold on the wire.
    return new Promise((resolve) => {
      if (this.#to.write(chunk)) resolve();
      else {
        const done = () => {
          this.#to.off("drain", done);
          this.#to.off("close", done);
          resolve();
        };
        this.#to.on("drain", done);
        this.#to.on("close", done);
      }
    });
  }
}
