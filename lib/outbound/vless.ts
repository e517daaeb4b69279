/**
 * The VLESS outbound: picks a server and user, dials it through a {@link Transport}, and wraps the
 * stream so that the request header leaves with the first payload and the response header is
 * stripped before the payload reaches the caller.
 *
 * What we do differently from v2ray 4.34, on purpose:
 * - we never wait for the server's response before sending (4.34's http dialer waits for the
 *   response HEADERS, a round trip per connection);
 * - the returned readable ends the moment the server's stream ends (half-close passes straight
 *   through; 4.34's client holds the EOF for about 2 s);
 * - UDP datagrams up to 65535 bytes are carried (4.34 drops those over 2046 bytes silently).
 */
import { ForwardingWriter } from "../net/forwarding_writer.ts";
import { formatDestination, formatHostPort } from "../net/destination.ts";
import type { Destination } from "../net/destination.ts";
import type { Duplex, HeldDuplex } from "../net/duplex.ts";
import { Logger } from "../log.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";
import type { ServerAddress, Transport } from "../transport/transport.ts";
import { ServerHealth, type ServerHealthOptions } from "./server_health.ts";
import {
  encodeRequestHeader,
  MUX_HOST,
  ResponseHeaderStripper,
  VLESS_VERSION,
  type VlessCommand,
} from "../vless/header.ts";
import { encodeUdpPacket, UdpPacketDecoder } from "../vless/udp.ts";

export interface VlessUser {
  /** The 16 bytes of the user's UUID. */
  id: Uint8Array;
  /**
   * Only "" (or absent): every flow v2ray 4.34 knows is an XTLS flow, which needs `security:
   * "xtls"`, and dray has no XTLS. The config refuses them by name; so does the constructor.
   */
  flow?: string;
}

export interface VlessServer extends ServerAddress {
  users: VlessUser[];
}

export interface VlessOutboundOptions {
  tag: string;
  /** Every `vnext` entry; connections go round-robin over them. */
  servers: VlessServer[];
  transport: Transport;
  logger?: Logger;
  /** Uniform in [0, 1); picks the user. Injectable for tests. */
  random?: () => number;
  /** Waits between dial attempts. Injectable for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * The deadline of one attempt in ms — for TCP and TLS the connect and handshake; for the http
   * transport the wait for a pooled connection, whose own dial has the same deadline
   * (default {@link DEFAULT_ATTEMPT_TIMEOUT_MS}; 0 = none).
   */
  attemptTimeout?: number;
  /** The health state's clock and back-off. Injectable for tests. */
  health?: ServerHealthOptions;
}

/** v2ray dials 5 times: `retry.ExponentialBackoff(5, 200)`. */
export const DIAL_ATTEMPTS = 5;
/** The wait after failed attempt k (0-based) is k × 200 ms: 0, 200, 400, 600 (as v2ray). */
export const DIAL_BACKOFF_STEP_MS = 200;
/** A TLS handshake is 2-3 round trips: 4 s leaves room for a 1 s RTT, not for a dead server. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 4000;
/** How long the header waits for the client's first bytes, so both leave in one write (as v2ray). */
export const FIRST_PAYLOAD_WAIT_MS = 100;

export class VlessOutbound implements Outbound {
  readonly tag: string;
  readonly #servers: VlessServer[];
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #health: ServerHealth;
  readonly #attemptTimeout: number;
  readonly #closing = new AbortController();
  readonly #open = new Set<HeaderHolder>();
  readonly #headerTimer = new HeaderTimer(FIRST_PAYLOAD_WAIT_MS);

  constructor(options: VlessOutboundOptions) {
    if (options.servers.length === 0) {
      throw new TypeError("VlessOutbound needs at least one server");
    }
    for (const s of options.servers) {
      if (s.users.length === 0) {
        throw new TypeError(`VLESS server ${formatHostPort(s.address, s.port)} has no users`);
      }
      for (const u of s.users) {
        if (u.flow) {
          throw new TypeError(
            `VLESS server ${formatHostPort(s.address, s.port)}: flow "${u.flow}" (XTLS) is not ` +
              `supported by dray`,
          );
        }
      }
    }
    this.tag = options.tag;
    this.#servers = options.servers;
    this.#transport = options.transport;
    this.#logger = options.logger ?? Logger.silent();
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleep;
    this.#attemptTimeout = options.attemptTimeout ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    if (!(this.#attemptTimeout >= 0)) {
      throw new RangeError(`attemptTimeout must be >= 0 ms, got ${this.#attemptTimeout}`);
    }
    this.#health = new ServerHealth(options.servers.length, options.health);
    const indexOf = (server: ServerAddress) =>
      this.#servers.findIndex((s) => s.address === server.address && s.port === server.port);
    this.#transport.watch?.({
      up: (server, ms) => {
        const i = indexOf(server);
        if (i >= 0) this.#health.succeeded(i, ms);
      },
      down: (server, err) => {
        const i = indexOf(server);
        if (i >= 0) this.#markDown(i, err);
      },
      suspect: (server, ms) => {
        const i = indexOf(server);
        if (i >= 0) this.#health.suspect(i, ms);
      },
    });
  }

  async open(dest: Destination, options: OpenOptions = {}): Promise<Duplex> {
    const { signal } = options;
    signal?.throwIfAborted();
    const command: VlessCommand = dest.host === MUX_HOST
      ? "mux"
      : dest.network === "udp"
      ? "udp"
      : "tcp";
    const user = (server: VlessServer) =>
      server.users[Math.floor(this.#random() * server.users.length)];
    const { attempt, server, duplex } = await this.#race(dest, signal);
    const header = encodeRequestHeader({ userId: user(server).id, command, dest, flow: "" });
    if (this.#logger.enabled("debug")) {
      this.#logger.debug(
        `vless: tunneling ${formatDestination(dest)} via ${
          formatHostPort(server.address, server.port)
        } (${this.#transport.name}, attempt ${attempt})`,
      );
    }
    const conn = new VlessConnection(duplex, header, command === "udp", dest, this);
    this.#open.add(conn);
    this.#headerTimer.add(conn);
    return conn;
  }

  /**
   * Up to {@link DIAL_ATTEMPTS} attempts over the servers the health state offers, RFC 8305
   * style: an attempt that has not finished after the race delay gets company — the next untried
   * server starts in parallel — and the first to succeed wins. A failed attempt is followed at
   * once by the next untried server; only when every server failed in this round does it wait
   * (v2ray's 0/200/400/600 ms) before the next round. Losers still running are not cut off: their
   * outcome is news for the health state, and a success is closed at once.
   */
  async #race(
    dest: Destination,
    signal: AbortSignal | undefined,
  ): Promise<{ attempt: number; server: VlessServer; duplex: Duplex }> {
    const n = this.#servers.length;
    const tried = new Set<number>();
    const running = new Set<Attempt>();
    const failures: string[] = [];
    let started = 0;
    let lastFailed = -1;
    const start = () => {
      const index = this.#health.pick(tried)!;
      tried.add(index);
      const attempt = new Attempt(this, index, ++started, signal);
      running.add(attempt);
      return attempt;
    };
    try {
      let last = start();
      // Each round settles one attempt or starts one; at most DIAL_ATTEMPTS starts in all.
      for (;;) {
        const canRace = started < DIAL_ATTEMPTS && tried.size < n;
        const settled = await waitFirst(
          [...running].map((a) => a.result.then(() => a)),
          canRace ? this.#health.raceDelay(last.index) : undefined,
          signal,
        );
        if (settled === undefined) {
          // The race delay passed without an answer: the next server joins.
          last = start();
          continue;
        }
        running.delete(settled);
        const r = await settled.result;
        if (r.ok) {
          return {
            attempt: settled.number,
            server: this.#servers[settled.index],
            duplex: r.duplex,
          };
        }
        failures.push(`#${settled.number} ${settled.where}: ${r.error.message}`);
        lastFailed = settled.number - 1;
        if (running.size > 0) continue;
        if (started >= DIAL_ATTEMPTS) break;
        if (tried.size >= n) {
          // Every server failed this round: wait as v2ray does, then start over.
          await this.#sleep(lastFailed * DIAL_BACKOFF_STEP_MS, signal);
          signal?.throwIfAborted();
          tried.clear();
        }
        last = start();
      }
    } finally {
      // Attempts still running are losers now (or the caller gave up): they finish on their own.
      for (const a of running) a.lose();
    }
    failures.sort((x, y) =>
      Number(x.slice(1, x.indexOf(" "))) - Number(y.slice(1, y.indexOf(" ")))
    );
    throw new Error(
      `failed to reach a VLESS server for ${formatDestination(dest)} after ${started} ` +
        `attempts: ${failures.join("; ")}`,
    );
  }

  close(): Promise<void> {
    this.#closing.abort(new Error(`outbound ${this.tag} closed`));
    for (const conn of [...this.#open]) conn.close();
    this.#transport.close();
    return Promise.resolve();
  }

  // ---- for Attempt ----

  get transport(): Transport {
    return this.#transport;
  }

  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get attemptTimeout(): number {
    return this.#attemptTimeout;
  }

  server(index: number): VlessServer {
    return this.#servers[index];
  }

  /** An attempt's outcome, for the health state (a pooling transport reports its own). */
  attempted(index: number, outcome: { ms: number } | { error: Error }): void {
    if (this.#transport.watch) return;
    if ("ms" in outcome) this.#health.succeeded(index, outcome.ms);
    else this.#markDown(index, outcome.error);
  }

  #markDown(index: number, err: Error): void {
    const wasUp = this.#health.available(index);
    this.#health.failed(index, err);
    if (wasUp) {
      const s = this.#servers[index];
      const st = this.#health.state(index);
      this.#logger.warn(
        `vless: server ${formatHostPort(s.address, s.port)} marked down for ${
          Math.round(st.retryAt - performance.now())
        } ms: ${err.message}`,
      );
    }
  }

  /** Health of each server, for logs and tests. */
  get health(): ServerHealth {
    return this.#health;
  }

  // ---- for VlessConnection ----

  /** The connection's header left (or never will): it no longer needs the timer. */
  headerGone(): void {
    this.#headerTimer.done();
  }

  /** The connection was torn down. */
  closed(conn: HeaderHolder): void {
    this.#open.delete(conn);
  }

  get logger(): Logger {
    return this.#logger;
  }
}

/**
 * One timer for every connection of an outbound that still holds back its request header. Each
 * waits the same time, so they are due in the order they were added: a FIFO whose head sets the
 * timer. A connection whose first payload came is left in the queue (it is skipped when reached);
 * once none is waiting the timer stops and the queue is dropped. A timer per connection cost a
 * setTimeout/clearTimeout pair (and its Timeout object) on every new connection.
 */
class HeaderTimer {
  readonly #wait: number;
  #queue: HeaderHolder[] = [];
  #head = 0;
  /** Connections in the queue still holding their header. */
  #waiting = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(wait: number) {
    this.#wait = wait;
  }

  add(conn: HeaderHolder): void {
    if (!conn.holdsHeader) return;
    conn.headerDue = performance.now() + this.#wait;
    this.#queue.push(conn);
    this.#waiting++;
    if (this.#timer === undefined) this.#arm(conn.headerDue);
  }

  /** One queued connection stopped waiting (its header left with its first write, or it closed). */
  done(): void {
    if (--this.#waiting > 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#head = 0;
  }

  #arm(due: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(0, due - performance.now()));
  }

  #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    const queue = this.#queue;
    // Bounded by the queue's length; every connection leaves it at most once.
    while (this.#head < queue.length) {
      const conn = queue[this.#head];
      // A timer may fire a little early; a millisecond of slack keeps it from re-arming for 0 ms.
      if (conn.holdsHeader && conn.headerDue > now + 1) break;
      queue[this.#head++] = undefined!;
      // Calls done() for the connection, which may empty the queue.
      if (conn.holdsHeader) conn.sendHeaderAlone();
      if (this.#queue !== queue) return;
    }
    if (this.#head >= 1024 && this.#head * 2 >= queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#head < this.#queue.length) this.#arm(this.#queue[this.#head].headerDue);
  };
}

/** A connection as the outbound's {@link HeaderTimer} and close() see it. */
interface HeaderHolder extends Duplex {
  /** When the header must leave alone, if the client is still silent (HeaderTimer's clock). */
  headerDue: number;
  readonly holdsHeader: boolean;
  /** The client stayed silent: the header goes alone. */
  sendHeaderAlone(): void;
}

/**
 * One proxied connection over one transport stream.
 *
 * Sending: the first write carries header + payload in one chunk; if the client writes nothing
 * within {@link FIRST_PAYLOAD_WAIT_MS} the header goes alone, so servers that speak first still get
 * the request. Closing half-closes the transport stream. Receiving: the payload after the response
 * header, ending as soon as the transport stream ends. For UDP, one datagram per chunk both ways,
 * length-framed on the wire.
 *
 * For TCP and Mux the connection is also a {@link HeldDuplex}: `reader` and `writer` work on the
 * transport stream's own reader and writer — the relay uses them, so no ReadableStream or
 * WritableStream is made per connection, and once the response header is through, reads and
 * writes go straight to the transport. `readable`/`writable` (the only ends for UDP) are streams
 * made on first use. A consumer uses one pair or the other, not both.
 */
class VlessConnection implements HeaderHolder, Partial<HeldDuplex> {
  headerDue = 0;
  readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #inner: Duplex;
  readonly #owner: VlessOutbound;
  readonly #dest: Destination;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #stripper = new ResponseHeaderStripper(VLESS_VERSION);
  readonly #packets: UdpPacketDecoder | null;
  #header: Uint8Array | null;
  #closed = false;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /**
   * Writes reach the transport stream as they are (or as a copy, header in front): done with a
   * chunk exactly when the transport is.
   */
  get copiesWrites(): boolean {
    return this.#inner.copiesWrites === true;
  }

  constructor(
    inner: Duplex,
    header: Uint8Array,
    udp: boolean,
    dest: Destination,
    owner: VlessOutbound,
  ) {
    this.#inner = inner;
    this.#header = header;
    this.#dest = dest;
    this.#owner = owner;
    this.#packets = udp ? new UdpPacketDecoder() : null;
    this.#writer = inner.writable.getWriter();
    this.#reader = inner.readable.getReader();
    if (!udp) {
      this.reader = new HeldReader(this, this.#reader);
      this.writer = new HeldWriter(this, this.#writer);
    }
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>(new Source(this), {
      highWaterMark: 0,
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>(new Sink(this));
  }

  /** True once the response header has been read whole: every further chunk is payload. */
  get headerRead(): boolean {
    return this.#stripper.header !== null;
  }

  /**
   * Reads transport chunks until one carries payload (the response header stripped), or EOF.
   * For TCP and Mux; rejects with an explanation when the server cuts us off before the header.
   */
  async readPayload(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const stripper = this.#stripper;
    // Each round consumes one transport chunk; it repeats only while chunks carry header bytes,
    // so it ends at EOF at the latest.
    for (;;) {
      const result = await this.#readInner();
      if (result.done) {
        this.#finish();
        return result;
      }
      let payload: Uint8Array;
      try {
        payload = stripper.header === null ? stripper.push(result.value) : result.value;
      } catch (err) {
        this.close();
        throw err;
      }
      if (payload.byteLength > 0) return { done: false, value: payload };
    }
  }

  async #readInner(): Promise<ReadableStreamReadResult<Uint8Array>> {
    try {
      return await this.#reader.read();
    } catch (err) {
      this.close();
      // A server refusing us (wrong user id) may cut the transport rather than end it cleanly
      // (a TLS close without close_notify, a TCP reset): say what that means.
      if (this.#stripper.header === null && isCut(err)) {
        throw new Error(
          "server closed the connection before sending the VLESS response header " +
            "(wrong user id, target unreachable, or not a VLESS server)",
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** EOF from the transport: fails when it cut a response header or a datagram short. */
  #finish(): void {
    try {
      this.#stripper.finish();
      this.#packets?.finish();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get holdsHeader(): boolean {
    return this.#header !== null;
  }

  #takeHeader(): Uint8Array | null {
    const h = this.#header;
    if (h === null) return null;
    this.#header = null;
    this.#owner.headerGone();
    return h;
  }

  sendHeaderAlone(): void {
    const h = this.#takeHeader();
    // A failure here fails the next write or close too, which is where the caller hears of it.
    if (h) this.#writer.write(h).catch(ignore);
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    let data = chunk;
    if (this.#packets) {
      if (chunk.byteLength === 0) return;
      try {
        data = encodeUdpPacket(chunk);
      } catch (err) {
        // UDP is lossy: drop the datagram, keep the association.
        this.#owner.logger.warn(
          `vless: ${formatDestination(this.#dest)}: dropped a datagram: ${(err as Error).message}`,
        );
        return;
      }
    }
    if (this.#header !== null) data = this.withHeader(data);
    // Wait for room in the transport's queue, not for the bytes to be consumed: backpressure
    // still holds, and a failed write errors the stream, failing the next write or close.
    const writer = this.#writer;
    if ((writer.desiredSize ?? 0) > 0) {
      writer.write(data).catch(ignore);
      return;
    }
    return writer.ready.then(() => {
      writer.write(data).catch(ignore);
    });
  }

  /** The chunk to send for `chunk`: with the request header in front if it is still held. */
  withHeader(chunk: Uint8Array): Uint8Array {
    const h = this.#takeHeader();
    if (h === null) return chunk;
    const first = new Uint8Array(h.byteLength + chunk.byteLength);
    first.set(h);
    first.set(chunk, h.byteLength);
    return first;
  }

  async closeWritable(): Promise<void> {
    const h = this.#takeHeader();
    if (h) this.#writer.write(h).catch(ignore);
    await this.#writer.close();
  }

  abortWritable(reason: unknown): void {
    this.#takeHeader();
    this.#writer.abort(reason).catch(ignore);
    this.close();
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const packets = this.#packets;
    if (!packets) {
      const result = await this.readPayload();
      if (result.done) controller.close();
      else controller.enqueue(result.value);
      return;
    }
    // Each round consumes one transport chunk; it repeats only while chunks carry no whole
    // datagram (header bytes, partial datagrams), so it ends at EOF at the latest.
    for (;;) {
      const result = await this.#readInner();
      if (result.done) {
        this.#finish();
        controller.close();
        return;
      }
      let payload = result.value;
      if (this.#stripper.header === null) {
        try {
          payload = this.#stripper.push(payload);
        } catch (err) {
          this.close();
          throw err;
        }
      }
      const got = packets.push(payload);
      for (const p of got) controller.enqueue(p);
      if (got.length > 0) return;
    }
  }

  cancelReadable(reason: unknown): void {
    this.#reader.cancel(reason).catch(ignore);
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#takeHeader();
    this.#inner.close();
    this.#owner.closed(this);
  }
}

/** The writable's sink: VlessConnection's methods, called with the sink as `this`. */
class Sink implements UnderlyingSink<Uint8Array> {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection) {
    this.#conn = conn;
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#conn.write(chunk);
  }
  close(): Promise<void> {
    return this.#conn.closeWritable();
  }
  abort(reason: unknown): void {
    this.#conn.abortWritable(reason);
  }
}

/** The readable's source. */
class Source implements UnderlyingDefaultSource<Uint8Array> {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection) {
    this.#conn = conn;
  }
  pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    return this.#conn.pull(controller);
  }
  cancel(reason: unknown): void {
    this.#conn.cancelReadable(reason);
  }
}

/**
 * The relay's reader of a TCP/Mux connection: payload after the response header, then the
 * transport's own reads as they are.
 */
class HeldReader implements ReadableStreamDefaultReader<Uint8Array> {
  readonly #conn: VlessConnection;
  readonly #inner: ReadableStreamDefaultReader<Uint8Array>;
  constructor(conn: VlessConnection, inner: ReadableStreamDefaultReader<Uint8Array>) {
    this.#conn = conn;
    this.#inner = inner;
  }
  get closed(): Promise<void> {
    return this.#inner.closed;
  }
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    return this.#conn.headerRead ? this.#inner.read() : this.#conn.readPayload();
  }
  cancel(reason?: unknown): Promise<void> {
    this.#inner.cancel(reason).catch(ignore);
    this.#conn.close();
    return Promise.resolve();
  }
  releaseLock(): void {
    this.#inner.releaseLock();
  }
}

/**
 * The relay's writer of a TCP/Mux connection: the request header goes in front of the first
 * chunk (or alone, at close or after the first-payload wait); then straight to the transport,
 * whose `ready` is the backpressure.
 */
class HeldWriter extends ForwardingWriter {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection, inner: WritableStreamDefaultWriter<Uint8Array>) {
    super(inner);
    this.#conn = conn;
  }
  override write(chunk: Uint8Array): Promise<void> {
    return this.inner.write(this.#conn.holdsHeader ? this.#conn.withHeader(chunk) : chunk);
  }
  override close(): Promise<void> {
    return this.#conn.closeWritable();
  }
  override abort(reason?: unknown): Promise<void> {
    this.#conn.abortWritable(reason);
    return Promise.resolve();
  }
}

type AttemptResult = { ok: true; duplex: Duplex } | { ok: false; error: Error };

/**
 * One connection attempt: the transport's open() under the attempt deadline, the caller's signal
 * and the outbound's close. `result` never rejects. A loser that succeeds closes what it got.
 */
class Attempt {
  readonly index: number;
  readonly number: number;
  readonly where: string;
  readonly result: Promise<AttemptResult>;
  #lost = false;

  constructor(owner: VlessOutbound, index: number, number: number, signal?: AbortSignal) {
    this.index = index;
    this.number = number;
    const server = owner.server(index);
    this.where = formatHostPort(server.address, server.port);
    this.result = this.#run(owner, server, signal);
  }

  /** The race is over without this attempt: whatever it gets is closed. */
  lose(): void {
    this.#lost = true;
  }

  async #run(
    owner: VlessOutbound,
    server: VlessServer,
    signal: AbortSignal | undefined,
  ): Promise<AttemptResult> {
    const deadline = new AbortController();
    const limit = owner.attemptTimeout;
    const timer = limit > 0
      ? setTimeout(
        () => deadline.abort(new Error(`no connection within ${limit} ms (attempt deadline)`)),
        limit,
      )
      : undefined;
    const signals = [deadline.signal, owner.closing];
    if (signal) signals.push(signal);
    const started = performance.now();
    try {
      const duplex = await owner.transport.open(server, AbortSignal.any(signals));
      owner.attempted(this.index, { ms: performance.now() - started });
      if (this.#lost || signal?.aborted || owner.closing.aborted) {
        duplex.close();
        return { ok: false, error: new Error("lost the race") };
      }
      return { ok: true, duplex };
    } catch (err) {
      // The caller or the outbound gave up: that says nothing about the server.
      if (signal?.aborted || owner.closing.aborted) {
        return { ok: false, error: toError(signal?.aborted ? signal.reason : err) };
      }
      const error = deadline.signal.aborted ? deadline.signal.reason as Error : toError(err);
      owner.attempted(this.index, { error });
      return { ok: false, error };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The first of `promises` to settle (they never reject), or undefined after `ms` (when given);
 * rejects when `signal` aborts.
 */
function waitFirst<T>(
  promises: Promise<T>[],
  ms: number | undefined,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  signal?.throwIfAborted();
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = ms === undefined ? undefined : setTimeout(() => finish(undefined), ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const finish = (v: T | undefined) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(v);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    for (const p of promises) p.then(finish);
  });
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function ignore(): void {}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Errors of a transport cut short rather than ended: no TLS close_notify, a TCP reset. */
function isCut(err: unknown): boolean {
  return err instanceof Deno.errors.UnexpectedEof || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe;
}
