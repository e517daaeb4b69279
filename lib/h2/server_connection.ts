/**
 * An HTTP/2 server connection (RFC 9113) over any {@link Duplex}: the client preface, SETTINGS, one
 * read loop, one writer, PING, GOAWAY both ways, and the streams clients open on it.
 *
 * It mirrors the client role (connection.ts): frames are cut by `FrameSplitter`, written by one
 * `FrameWriter` (SETTINGS ACK, PING ACK and WINDOW_UPDATE jump ahead of DATA; frames queued in one
 * tick share a write), receive credit goes back as the handler reads, and DATA is bounded by
 * min(stream window, connection window, the client's SETTINGS_MAX_FRAME_SIZE). Only this file
 * catches `ConnectionError` (→ GOAWAY, every stream fails) and `StreamError` (→ RST_STREAM, one
 * stream fails).
 *
 * Abusive clients (RFC 9113 §10.5) end with GOAWAY ENHANCE_YOUR_CALM: one that makes us reset
 * streams faster than the reset budget allows (rapid reset, CVE-2023-44487: open a stream, reset
 * it, repeat — each one started a handler), and one that lets more than MAX_QUEUED_URGENT replies
 * to its SETTINGS and PINGs pile up unread (abuse_limit.ts has the numbers and why).
 */
import type { Duplex } from "../net/duplex.ts";
import { AbuseLimit, MAX_QUEUED_URGENT, RESET_BURST, RESET_PER_SECOND } from "./abuse_limit.ts";
import { ConnectionError, ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { ConnectionFlow } from "./connection_flow.ts";
import {
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
  SettingId,
} from "./frame.ts";
import { FrameSplitter } from "./frame_splitter.ts";
import { HeaderBlockAssembler } from "./header_block.ts";
import { describeDebugData, encodeGoAwayFor, GOAWAY_WRITE_MS, goAwayCode } from "./go_away.ts";
import { HealthCheck } from "./health_check.ts";
import { HpackDecoder, HpackEncoder } from "./hpack.ts";
import {
  type H2ServerRequest,
  H2ServerStream,
  parseRequest,
  type ServerStreamHost,
} from "./server_stream.ts";
import { PeerSettings, requireSettingsFirst, resolveSettings } from "./settings.ts";
import { SocketReader } from "./socket_reader.ts";
import { FrameWriter, type TakenListener } from "./writer.ts";
import { waitAtMost } from "../net/wait_at_most.ts";

export { H2ServerStream };
export type { H2ServerRequest };

export interface H2ServerOptions {
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: how much each request body may buffer unread (4 MiB). */
  initialWindowSize?: number;
  /** Our connection receive window, raised by WINDOW_UPDATE after SETTINGS (default 16 MiB). */
  connectionWindowSize?: number;
  /** Our SETTINGS_MAX_CONCURRENT_STREAMS; streams past it are refused (default 256). */
  maxConcurrentStreams?: number;
  /** Our SETTINGS_MAX_FRAME_SIZE: the largest frame we accept (default 64 KiB). */
  maxFrameSize?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE, also the cap on a CONTINUATION sequence (default 64 KiB). */
  maxHeaderListSize?: number;
  /** The client preface and SETTINGS, and the ACK of ours, must come within this (default 10 s). */
  settingsTimeout?: number;
  /** Send a PING after this long without reading anything; 0 = off (default 60 s). */
  readIdleTimeout?: number;
  /** Close the connection when that PING is not answered within this (default 15 s). */
  pingTimeout?: number;
  /**
   * Streams the client may make us reset in one burst — its RST_STREAM on a stream we serve, or
   * a stream error it caused — before GOAWAY ENHANCE_YOUR_CALM (default 1000).
   */
  maxResetBurst?: number;
  /** Such resets per second the client may keep up for ever (default 200). */
  maxResetRate?: number;
}

/** Called for every valid request; must not throw (an exception resets the stream). */
export type StreamHandler = (stream: H2ServerStream) => void;

/**
 * The windows match the client role's (connection.ts): 4 MiB per stream lets one upload run at full
 * speed wherever bandwidth × RTT is under 4 MiB; 16 MiB bounds what all request bodies of one
 * connection can buffer unread. 256 streams: v2ray clients multiplex every proxied connection of
 * a user onto one HTTP/2 connection.
 */
const DEFAULTS = {
  initialWindowSize: 4 * 1024 * 1024,
  connectionWindowSize: 16 * 1024 * 1024,
  maxConcurrentStreams: 256,
  maxFrameSize: 64 * 1024,
  maxHeaderListSize: 64 * 1024,
  settingsTimeout: 10_000,
  readIdleTimeout: 60_000,
  pingTimeout: 15_000,
  maxResetBurst: RESET_BURST,
  maxResetRate: RESET_PER_SECOND,
};

/**
 * Ids of streams we reset (late frames on them are ignored, RFC 9113 §5.1) and of streams that
 * ended both ways (a new HEADERS on one is STREAM_CLOSED, not a non-increasing id): the most recent.
 */
const MAX_REMEMBERED_IDS = 1024;

export class H2ServerConnection implements ServerStreamHost {
  /** Resolves when the connection is gone: undefined for a clean end, else what ended it. */
  readonly closed: Promise<Error | undefined>;

  #duplex: Duplex;
  #onStream: StreamHandler;
  #opts: typeof DEFAULTS;
  #writer: FrameWriter;
  #splitter: FrameSplitter;
  #streams = new Map<number, H2ServerStream>();
  #encoder = new HpackEncoder({});
  #decoder: HpackDecoder;
  /** RFC 9113 §5.1.1: the highest stream id the client has used; new ones must exceed it. */
  #lastStreamId = 0;
  #resetIds = new Set<number>();
  #closedIds = new Set<number>();

  /** The client's settings; its MAX_CONCURRENT_STREAMS limits streams we would open: none. */
  #peer = new PeerSettings(this.#encoder, { isClient: false });
  #flow: ConnectionFlow;
  #health: HealthCheck;
  /** Client-caused stream resets: the rapid-reset budget. */
  #resets: AbuseLimit;

  #prefaceLeft = CONNECTION_PREFACE.byteLength;
  #gotSettings = false;
  #gotSettingsAck = false;
  #settingsTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;
  #blocks: HeaderBlockAssembler;
  /** The last-stream-id of the GOAWAY we sent (graceful shutdown); new streams past it refused. */
  #goAwaySent: number | undefined;
  #peerGoAway = false;
  #drained: (() => void) | undefined;
  #error: Error | undefined;
  #closing = false;
  #resolveClosed!: (e: Error | undefined) => void;
  #readDone: Promise<void>;

  private constructor(duplex: Duplex, onStream: StreamHandler, options: H2ServerOptions) {
    this.#duplex = duplex;
    this.#onStream = onStream;
    const o = this.#opts = resolveSettings(DEFAULTS, options);
    if (!(o.maxConcurrentStreams >= 0)) {
      throw new RangeError(`maxConcurrentStreams must be >= 0, got ${o.maxConcurrentStreams}`);
    }
    if (!(o.maxResetBurst >= 1)) {
      throw new RangeError(`maxResetBurst must be >= 1, got ${o.maxResetBurst}`);
    }
    if (!(o.maxResetRate >= 0)) {
      throw new RangeError(`maxResetRate must be >= 0, got ${o.maxResetRate}`);
    }
    this.#resets = new AbuseLimit({ burst: o.maxResetBurst, perSecond: o.maxResetRate });
    this.#decoder = new HpackDecoder({ maxHeaderListSize: o.maxHeaderListSize });
    this.#blocks = new HeaderBlockAssembler(o.maxHeaderListSize);
    this.#splitter = new FrameSplitter(o.maxFrameSize);
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#writer = new FrameWriter(duplex.writable, {
      onError: (err) => {
        this.#fail(
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

    // RFC 9113 §3.4: "The server connection preface consists of a potentially empty SETTINGS
    // frame that MUST be the first frame the server sends". It need not wait for the client's.
    this.#writer.urgent(encodeSettings([
      [SettingId.MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SettingId.INITIAL_WINDOW_SIZE, o.initialWindowSize],
      [SettingId.MAX_FRAME_SIZE, o.maxFrameSize],
      [SettingId.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
    ]));
    this.#flow = new ConnectionFlow(this.#writer, {
      windowSize: o.connectionWindowSize,
      peerName: "client",
    });
    this.#health = new HealthCheck(this.#writer, {
      readIdleTimeout: o.readIdleTimeout,
      pingTimeout: o.pingTimeout,
      onFailure: (err) => this.#fail(err),
    });
    this.#settingsTimer = setTimeout(() => this.#settingsExpired(), o.settingsTimeout);
    this.#readDone = this.#readLoop();
  }

  /**
   * Sends our SETTINGS, reads the client preface and waits for the client's SETTINGS. Rejects
   * (having closed the duplex) on a bad preface, a protocol error or the settings timeout.
   * `onStream` is called for every valid request from then on.
   */
  static async accept(
    duplex: Duplex,
    onStream: StreamHandler,
    options: H2ServerOptions = {},
  ): Promise<H2ServerConnection> {
    const conn = new H2ServerConnection(duplex, onStream, options);
    const ready = new Promise<void>((resolve, reject) => {
      conn.#resolveReady = resolve;
      conn.#rejectReady = reject;
    });
    if (conn.#error) throw conn.#error;
    await ready;
    return conn;
  }

  /** Streams open right now (not yet closed both ways or reset). */
  get activeStreams(): number {
    return this.#streams.size;
  }

  /** Sends GOAWAY NO_ERROR with the last stream id processed and closes now; open streams fail. */
  close(): void {
    this.#fail(new ConnectionError(ErrorCode.NO_ERROR, "connection closed by us"));
  }

  /**
   * Graceful close: GOAWAY NO_ERROR now (new streams are refused), open streams get up to
   * `graceMs` to finish, then the connection closes. Resolves once it is closed.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.#closing) return void await this.closed;
    this.#sendGoAway();
    if (this.#streams.size > 0 && graceMs > 0) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      await waitAtMost(Promise.race([drained, this.closed]), graceMs);
    }
    this.close();
    await this.closed;
  }

  #sendGoAway(): void {
    if (this.#goAwaySent !== undefined) return;
    this.#goAwaySent = this.#lastStreamId;
    this.#writer.urgent(encodeGoAway(this.#lastStreamId, ErrorCode.NO_ERROR));
  }

  // ---- ServerStreamHost ----

  reserve(stream: H2ServerStream, want: number): number {
    if (this.#closing) return 0;
    return this.#flow.reserve(stream, want, this.#peer.maxFrameSize);
  }

  queueHeaders(stream: H2ServerStream, fields: Array<[string, string]>, endStream: boolean): void {
    if (this.#closing) return;
    // Encoded now, in the order queued: the client decodes blocks in the order they arrive.
    const block = this.#encoder.encode(fields);
    this.#writer.queue(
      encodeHeaderBlock(stream.id, block, { endStream, maxFrameSize: this.#peer.maxFrameSize }),
    );
  }

  queueData(
    stream: H2ServerStream,
    data: Uint8Array,
    endStream: boolean,
    notify: TakenListener | undefined,
  ): void {
    if (this.#closing) return;
    this.#writer.queue(
      encodeDataHeader(stream.id, data.byteLength, endStream),
      data.byteLength > 0 ? data : undefined,
      notify,
    );
  }

  queueReset(stream: H2ServerStream, code: number): void {
    if (this.#closing) return;
    // Not counted against the reset budget: the handler asked for it, and every proxied
    // connection that ends before the client's request body does ends this way.
    this.#rememberReset(stream.id);
    this.#writer.queue(encodeRstStream(stream.id, code));
  }

  consumed(stream: H2ServerStream, n: number, streamToo: boolean): void {
    if (this.#closing || n <= 0) return;
    this.#flow.consumed(stream, n, streamToo);
  }

  streamClosed(stream: H2ServerStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    remember(this.#closedIds, stream.id);
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
    // Go's HTTP/2 client credits every small read, per stream and per connection.
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
        let r: Uint8Array | null = null;
        let readError: unknown;
        try {
          r = await reader.read();
        } catch (err) {
          readError = err;
        }
        if (this.#closing) break;
        if (r === null) {
          // A client that goes away with nothing in flight is the normal end of a connection;
          // with streams open, every one of them fails now.
          const open = this.#streams.size;
          const how = readError ? ` (${(readError as Error)?.message ?? readError})` : "";
          throw new ConnectionError(
            open > 0 ? ErrorCode.INTERNAL_ERROR : ErrorCode.NO_ERROR,
            `client closed the connection${how}${open > 0 ? ` with ${open} streams open` : ""}`,
            { cause: readError, initiator: "peer" },
          );
        }
        this.#health.read();
        let chunk = r;
        if (this.#prefaceLeft > 0) chunk = this.#checkPreface(chunk);
        this.#splitter.feed(chunk, onFrame, onWindowUpdate);
        if (this.#closing) break;
      }
    } catch (err) {
      // Anything but a ConnectionError here is a bug of ours; still, fail the connection cleanly.
      this.#fail(
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
    this.#rememberReset(err.streamId);
    this.#writer.urgent(encodeRstStream(err.streamId, err.code));
    this.#streams.get(err.streamId)?.fail(err);
    // Every stream error here was the client's doing (a malformed request, a refused stream,
    // a flow-control violation), except a handler that threw: our bug, not its abuse.
    if (err.code !== ErrorCode.INTERNAL_ERROR) this.#spendReset(err.streamId);
  }

  #checkUrgentFlood(): void {
    // RFC 9113 §10.5: replies the client makes us queue (SETTINGS ACK, PING ACK, resets) and never
    // reads would grow without bound; past MAX_QUEUED_URGENT it is not a slow reader but a flood.
    if (this.#writer.urgentQueued > MAX_QUEUED_URGENT) {
      throw new ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `over ${MAX_QUEUED_URGENT} control frames queued for a client that does not read them`,
      );
    }
  }

  /**
   * Counts one stream the client made us reset (CVE-2023-44487, rapid reset: each one may have
   * started a handler). Over budget: RFC 9113 §10.5 "An endpoint MAY treat activity that is
   * suspicious as a connection error of type ENHANCE_YOUR_CALM".
   */
  #spendReset(streamId: number): void {
    if (this.#resets.spend()) return;
    const { burst, perSecond } = this.#resets;
    throw new ConnectionError(
      ErrorCode.ENHANCE_YOUR_CALM,
      `too many stream resets (stream ${streamId}): over ${burst} at once or ${perSecond} per second`,
    );
  }

  #dispatch(h: FrameHeader, payload: Uint8Array): void {
    if (!this.#gotSettings) requireSettingsFirst(h, "client");
    this.#blocks.checkNext(h);
    switch (h.type) {
      case FrameType.DATA: {
        const f = parseData(h, payload);
        this.#flow.receive(f.flowLength);
        const stream = this.#streams.get(h.streamId);
        if (!stream) {
          this.#checkNotIdle(h, "DATA");
          // A stream we reset or finished: its bytes still count against the connection window,
          // so credit them back or the connection would slowly starve.
          this.#flow.credit(f.flowLength);
          // RFC 9113 §5.1: "An endpoint MUST ignore frames that it receives on closed streams
          // after it has sent a RST_STREAM frame." Otherwise §6.1: DATA on a stream not "open" or
          // "half-closed (local)" is a stream error of type STREAM_CLOSED.
          if (this.#resetIds.has(h.streamId)) break;
          throw new StreamError(
            h.streamId,
            ErrorCode.STREAM_CLOSED,
            `reset stream ${h.streamId}: DATA on a closed stream`,
          );
        }
        this.#flow.deliver(stream, f);
        break;
      }
      case FrameType.HEADERS:
      case FrameType.CONTINUATION: {
        const b = this.#blocks.add(h, payload);
        if (b) this.#onHeaderBlock(b.streamId, b.block, b.endStream);
        break;
      }
      case FrameType.PRIORITY: {
        // Validated, then ignored: RFC 9113 §5.3.2 deprecates the priority signals.
        const p = parsePriority(h, payload);
        // RFC 9113 §5.3.1: "A stream cannot depend on itself. An endpoint MUST treat this as a
        // stream error of type PROTOCOL_ERROR."
        if (p.dependency === h.streamId) {
          throw new StreamError(
            h.streamId,
            ErrorCode.PROTOCOL_ERROR,
            `reset stream ${h.streamId}: PRIORITY makes it depend on itself`,
          );
        }
        break;
      }
      case FrameType.RST_STREAM: {
        const code = parseRstStream(h, payload);
        this.#checkNotIdle(h, "RST_STREAM");
        const stream = this.#streams.get(h.streamId);
        if (!stream) break;
        // Only a stream still being served counts: resetting one that already ended — or whose
        // response we have sent in full (half-closed local: only the client's upload was open) —
        // costs us nothing, and a client may well cancel a request body once the answer is in.
        const served = stream.state !== "half-closed-local";
        stream.onReset(code);
        if (served) this.#spendReset(h.streamId);
        break;
      }
      case FrameType.SETTINGS:
        this.#onSettings(h, payload);
        break;
      case FrameType.PUSH_PROMISE:
        // RFC 9113 §8.4: "A client cannot push. Thus, servers MUST treat the receipt of a
        // PUSH_PROMISE frame as a connection error of type PROTOCOL_ERROR."
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `PUSH_PROMISE from the client on stream ${h.streamId}`,
        );
      case FrameType.PING:
        this.#health.onPing(parsePing(h, payload));
        break;
      case FrameType.GOAWAY:
        this.#onGoAway(parseGoAway(h, payload));
        break;
      case FrameType.WINDOW_UPDATE: {
        const increment = parseWindowUpdate(h, payload);
        if (h.streamId !== 0) this.#checkNotIdle(h, "WINDOW_UPDATE");
        this.#flow.onWindowUpdate(h.streamId, increment, this.#streams);
        break;
      }
      default:
        // RFC 9113 §4.1: "Implementations MUST ignore and discard frames of unknown types."
        break;
    }
  }

  #rememberReset(id: number): void {
    remember(this.#resetIds, id);
  }

  /**
   * RFC 9113 §5.1: "idle: ... Receiving any frame other than HEADERS or PRIORITY on a stream in
   * this state MUST be treated as a connection error of type PROTOCOL_ERROR." Idle = a client id
   * above every one used so far, or an even (server-initiated) id, which we never open.
   */
  #checkNotIdle(h: { streamId: number }, what: string): void {
    if (h.streamId % 2 === 0 || h.streamId > this.#lastStreamId) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${h.streamId}`);
    }
  }

  #onHeaderBlock(streamId: number, block: Uint8Array, endStream: boolean): void {
    // RFC 9113 §4.3: every header block is decoded, even for a stream we refuse or reset, or the
    // HPACK tables of the two ends drift apart. Decoding errors are connection errors.
    const fields = this.#decoder.decode(block);
    const stream = this.#streams.get(streamId);
    if (stream) {
      stream.onHeaders(fields, endStream);
      return;
    }
    // RFC 9113 §5.1.1: "Streams initiated by a client MUST use odd-numbered stream identifiers".
    if (streamId % 2 === 0) {
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `HEADERS on even stream ${streamId}: clients open odd ones`,
      );
    }
    if (streamId <= this.#lastStreamId) {
      // RFC 9113 §5.1: "An endpoint MUST ignore frames that it receives on closed streams after
      // it has sent a RST_STREAM frame" (the HPACK state was updated above).
      if (this.#resetIds.has(streamId)) return;
      // A stream that ended both ways: "for an endpoint that receives any frames after receiving
      // a frame with the END_STREAM flag set, it MUST treat that as a connection error of type
      // STREAM_CLOSED".
      if (this.#closedIds.has(streamId)) {
        throw new ConnectionError(
          ErrorCode.STREAM_CLOSED,
          `HEADERS on closed stream ${streamId}`,
        );
      }
      // RFC 9113 §5.1.1: "The identifier of a newly established stream MUST be numerically
      // greater than all streams that the initiating endpoint has opened ... An endpoint that
      // receives an unexpected stream identifier MUST respond with a connection error of type
      // PROTOCOL_ERROR."
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `HEADERS opening stream ${streamId} after stream ${this.#lastStreamId}: ids must increase`,
      );
    }
    this.#lastStreamId = streamId;
    if (this.#goAwaySent !== undefined || this.#closing) {
      // Past our GOAWAY's last-stream-id: not processed, so the client may retry it elsewhere.
      throw new StreamError(
        streamId,
        ErrorCode.REFUSED_STREAM,
        `refused stream ${streamId}: shutting down`,
      );
    }
    // RFC 9113 §5.1.2: "An endpoint that receives a HEADERS frame that causes its advertised
    // concurrent stream limit to be exceeded MUST treat this as a stream error of type
    // PROTOCOL_ERROR or REFUSED_STREAM." REFUSED_STREAM tells the client it may retry.
    if (this.#streams.size >= this.#opts.maxConcurrentStreams) {
      throw new StreamError(
        streamId,
        ErrorCode.REFUSED_STREAM,
        `refused stream ${streamId}: ${this.#streams.size} streams open, the limit is ${this.#opts.maxConcurrentStreams}`,
      );
    }
    const request = parseRequest(streamId, fields);
    const created = new H2ServerStream(streamId, request, this, {
      sendWindow: this.#peer.initialWindowSize,
      recvWindow: this.#opts.initialWindowSize,
      endStream,
    });
    this.#streams.set(streamId, created);
    try {
      this.#onStream(created);
    } catch (err) {
      // The handler's bug stays in its stream.
      throw new StreamError(
        streamId,
        ErrorCode.INTERNAL_ERROR,
        `reset stream ${streamId}: handler failed: ${(err as Error)?.message ?? err}`,
        { cause: err },
      );
    }
  }

  #onSettings(h: FrameHeader, payload: Uint8Array): void {
    const f = parseSettings(h, payload);
    if (f.ack) {
      this.#gotSettingsAck = true;
      this.#settingsDone();
      return;
    }
    this.#peer.apply(f.settings, this.#streams.values());
    // RFC 9113 §6.5.3: "Upon receiving a SETTINGS frame with the ACK flag set to 0, the recipient
    // MUST apply the updated settings as soon as possible upon receipt" and then acknowledge them.
    this.#writer.urgent(encodeSettingsAck());
    if (!this.#gotSettings) {
      this.#gotSettings = true;
      this.#settingsDone();
      this.#resolveReady?.();
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
    const ms = this.#opts.settingsTimeout;
    this.#fail(
      this.#gotSettings
        // RFC 9113 §6.5.3: "If the sender of a SETTINGS frame does not receive an acknowledgment
        // within a reasonable amount of time, it MAY issue a connection error of type
        // SETTINGS_TIMEOUT."
        ? new ConnectionError(ErrorCode.SETTINGS_TIMEOUT, `no SETTINGS ACK within ${ms} ms`)
        : new ConnectionError(
          ErrorCode.SETTINGS_TIMEOUT,
          `no client preface and SETTINGS within ${ms} ms`,
        ),
    );
  }

  #onGoAway(f: { lastStreamId: number; code: number; debugData: Uint8Array }): void {
    // A client's GOAWAY says it is going: it opens no more streams. With NO_ERROR the streams in
    // flight finish first; with an error code the client is about to drop the connection.
    if (f.code !== ErrorCode.NO_ERROR) {
      const debug = describeDebugData(f.debugData);
      throw new ConnectionError(
        f.code,
        `client sent GOAWAY (${errorCodeName(f.code)}${debug})`,
        { initiator: "peer" },
      );
    }
    this.#peerGoAway = true;
    if (this.#streams.size === 0) this.close();
  }

  // ---- shutdown ----

  /** Ends the connection with `err`: GOAWAY (if we started it), every stream fails, duplex closed. */
  #fail(err: Error): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#error = err;
    this.#health.stop();
    clearTimeout(this.#settingsTimer);
    this.#settingsTimer = undefined;
    this.#rejectReady?.(err);
    for (const s of this.#streams.values()) s.fail(err);
    this.#streams.clear();
    this.#drained?.();
    const local = !(err instanceof ConnectionError) || err.initiator === "local";
    void this.#shutdown(local, err);
  }

  async #shutdown(local: boolean, err: Error): Promise<void> {
    const code = goAwayCode(err);
    // Our GOAWAY names the last stream we received (§5.4.1), or fewer if an earlier GOAWAY of ours
    // did. After an error, queued frames of the failed streams are dropped.
    const last = Math.min(this.#lastStreamId, this.#goAwaySent ?? this.#lastStreamId);
    const goAway = local ? encodeGoAwayFor(last, err) : undefined;
    // A clean close sends what is queued first: the last responses may still be in the queue.
    await this.#writer.finish(goAway, GOAWAY_WRITE_MS, code === ErrorCode.NO_ERROR);
    this.#duplex.close();
    this.#writer.release();
    await this.#readDone.catch(() => {});
    this.#resolveClosed(code === ErrorCode.NO_ERROR ? undefined : err);
  }
}

function remember(ids: Set<number>, id: number): void {
  ids.add(id);
  if (ids.size > MAX_REMEMBERED_IDS) ids.delete(ids.values().next().value!);
}
