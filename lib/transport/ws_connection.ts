/**
 * One open WebSocket (after the opening handshake) as a {@link Duplex} of bytes, for either role.
 * Every chunk written is one binary message (masked by a client, RFC 6455 §5.3); every data frame
 * read is handed on as bytes, whatever its opcode or fragmentation.
 *
 * How a proxied connection ends, as v2ray does it: a WebSocket has no half-close, so closing
 * `writable` sends nothing on the client side (v2ray's client never tells the server its uplink
 * ended; the server's uplinkOnly timer does), and on the server side it starts the close: the Close
 * frame follows the last data byte only after {@link WS_CLOSE_HOLD_MS}. v2ray 4.34's client throws
 * away bytes it has read but not yet delivered when the Close frame arrives, so a server that
 * closes right after its last byte loses the end of downloads to a lagging v2ray client; v2ray's
 * own server holds about a second (its uplinkOnly policy), we hold longer.
 *
 * The other way, every received byte is delivered before a Close frame is acted on: `readable`
 * gives the bytes, then EOF; the Close is answered at once (§5.5.1 "the endpoint MUST send a Close
 * frame in response") and the socket is closed. Only a Close of 1000 (or with no code) is an EOF:
 * any other code, or the socket ending without a Close frame (§7.1.5: 1006), errors `readable`, so
 * a stream cut short is never passed on as complete (v2ray 4.34 closes with 1000 on every end).
 * `reset()`, the relay's abortive close, sends 1011 for the same reason the other way.
 *
 * Backpressure: the socket is read when `readable` has a reader waiting, and ahead of it by at
 * most {@link READ_AHEAD_BYTES} (bulk reads only), so a slow consumer slows the peer through TCP. Protocol errors close with 1002, oversized frames or messages with
 * 1009 (§7.4.1), each logged with its reason.
 */
import type { Duplex, HeldDuplex } from "../net/duplex.ts";
import type { Logger } from "../log.ts";
import {
  applyMask,
  type CloseBody,
  CloseCode,
  closeCodeFor,
  encodeCloseBody,
  encodeFrame,
  frameHeaderLength,
  Opcode,
  writeFrameHeader,
} from "../ws/frame.ts";
import { FrameParser, type FrameSink } from "../ws/frame_parser.ts";
import { DeliveryPacer } from "./delivery_pacer.ts";
import { ReadSlab } from "./read_slab.ts";

/**
 * How long a server keeps the WebSocket open after the downlink's last byte before it sends its
 * Close frame (unless the client closes first). v2ray 4.34's server holds for its uplinkOnly
 * timeout, 1 s by default; twice that leaves a lagging v2ray client time to deliver what it holds.
 */
export const WS_CLOSE_HOLD_MS = 2_000;
/** After our Close frame, how long we wait for the peer's before closing the socket. */
export const WS_CLOSE_WAIT_MS = 2_000;

export interface WsConnectionOptions {
  role: "client" | "server";
  /** Keep-alive: a Ping after this many ms without a frame either way; 0 = never. */
  pingIntervalMs?: number;
  /** Bytes delivered before anything read from the socket (early data the server took). */
  earlyData?: Uint8Array;
  /** Server: the hold before our Close frame (default WS_CLOSE_HOLD_MS). */
  closeHoldMs?: number;
  maxFrameBytes?: number;
  maxMessageBytes?: number;
  /** Protocol errors are logged here (at info), naming `label`. */
  logger?: Logger;
  /** Who the peer is, for logs: "ws to 1.2.3.4:443", "ws from 1.2.3.4:5678". */
  label?: string;
  /** The socket's writes copy the bytes (a real socket): write buffers may be reused. */
  copiesWrites?: boolean;
}

/** A write buffer bigger than this is not kept for reuse: an idle connection holds at most this. */
const SCRATCH_MAX = 64 * 1024 + 16;
/**
 * Reads from a `read(buf)` socket land in pooled buffers (ReadSlab), handed out as lent views; a
 * buffer is left once less than READ_MIN is free. A read that comes back small goes into a small
 * buffer of its own next time, so a quiet connection's pending read holds no pooled buffer.
 */
const READ_MIN = 8 * 1024;
const SMALL_READ = 2 * 1024;
/**
 * Pooled buffers out at once: the one being read into, the chunks the relay holds (one being
 * written, one waiting), one kept by the VLESS response header's stripping, and slack.
 */
const READ_BUFFERS = 6;
/**
 * While the consumer is busy with the last chunk, bulk reads go on into the pooled buffer that holds
 * the pending payload, up to this much (or what fits), which the next pull takes as one chunk. Over TLS one read is one record's worth, and
 * v2ray's server sends ~4 KiB records: handing each on alone cost a relay step and a socket write
 * per 4 KiB (profiled: the writes to the SOCKS client were the largest cost of a download).
 */
const READ_AHEAD_BYTES = 64 * 1024;

/**
 * The socket under a WebSocket: held ends, and optionally `read(buf)` (a Deno.Conn's read) with the
 * bytes already read past the handshake. Over Deno's TLS one read returns one record, however large
 * the buffer and however many records wait (measured: 4 KiB records, 256 KiB buffer, 4 KiB reads),
 * so `readable`'s chunks would be record-sized (v2ray's server: 2-4 KiB); reading into our own
 * buffers lets the payloads of many records gather in one run, handed on as one chunk.
 */
export interface WsSocket extends HeldDuplex {
  read?(buf: Uint8Array): Promise<number | null>;
  /** Bytes read past the handshake, before `read()`'s. */
  prefix?: Uint8Array;
}

export class WsConnection implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly copiesWrites = true;
  readonly #socket: WsSocket;
  readonly #slab = new ReadSlab(READ_BUFFERS);
  readonly #pacer = new DeliveryPacer(() => {
    if (this.#wanted) this.#deliver();
  });
  #bulk = false;
  readonly #role: "client" | "server";
  readonly #parser: FrameParser;
  readonly #options: WsConnectionOptions;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** A reader is waiting for bytes: resolved by pull(), awaited by the read loop. */
  #demand = Promise.withResolvers<void>();
  #wanted = false;
  /** The readable was cancelled or closed: bytes read now are dropped. */
  #discarding = false;
  #readableDone = false;
  /** Our Close frame is out (or the socket is gone): nothing more may be written. */
  #sentClose = false;
  #peerClosed = false;
  /** The peer's Close said the stream did not end normally: `readable` fails with this. */
  #peerCloseError: Error | undefined;
  /** A Pong write has not settled yet: later Pings wait in #pongNext (only the latest one). */
  #pongInFlight = false;
  #pongNext: Uint8Array | undefined;
  /** The writable was closed cleanly: the data that was meant to go has gone. */
  #writeEnded = false;
  #lingering = false;
  #tornDown = false;
  #lastActivity = Date.now();
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #lingerDone = Promise.withResolvers<void>();
  #scratch: Uint8Array | undefined;
  /**
   * Payload read but not yet handed on, compacted into one run of `#pending`'s buffer (over the
   * frame headers between pieces) from #pendStart to #pendEnd; it may span several reads of a buffer.
   */
  #pending: Uint8Array | undefined;
  #pendStart = 0;
  #pendEnd = 0;
  readonly #sink: FrameSink;
  /** Settles when the socket is closed. */
  readonly closed: Promise<void>;
  readonly #closedResolvers = Promise.withResolvers<void>();

  constructor(socket: WsSocket, options: WsConnectionOptions) {
    this.#socket = socket;
    this.#role = options.role;
    this.#options = options;
    this.closed = this.#closedResolvers.promise;
    this.#parser = new FrameParser({
      // We read the peer's frames: a server reads a client's.
      role: options.role === "client" ? "client" : "server",
      maxFrameBytes: options.maxFrameBytes,
      maxMessageBytes: options.maxMessageBytes,
    });
    this.#sink = {
      onData: (piece) => this.#onData(piece),
      onPing: (payload) => this.#answerPing(payload),
      onPong: () => {},
      onClose: (body) => this.#onPeerClose(body),
    };
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
        if (options.earlyData && options.earlyData.byteLength > 0) c.enqueue(options.earlyData);
      },
      pull: () => {
        if (this.#holds() || !this.#deliver()) this.#wanted = true;
        this.#demand.resolve();
      },
      cancel: () => {
        this.#discarding = true;
        this.#readableDone = true;
        this.#demand.resolve();
        this.close();
      },
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#writeData(chunk),
      close: () => this.#endWrites(),
      abort: () => this.close(),
    });
    void this.#readLoop();
    this.#armPing();
  }

  async #readLoop(): Promise<void> {
    const reader = this.#socket.reader;
    const read = this.#socket.read;
    try {
      for (;;) {
        while (!this.#discarding && !this.#tornDown && !this.#wanted && !this.#mayReadAhead()) {
          await this.#demand.promise;
          this.#demand = Promise.withResolvers<void>();
        }
        if (this.#tornDown) return;
        let chunk: Uint8Array | null;
        if (read !== undefined && !this.#socket.prefix) {
          // Bulk reads come here, one per TLS record: no async function of ours in between.
          const buf = this.#readBuffer();
          const n = await read(buf);
          chunk = n === null ? null : this.#filled(buf, n);
        } else {
          chunk = await this.#readChunk(reader);
        }
        if (chunk === null) break;
        this.#lastActivity = Date.now();
        this.#push(chunk);
        if (this.#peerClosed) return;
      }
      // What the peer sent before it went is delivered before the end (or lost with the error).
      this.#deliver();
      // EOF without a Close frame (§7.1.5: "_The WebSocket Connection Close Code_ is considered to
      // be 1006"): the peer died or was cut off, which is not an end of the stream — unless our
      // Close went first, after which the peer may just hang up.
      if (this.#sentClose) this.#endReadable();
      else {
        this.#failReadable(
          new Deno.errors.UnexpectedEof(
            `${this.#options.label ?? "WebSocket"}: the connection ended without a Close frame`,
          ),
        );
      }
      if (this.#lingering) this.#lingerDone.resolve();
      else this.#teardown();
    } catch (err) {
      if (this.#tornDown) return;
      if (err instanceof SyntaxError || err instanceof RangeError) {
        this.#options.logger?.info(
          `${this.#options.label ?? "WebSocket"}: closing with ${
            closeCodeFor(err)
          }: ${err.message}`,
        );
        this.#failReadable(err);
        this.#sendClose(closeCodeFor(err), err.message);
        this.#teardownSoon();
        return;
      }
      this.#failReadable(err);
      this.#teardown();
    }
  }

  /** The next bytes off the socket, null at EOF. */
  async #readChunk(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | null> {
    const socket = this.#socket;
    if (socket.prefix) {
      const p = socket.prefix;
      socket.prefix = undefined;
      if (p.byteLength > 0) return p;
    }
    if (!socket.read) {
      const r = await reader.read();
      return r.done ? null : r.value;
    }
    const buf = this.#readBuffer();
    const n = await socket.read(buf);
    return n === null ? null : this.#filled(buf, n);
  }

  /** Where the next `read(buf)` goes: the pooled buffer's free part (bulk), or a small buffer. */
  #readBuffer(): Uint8Array {
    const slab = this.#slab;
    if (this.#bulk) {
      // What is pending goes on before its buffer is left: chunks are lent whole.
      if (slab.room < READ_MIN && this.#pending && slab.holds(this.#pending)) this.#deliver();
      return slab.space(READ_MIN);
    }
    // Gone quiet: the pooled buffer goes back once what was read into it has gone on.
    if (this.#pending && slab.holds(this.#pending)) this.#deliver();
    slab.release();
    return new Uint8Array(SMALL_READ);
  }

  /** `n` bytes were read into `buf` (from #readBuffer()): those bytes. */
  #filled(buf: Uint8Array, n: number): Uint8Array {
    if (this.#bulk) this.#slab.fill(n);
    this.#bulk = n >= SMALL_READ;
    return buf.subarray(0, n);
  }

  /**
   * Reading on with no reader waiting: only bulk reads into the buffer that holds what is pending
   * (so it stays one run), with room left, and less than READ_AHEAD_BYTES pending.
   */
  #mayReadAhead(): boolean {
    if (!this.#bulk || !this.#socket.read || this.#socket.prefix) return false;
    if (this.#pending === undefined) return true;
    return this.#slab.holds(this.#pending) && this.#slab.room >= READ_MIN &&
      this.#pendEnd - this.#pendStart < READ_AHEAD_BYTES;
  }

  /**
   * Parses one socket chunk; a waiting reader gets all the payload pending as one chunk, unless
   * the pacer holds it for more (a bulk download: see DeliveryPacer).
   */
  #push(chunk: Uint8Array): void {
    this.#parser.push(chunk, this.#sink);
    if (this.#wanted && !this.#holds()) this.#deliver();
    if (!this.#peerClosed) return;
    this.#deliver();
    if (this.#peerCloseError) this.#failReadable(this.#peerCloseError);
    else this.#endReadable();
  }

  /** Whether what is pending waits for more: bulk reads with room to go on, and the pacer says so. */
  #holds(): boolean {
    return this.#pending !== undefined && this.#mayReadAhead() &&
      this.#pacer.hold(this.#pendEnd - this.#pendStart);
  }

  /** Enqueues the pending payload, if any; true if it did. */
  #deliver(): boolean {
    const pending = this.#pending;
    if (pending === undefined) return false;
    this.#pending = undefined;
    if (this.#discarding) return false;
    // The reader gets this chunk; the next one waits for the next pull().
    this.#wanted = false;
    const chunk = pending.subarray(this.#pendStart, this.#pendEnd);
    this.#slab.lend(chunk);
    this.#pacer.delivered(chunk.byteLength);
    this.#controller.enqueue(chunk);
    return true;
  }

  /**
   * Moves each payload piece down to follow the pending bytes (over the frame headers between
   * them), so reads full of small frames (v2ray writes 2 KiB messages) reach the consumer as one
   * chunk rather than one per frame.
   */
  #onData(piece: Uint8Array): void {
    let pending = this.#pending;
    if (pending !== undefined && pending.buffer !== piece.buffer) {
      // Not one run with what is pending (not expected: read-ahead stays in one buffer).
      this.#deliver();
      pending = undefined;
    }
    if (pending === undefined) {
      this.#pending = new Uint8Array(piece.buffer);
      this.#pendStart = piece.byteOffset;
      this.#pendEnd = piece.byteOffset + piece.byteLength;
      return;
    }
    const at = piece.byteOffset;
    if (at !== this.#pendEnd) pending.copyWithin(this.#pendEnd, at, at + piece.byteLength);
    this.#pendEnd += piece.byteLength;
  }

  #onPeerClose(body: CloseBody): void {
    this.#peerClosed = true;
    if (body.code !== CloseCode.Normal && body.code !== CloseCode.NoStatus) {
      // 1001 (dray's close() before the data ended), 1011 (reset()), or an error of the peer's.
      const reason = body.reason ? `: ${body.reason}` : "";
      this.#peerCloseError = new Deno.errors.ConnectionReset(
        `${this.#options.label ?? "WebSocket"}: the peer closed with ${body.code}${reason}`,
      );
    }
    // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame,
    // the endpoint MUST send a Close frame in response. (When sending a Close frame in response,
    // the endpoint typically echos the status code it received.)"
    const code = body.code === CloseCode.NoStatus ? CloseCode.Normal : body.code;
    if (this.#lingering) {
      this.#sendClose(code);
      this.#lingerDone.resolve();
      return;
    }
    this.#sendClose(code);
    // §7.1.1: after both Close frames the server closes TCP first; a client that waits for that
    // only delays freeing the socket, v2ray's server closes right after its Close frame anyway.
    this.#teardownSoon();
  }

  #endReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    try {
      this.#controller.close();
    } catch {
      // Already cancelled by the consumer.
    }
  }

  #failReadable(err: unknown): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    try {
      this.#controller.error(err);
    } catch {
      // Already cancelled.
    }
  }

  async #writeData(chunk: Uint8Array): Promise<void> {
    if (this.#sentClose || this.#tornDown) {
      throw new Deno.errors.BrokenPipe("WebSocket is closing");
    }
    if (chunk.byteLength === 0) return;
    this.#lastActivity = Date.now();
    const n = chunk.byteLength;
    const masked = this.#role === "client";
    const headerLength = frameHeaderLength(n, masked);
    // Frame in one buffer so header and payload leave in one write (one TLS record when small).
    // Where the payload starts 8-byte aligned the client's masking goes a word at a time.
    const pad = masked ? (8 - (headerLength & 7)) & 7 : 0;
    const size = pad + headerLength + n;
    let buf: Uint8Array;
    // Bulk writes reuse one buffer (the socket copies what it is given); small ones get their own,
    // and let the big one go, so a quiet connection holds none.
    const reuse = this.#options.copiesWrites === true && size >= 4096 && size <= SCRATCH_MAX;
    if (reuse) {
      if (!this.#scratch || this.#scratch.byteLength < size) {
        this.#scratch = new Uint8Array(Math.max(size, 16 * 1024));
      }
      buf = this.#scratch;
    } else {
      buf = new Uint8Array(size);
      this.#scratch = undefined;
    }
    const mask = masked ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    writeFrameHeader(buf, pad, { fin: true, opcode: Opcode.Binary, payloadLength: n, mask });
    const payload = buf.subarray(pad + headerLength, size);
    // Copied: the chunk is done with once this write resolves (copiesWrites), and the relay
    // gives it back then.
    payload.set(chunk);
    if (mask) applyMask(payload, mask, 0);
    const frame = buf.subarray(pad, size);
    await this.#socket.writer.write(frame);
  }

  /** Queues a control frame; the promise settles (never rejects) when its write does. */
  #sendControl(opcode: number, payload: Uint8Array): Promise<void> {
    if (this.#sentClose || this.#tornDown) return Promise.resolve();
    this.#lastActivity = Date.now();
    const mask = this.#role === "client" ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    return this.#socket.writer.write(encodeFrame(opcode, payload, { mask })).catch(() => {});
  }

  /**
   * At most one Pong is ever waiting on the socket: a peer that sends Pings and never reads would
   * otherwise queue one Pong per Ping in memory. §5.5.3: "If an endpoint receives a Ping frame and
   * has not yet sent Pong frame(s) in response to previous Ping frame(s), the endpoint MAY elect
   * to send a Pong frame for only the most recently processed Ping frame."
   */
  #answerPing(payload: Uint8Array): void {
    if (this.#pongInFlight) {
      // A copy: the payload is a view into a read buffer that will be reused.
      this.#pongNext = payload.slice();
      return;
    }
    this.#pongInFlight = true;
    void this.#sendControl(Opcode.Pong, payload).then(() => {
      this.#pongInFlight = false;
      const next = this.#pongNext;
      this.#pongNext = undefined;
      if (next) this.#answerPing(next);
    });
  }

  #sendClose(code: number, reason = ""): void {
    if (this.#sentClose || this.#tornDown) return;
    void this.#sendControl(Opcode.Close, encodeCloseBody(code, reason));
    // §5.5.1: "After sending a Close frame, the endpoint MUST NOT send any further data frames."
    this.#sentClose = true;
  }

  /** The writable closed: nothing for a client; a server starts the held close. */
  #endWrites(): void {
    this.#writeEnded = true;
    if (this.#role === "server") this.#linger();
  }

  /**
   * Server, after the last data byte: keep reading (and dropping) for the hold, then Close, then
   * wait for the client's Close (bounded), then close the socket. Runs on after `close()`.
   */
  #linger(): void {
    if (this.#lingering || this.#tornDown) return;
    if (this.#peerClosed) return this.#teardownSoon();
    this.#lingering = true;
    const hold = this.#options.closeHoldMs ?? WS_CLOSE_HOLD_MS;
    (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const held = new Promise<void>((r) => (timer = setTimeout(r, hold)));
      await Promise.race([held, this.#lingerDone.promise]);
      clearTimeout(timer);
      this.#sendClose(CloseCode.Normal);
      if (!this.#peerClosed) {
        this.#lingerTimer = setTimeout(() => this.#lingerDone.resolve(), WS_CLOSE_WAIT_MS);
        await this.#lingerDone.promise;
      }
      this.#teardown();
    })();
  }

  /** Sends whatever is queued (our Close), then closes the socket. */
  #teardownSoon(): void {
    if (this.#tornDown) return;
    // The writer's queue is in order: once an empty write resolves, the Close went out before it.
    this.#socket.writer.write(new Uint8Array(0)).catch(() => {}).finally(() => this.#teardown());
  }

  #armPing(): void {
    const every = this.#options.pingIntervalMs ?? 0;
    if (every <= 0 || this.#tornDown) return;
    const check = () => {
      this.#pingTimer = undefined;
      if (this.#tornDown || this.#sentClose) return;
      const idle = Date.now() - this.#lastActivity;
      // §5.5.2: "A Ping frame MAY be sent at any time after the connection is established".
      if (idle >= every) void this.#sendControl(Opcode.Ping, new Uint8Array(0));
      this.#pingTimer = setTimeout(check, idle >= every ? every : every - idle);
    };
    this.#pingTimer = setTimeout(check, every);
  }

  #teardown(): void {
    if (this.#tornDown) return;
    this.#tornDown = true;
    this.#sentClose = true;
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#pacer.close();
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#lingerDone.resolve();
    this.#demand.resolve();
    this.#endReadable();
    this.#socket.close();
    this.#closedResolvers.resolve();
  }

  /**
   * Ends the connection. After a clean end of the writable on the server this is the held close
   * (it runs on in the background); otherwise our Close frame (1000, or 1001 if the writable did
   * not end cleanly) goes out and the socket is closed. Never throws.
   */
  close(): void {
    if (this.#tornDown) return;
    this.#discarding = true;
    this.#demand.resolve();
    if (this.#role === "server" && this.#writeEnded) {
      this.#linger();
      return;
    }
    this.#sendClose(this.#writeEnded || this.#peerClosed ? CloseCode.Normal : CloseCode.GoingAway);
    this.#teardownSoon();
  }

  /**
   * The abortive close (`Duplex.reset`), for a stream cut short: Close 1011 instead of 1000/1001,
   * so the peer errors its stream rather than ending it, then the socket closes. Never throws.
   */
  reset(): void {
    if (this.#tornDown) return;
    this.#discarding = true;
    this.#demand.resolve();
    // §7.4.1: 1011 "indicates that a server is terminating the connection because it encountered
    // an unexpected condition that prevented it from fulfilling the request" (either role uses it).
    this.#sendClose(CloseCode.InternalError, "stream cut");
    this.#teardownSoon();
  }
}
