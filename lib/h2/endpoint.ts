/**
 * What both HTTP/2 roles (RFC 9113) share: the preface and SETTINGS, one read loop, one writer, the
 * frame dispatch, flow control, PING, GOAWAY both ways, stream errors and shutdown. The client
 * (connection.ts) and the server (server_connection.ts) are an {@link EndpointRole} each: they say
 * what a HEADERS opening a stream means, what the peer's resets and GOAWAY mean to them, and which
 * SETTINGS they send. Stream ids tell the roles apart the way RFC 9113 §5.1.1 does: a client opens
 * odd ones, a server even ones (never: neither role pushes).
 *
 * Only this file reads and writes the socket, and only this file catches `ConnectionError`
 * (→ GOAWAY, every stream fails) and `StreamError` (→ RST_STREAM, one stream fails). Each MUST of
 * RFC 9113 it enforces is checked here once, for both roles.
 */
import type { Duplex } from "../net/duplex.ts";
import { MAX_QUEUED_URGENT } from "./abuse_limit.ts";
import { ConnectionFlow, type FlowStream } from "./connection_flow.ts";
import { ConnectionError, ErrorCode, StreamError } from "./errors.ts";
import {
  checkPriority,
  CONNECTION_PREFACE,
  encodeDataHeader,
  encodeGoAway,
  encodeHeaderBlock,
  encodeRstStream,
  encodeSettings,
  encodeSettingsAck,
  type FrameHeader,
  FrameType,
  parseData,
  parseGoAway,
  parsePing,
  parsePriority,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
} from "./frame.ts";
import { FrameSplitter } from "./frame_splitter.ts";
import { FrameWriter, type TakenListener } from "./frame_writer.ts";
import { describeDebugData, encodeGoAwayFor, GOAWAY_WRITE_MS, goAwayCode } from "./go_away.ts";
import { HeaderBlockAssembler } from "./header_block.ts";
import { HealthCheck } from "./health_check.ts";
import { HpackDecoder, HpackEncoder } from "./hpack.ts";
import { type LocalSettings, PeerSettings, requireSettingsFirst } from "./settings.ts";
import { SocketReader } from "./socket_reader.ts";
import { StreamIds } from "./stream_ids.ts";
import { waitAtMost } from "../net/wait_at_most.ts";

/** RFC 9113 §5.1.1: stream ids are 31-bit. */
export const MAX_STREAM_ID = 2 ** 31 - 1;

/** What a stream needs from its connection: one shape for both roles' streams. */
export interface StreamHost<S> {
  /** Takes up to `want` bytes of send credit (stream, connection, max frame size); 0 = wait. */
  reserve(stream: S, want: number): number;
  /**
   * HPACK-encodes and queues a header block (encoding at queue time keeps HPACK state in order);
   * with `hold`, it waits to leave with the next frame queued (FrameWriter.hold).
   */
  queueHeaders(
    stream: S,
    fields: Array<[string, string]>,
    endStream: boolean,
    hold?: boolean,
  ): void;
  /** Queues a DATA frame; `notify.taken()` once its bytes have left the connection's queue. */
  queueData(stream: S, data: Uint8Array, endStream: boolean, notify?: TakenListener): void;
  /** Queues RST_STREAM; the stream has already failed itself. */
  queueReset(stream: S, code: number): void;
  /** The consumer read `n` body bytes (or they were dropped): return the credit. */
  consumed(stream: S, n: number, streamToo: boolean): void;
  /** The stream reached "closed". */
  streamClosed(stream: S): void;
}

/** What the endpoint needs of a stream (either role's). */
export interface EndpointStream extends FlowStream {
  /** A header block after the one that opened the stream (a response, trailers). */
  onHeaders(fields: Array<[string, string]>, endStream: boolean): void;
  /** A DATA frame; `flowLength` counts padding. */
  onData(data: Uint8Array, flowLength: number, endStream: boolean): void;
  fail(err: Error): void;
}

/** What differs between the client and the server (Rust h2's `Peer`). */
export interface EndpointRole<S extends EndpointStream> {
  /**
   * HEADERS on a new stream id the peer may open (above every one it used, its parity): start
   * serving it (`addStream`) or throw. Its block has been decoded.
   */
  openStream(streamId: number, fields: Array<[string, string]>, endStream: boolean): void;
  /** The peer reset `stream` (RST_STREAM). */
  onPeerReset(stream: S, code: number): void;
  /** We reset a stream over `err`, which the peer caused; the RST_STREAM is queued. */
  onStreamError(err: StreamError): void;
  /** The peer sent GOAWAY; `lastStreamId` is the lowest it announced so far. */
  onGoAway(code: number, lastStreamId: number, debug: string): void;
}

export interface EndpointOptions extends LocalSettings {
  /** We are the client: odd stream ids are ours, and our preface starts with the magic octets. */
  isClient: boolean;
  /** Names the peer in messages ("peer", "client"). */
  peerName: string;
  /** Our SETTINGS frame's values. */
  settings: Array<[number, number]>;
  /** The peer's SETTINGS, and its ACK of ours, must come within this. */
  settingsTimeout: number;
  /** Send a PING after this long without reading anything; 0 = off. */
  readIdleTimeout: number;
  /** Fail the connection when a PING is not answered within this. */
  pingTimeout: number;
}

export class H2Endpoint<S extends EndpointStream> implements StreamHost<S> {
  /** Resolves when the connection is gone, with what ended it (NO_ERROR for a clean end). */
  readonly closed: Promise<Error>;
  /** Resolves once the peer's SETTINGS arrived; rejects if the connection fails first. */
  readonly ready: Promise<void>;
  /** The peer's settings, which bound what we send. */
  readonly peer: PeerSettings;

  #duplex: Duplex;
  #role: EndpointRole<S>;
  #isClient: boolean;
  #peerName: string;
  #writer: FrameWriter;
  #splitter: FrameSplitter;
  #blocks: HeaderBlockAssembler;
  #encoder = new HpackEncoder({});
  #decoder: HpackDecoder;
  #flow: ConnectionFlow;
  #health: HealthCheck;
  #streams = new Map<number, S>();
  #ids: StreamIds;

  #prefaceLeft: number;
  #gotSettings = false;
  #gotSettingsAck = false;
  #settingsTimeout: number;
  #settingsTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;
  /** The last-stream-id of the GOAWAY we sent for a graceful close; new streams past it refused. */
  #goAwaySent: number | undefined;
  #peerGoAway: { lastStreamId: number; code: number } | undefined;
  #drained: (() => void) | undefined;
  #error: Error | undefined;
  #closing = false;
  #resolveClosed!: (e: Error) => void;
  #readDone: Promise<void>;

  constructor(duplex: Duplex, role: EndpointRole<S>, options: EndpointOptions) {
    this.#duplex = duplex;
    this.#role = role;
    this.#isClient = options.isClient;
    this.#peerName = options.peerName;
    this.#ids = new StreamIds(options.isClient);
    this.peer = new PeerSettings(this.#encoder, { isClient: options.isClient });
    this.#decoder = new HpackDecoder({ maxHeaderListSize: options.maxHeaderListSize });
    this.#blocks = new HeaderBlockAssembler(options.maxHeaderListSize);
    this.#splitter = new FrameSplitter(options.maxFrameSize);
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.#writer = new FrameWriter(duplex.writable, {
      // The socket failed under us: no GOAWAY can reach the peer any more.
      onError: (err) => {
        this.fail(
          new ConnectionError(
            ErrorCode.INTERNAL_ERROR,
            `write failed: ${(err as Error)?.message ?? err}`,
            { cause: err, initiator: "peer" },
          ),
        );
      },
      // A socket is done with a write's bytes when it resolves; an in-memory pipe is not.
      reuseBuffer: duplex.copiesWrites === true,
    });
    // RFC 9113 §3.4: "the client connection preface starts with a sequence of 24 octets ...
    // followed by a SETTINGS frame"; "The server connection preface consists of a potentially empty
    // SETTINGS frame that MUST be the first frame the server sends". Neither waits for the other's.
    if (this.#isClient) this.#writer.urgent(CONNECTION_PREFACE);
    this.#prefaceLeft = this.#isClient ? 0 : CONNECTION_PREFACE.byteLength;
    this.#writer.urgent(encodeSettings(options.settings));
    this.#flow = new ConnectionFlow(this.#writer, {
      windowSize: options.connectionWindowSize,
      peerName: options.peerName,
    });
    this.#health = new HealthCheck(this.#writer, {
      readIdleTimeout: options.readIdleTimeout,
      pingTimeout: options.pingTimeout,
      onFailure: (err) => this.fail(err),
    });
    this.#settingsTimeout = options.settingsTimeout;
    this.#settingsTimer = setTimeout(() => this.#settingsExpired(), options.settingsTimeout);
    this.#readDone = this.#readLoop();
  }

  /** Open streams (not yet closed both ways or reset). */
  get streams(): ReadonlyMap<number, S> {
    return this.#streams;
  }

  /** When bytes last arrived from the peer (performance.now() ms): liveness for deadlines. */
  get lastReadAt(): number {
    return this.#health.lastRead;
  }

  /** What failed the connection, once it is closing. */
  get error(): Error | undefined {
    return this.#error;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** The peer's GOAWAY, if it sent one: it opens no more streams and refused ours past the id. */
  get peerGoAway(): { lastStreamId: number; code: number } | undefined {
    return this.#peerGoAway;
  }

  /** Registers a stream just opened (by us, or by the peer's HEADERS in `openStream`). */
  addStream(stream: S): void {
    if (this.#ids.isLocal(stream.id)) this.#ids.openedLocal(stream.id);
    this.#streams.set(stream.id, stream);
  }

  /** Sends GOAWAY NO_ERROR with the last stream id processed and closes now; streams fail. */
  close(): void {
    this.fail(new ConnectionError(ErrorCode.NO_ERROR, "connection closed by us"));
  }

  /**
   * Graceful close: GOAWAY NO_ERROR now (new streams are refused), open streams get up to
   * `graceMs` to finish, then the connection closes. Resolves once it is closed.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.#closing) return void await this.closed;
    if (this.#goAwaySent === undefined) {
      this.#goAwaySent = this.#ids.lastPeer;
      this.#writer.urgent(encodeGoAway(this.#goAwaySent, ErrorCode.NO_ERROR));
    }
    if (this.#streams.size > 0 && graceMs > 0) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      await waitAtMost(Promise.race([drained, this.closed]), graceMs);
    }
    this.close();
    await this.closed;
  }

  /** Ends the connection with `err`: GOAWAY (if we started it), every stream fails, duplex closed. */
  fail(err: Error): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#error = err;
    this.#health.stop();
    clearTimeout(this.#settingsTimer);
    this.#settingsTimer = undefined;
    this.#rejectReady(err);
    for (const s of this.#streams.values()) s.fail(err);
    this.#streams.clear();
    this.#drained?.();
    const local = !(err instanceof ConnectionError) || err.initiator === "local";
    void this.#shutdown(local, err);
  }

  // ---- StreamHost ----

  reserve(stream: S, want: number): number {
    if (this.#closing) return 0;
    const n = this.#flow.reserve(stream, want, this.peer.maxFrameSize);
    // A body that must wait for credit sends no DATA for held HEADERS to leave with, and the peer
    // may be waiting for those HEADERS before it grants any (a stream window of 0).
    if (n === 0) this.#writer.sendHeld();
    return n;
  }

  queueHeaders(
    stream: S,
    fields: Array<[string, string]>,
    endStream: boolean,
    hold = false,
  ): void {
    if (this.#closing) return;
    // Encoded now, in the order queued: the peer decodes blocks in the order they arrive.
    const block = this.#encoder.encode(fields);
    const frames = encodeHeaderBlock(stream.id, block, {
      endStream,
      maxFrameSize: this.peer.maxFrameSize,
    });
    if (hold) this.#writer.hold(frames);
    else this.#writer.queue(frames);
  }

  queueData(stream: S, data: Uint8Array, endStream: boolean, notify?: TakenListener): void {
    if (this.#closing) return;
    this.#writer.queue(
      encodeDataHeader(stream.id, data.byteLength, endStream),
      data.byteLength > 0 ? data : undefined,
      notify,
    );
  }

  queueReset(stream: S, code: number): void {
    if (this.#closing) return;
    this.#ids.reset(stream.id);
    this.#writer.queue(encodeRstStream(stream.id, code));
  }

  consumed(stream: S, n: number, streamToo: boolean): void {
    if (this.#closing || n <= 0) return;
    this.#flow.consumed(stream, n, streamToo);
  }

  streamClosed(stream: S): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#ids.closed(stream.id);
    if (this.#streams.size > 0) return;
    // After a GOAWAY either way, the connection lives only for the streams still finishing.
    this.#drained?.();
    if (this.#peerGoAway) this.close();
  }

  // ---- the reader ----

  async #readLoop(): Promise<void> {
    const reader = new SocketReader(this.#duplex);
    const onFrame = (h: FrameHeader, payload: Uint8Array) => {
      this.#handle(h, payload);
      return !this.#closing;
    };
    // WINDOW_UPDATEs without allocations, when nothing else is going on (see applyWindowUpdate):
    // Go's HTTP/2 peers credit every small read, per stream and per connection.
    const onWindowUpdate = (streamId: number, increment: number): boolean => {
      if (this.#closing || !this.#gotSettings || this.#blocks.inProgress) return false;
      try {
        return this.#flow.applyWindowUpdate(streamId, increment, this.#streams);
      } catch (err) {
        this.#onStreamError(err);
        this.#checkUrgentFlood();
        return true;
      }
    };
    try {
      for (;;) {
        let chunk: Uint8Array | null = null;
        let readError: unknown;
        try {
          chunk = await reader.read();
        } catch (err) {
          readError = err;
        }
        if (this.#closing) break;
        if (chunk === null) throw this.#peerClosed(readError);
        this.#health.read();
        if (this.#prefaceLeft > 0) chunk = this.#checkPreface(chunk);
        this.#splitter.feed(chunk, onFrame, onWindowUpdate);
        if (this.#closing) break;
      }
    } catch (err) {
      // Anything but a ConnectionError here is a bug of ours; still, fail the connection cleanly.
      this.fail(
        err instanceof ConnectionError ? err : new ConnectionError(
          ErrorCode.INTERNAL_ERROR,
          `internal error while handling a frame: ${(err as Error)?.message ?? err}`,
          { cause: err },
        ),
      );
    } finally {
      reader.release();
    }
  }

  /**
   * The peer closed the connection (EOF or a failed read). A client leaving with nothing in
   * flight is the normal end of a server's connection, and so is a server leaving after its
   * GOAWAY; a server that just vanishes is news for the client's pool. With streams open, every
   * one of them fails.
   */
  #peerClosed(readError: unknown): ConnectionError {
    const open = this.#streams.size;
    const clean = open === 0 && (this.#peerGoAway !== undefined || !this.#isClient);
    const how = readError ? ` (${(readError as Error)?.message ?? readError})` : "";
    return new ConnectionError(
      clean ? ErrorCode.NO_ERROR : ErrorCode.INTERNAL_ERROR,
      `${this.#peerName} closed the connection${how}${
        open > 0 ? ` with ${open} streams open` : ""
      }${this.#peerGoAway ? "" : ", without GOAWAY"}`,
      { cause: readError, initiator: "peer" },
    );
  }

  /** Matches the start of the stream against the client preface; returns what follows it. */
  #checkPreface(chunk: Uint8Array): Uint8Array {
    const offset = CONNECTION_PREFACE.byteLength - this.#prefaceLeft;
    const n = Math.min(this.#prefaceLeft, chunk.byteLength);
    for (let i = 0; i < n; i++) {
      if (chunk[i] !== CONNECTION_PREFACE[offset + i]) {
        // RFC 9113 §3.4: "Clients and servers MUST treat an invalid connection preface as a
        // connection error of type PROTOCOL_ERROR."
        const seen = new TextDecoder().decode(chunk.subarray(0, Math.min(n, 16)));
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `invalid client preface at byte ${offset + i} (got ${JSON.stringify(seen)})`,
        );
      }
    }
    this.#prefaceLeft -= n;
    return chunk.subarray(n);
  }

  /** Handles one frame; a `StreamError` resets that stream, a `ConnectionError` propagates. */
  #handle(h: FrameHeader, payload: Uint8Array): void {
    try {
      this.#dispatch(h, payload);
    } catch (err) {
      this.#onStreamError(err);
    }
    this.#checkUrgentFlood();
  }

  /** A `StreamError` resets that stream; anything else propagates (and fails the connection). */
  #onStreamError(err: unknown): void {
    if (!(err instanceof StreamError)) throw err;
    this.#ids.reset(err.streamId);
    this.#writer.urgent(encodeRstStream(err.streamId, err.code));
    this.#streams.get(err.streamId)?.fail(err);
    this.#role.onStreamError(err);
  }

  #checkUrgentFlood(): void {
    // RFC 9113 §10.5: replies the peer makes us queue (SETTINGS ACK, PING ACK, resets) and never
    // reads would grow without bound; past MAX_QUEUED_URGENT it is not a slow reader but a flood.
    if (this.#writer.urgentQueued > MAX_QUEUED_URGENT) {
      throw new ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `over ${MAX_QUEUED_URGENT} control frames queued for a ${this.#peerName} that does not read them`,
      );
    }
  }

  #dispatch(h: FrameHeader, payload: Uint8Array): void {
    if (!this.#gotSettings) requireSettingsFirst(h, this.#peerName);
    this.#blocks.checkNext(h);
    switch (h.type) {
      case FrameType.DATA: {
        const f = parseData(h, payload);
        this.#flow.receive(f.flowLength);
        const stream = this.#streams.get(h.streamId);
        if (stream) {
          this.#flow.deliver(stream, f);
          break;
        }
        this.#ids.checkNotIdle(h.streamId, "DATA");
        // A stream we reset or finished: its bytes still count against the connection window,
        // so credit them back or the connection would slowly starve.
        this.#flow.credit(f.flowLength);
        this.#ids.checkDataOnClosed(h.streamId);
        break;
      }
      case FrameType.HEADERS:
      case FrameType.CONTINUATION: {
        const b = this.#blocks.add(h, payload);
        if (b) this.#onHeaderBlock(b.streamId, b.block, b.endStream, b.dependency);
        break;
      }
      case FrameType.PRIORITY:
        // Validated (a stream depending on itself is reset), then ignored: RFC 9113 §5.3.2
        // deprecates the priority signals.
        checkPriority(h.streamId, parsePriority(h, payload));
        break;
      case FrameType.RST_STREAM: {
        const code = parseRstStream(h, payload);
        this.#ids.checkNotIdle(h.streamId, "RST_STREAM");
        const stream = this.#streams.get(h.streamId);
        if (stream) this.#role.onPeerReset(stream, code);
        break;
      }
      case FrameType.SETTINGS:
        this.#onSettings(h, payload);
        break;
      case FrameType.PUSH_PROMISE:
        // RFC 9113 §8.4: "A client cannot push. Thus, servers MUST treat the receipt of a
        // PUSH_PROMISE frame as a connection error of type PROTOCOL_ERROR." §6.5.2: a client that
        // sent SETTINGS_ENABLE_PUSH = 0 (ours always does) treats one as PROTOCOL_ERROR too.
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `PUSH_PROMISE on stream ${h.streamId}: ${
            this.#isClient ? "we disabled push" : "clients cannot push"
          }`,
        );
      case FrameType.PING:
        this.#health.onPing(parsePing(h, payload));
        break;
      case FrameType.GOAWAY:
        this.#onGoAway(parseGoAway(h, payload));
        break;
      case FrameType.WINDOW_UPDATE: {
        const increment = parseWindowUpdate(h, payload);
        if (h.streamId !== 0) this.#ids.checkNotIdle(h.streamId, "WINDOW_UPDATE");
        this.#flow.onWindowUpdate(h.streamId, increment, this.#streams);
        break;
      }
      default:
        // RFC 9113 §4.1: "Implementations MUST ignore and discard frames of unknown types."
        break;
    }
  }

  #onHeaderBlock(
    streamId: number,
    block: Uint8Array,
    endStream: boolean,
    dependency: number,
  ): void {
    // RFC 9113 §4.3: every header block is decoded, even for a stream we refuse or reset, or the
    // HPACK tables of the two ends drift apart. Decoding errors are connection errors.
    const fields = this.#decoder.decode(block);
    const stream = this.#streams.get(streamId);
    if (!stream && !this.#ids.headersOpen(streamId)) return;
    if (dependency >= 0) checkPriority(streamId, { dependency });
    if (stream) {
      stream.onHeaders(fields, endStream);
      return;
    }
    if (this.#goAwaySent !== undefined) {
      // Past our GOAWAY's last-stream-id: not processed, so the peer may retry it elsewhere.
      throw new StreamError(
        streamId,
        ErrorCode.REFUSED_STREAM,
        `refused stream ${streamId}: shutting down`,
      );
    }
    this.#role.openStream(streamId, fields, endStream);
  }

  #onSettings(h: FrameHeader, payload: Uint8Array): void {
    const f = parseSettings(h, payload);
    if (f.ack) {
      this.#gotSettingsAck = true;
      this.#settingsDone();
      return;
    }
    this.peer.apply(f.settings, this.#streams.values());
    // RFC 9113 §6.5.3: "Upon receiving a SETTINGS frame with the ACK flag set to 0, the recipient
    // MUST apply the updated settings as soon as possible upon receipt" and "MUST immediately
    // emit a SETTINGS frame with the ACK flag set".
    this.#writer.urgent(encodeSettingsAck());
    if (!this.#gotSettings) {
      this.#gotSettings = true;
      this.#settingsDone();
      this.#resolveReady();
      this.#health.start();
    }
  }

  #settingsDone(): void {
    if (this.#gotSettings && this.#gotSettingsAck) {
      clearTimeout(this.#settingsTimer);
      this.#settingsTimer = undefined;
    }
  }

  #settingsExpired(): void {
    this.#settingsTimer = undefined;
    const ms = this.#settingsTimeout;
    this.fail(
      this.#gotSettings
        // RFC 9113 §6.5.3: "If the sender of a SETTINGS frame does not receive an acknowledgment
        // within a reasonable amount of time, it MAY issue a connection error of type
        // SETTINGS_TIMEOUT."
        ? new ConnectionError(ErrorCode.SETTINGS_TIMEOUT, `no SETTINGS ACK within ${ms} ms`)
        // §3.4: the peer's preface is (or ends in) its SETTINGS; a peer that never sends it is dead.
        : new ConnectionError(
          ErrorCode.SETTINGS_TIMEOUT,
          `no ${
            this.#isClient ? "" : "preface and "
          }SETTINGS from the ${this.#peerName} within ${ms} ms`,
        ),
    );
  }

  #onGoAway(f: { lastStreamId: number; code: number; debugData: Uint8Array }): void {
    // RFC 9113 §6.8: the last-stream-id may only go down across several GOAWAYs.
    const last = Math.min(f.lastStreamId, this.#peerGoAway?.lastStreamId ?? MAX_STREAM_ID);
    this.#peerGoAway = { lastStreamId: last, code: f.code };
    this.#role.onGoAway(f.code, last, describeDebugData(f.debugData));
    if (this.#streams.size === 0) this.close();
  }

  // ---- shutdown ----

  async #shutdown(local: boolean, err: Error): Promise<void> {
    const code = goAwayCode(err);
    // Our GOAWAY names the last stream we received (§5.4.1), or fewer if an earlier GOAWAY of ours
    // did. After an error, queued frames of the failed streams are dropped.
    const last = Math.min(this.#ids.lastPeer, this.#goAwaySent ?? MAX_STREAM_ID);
    const goAway = local ? encodeGoAwayFor(last, err) : undefined;
    // A clean close sends what is queued first: the last responses may still be in the queue.
    await this.#writer.finish(goAway, GOAWAY_WRITE_MS, code === ErrorCode.NO_ERROR);
    this.#duplex.close();
    this.#writer.release();
    await this.#readDone.catch(() => {});
    this.#resolveClosed(err);
  }
}
