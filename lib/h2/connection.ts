/**
 * An HTTP/2 client connection (RFC 9113) over any {@link Duplex}: preface and SETTINGS, one read
 * loop, one writer, PING health checks, GOAWAY, and the streams multiplexed on it.
 *
 * Only this file reads and writes the socket, and only this file catches `ConnectionError` (→ GOAWAY,
 * every stream fails) and `StreamError` (→ RST_STREAM, one stream fails).
 */
import type { Duplex } from "../net/duplex.ts";
import { ConnectionError, ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { ConnectionFlow } from "./connection_flow.ts";
import {
  CONNECTION_PREFACE,
  encodeDataHeader,
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
import { CONNECTION_SPECIFIC } from "./header_fields.ts";
import { describeDebugData, encodeGoAwayFor, GOAWAY_WRITE_MS } from "./go_away.ts";
import { HealthCheck } from "./health_check.ts";
import { HpackDecoder, HpackEncoder } from "./hpack.ts";
import { PeerSettings, requireSettingsFirst, resolveSettings } from "./settings.ts";
import { SocketReader } from "./socket_reader.ts";
import { H2Stream, refusedStreamError, type StreamHost } from "./stream.ts";
import { FrameWriter } from "./writer.ts";

export interface H2ConnectionOptions {
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: how much each stream may receive unread (default 4 MiB). */
  initialWindowSize?: number;
  /** Our connection receive window, raised by WINDOW_UPDATE after the preface (default 16 MiB). */
  connectionWindowSize?: number;
  /** Our SETTINGS_MAX_FRAME_SIZE: the largest frame we accept (default 64 KiB). */
  maxFrameSize?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE, also the cap on a CONTINUATION sequence (default 64 KiB). */
  maxHeaderListSize?: number;
  /** Send a PING after this long without reading anything; 0 = off (default 30 s). */
  readIdleTimeout?: number;
  /** Close the connection when a PING (or the peer's first SETTINGS) is not answered in time. */
  pingTimeout?: number;
  /** The first stream id to use (odd); for tests of stream-id exhaustion. */
  firstStreamId?: number;
}

export interface H2Request {
  method: string;
  scheme: string;
  authority: string;
  path: string;
  headers?: Array<[string, string]>;
  /** No request body: HEADERS carries END_STREAM. */
  endStream?: boolean;
  /**
   * The only final status the caller accepts: any other fails the stream with
   * `Error("unexpected status N")` and resets it (RST_STREAM CANCEL), as the response HEADERS
   * arrive — the connection goes on serving its other streams.
   */
  expectStatus?: number;
}

/**
 * 4 MiB per stream lets one stream run at full speed wherever bandwidth × RTT is under 4 MiB
 * (1 Gbit/s up to ~32 ms, loopback always) — the 64 KiB default would cap a 20 ms path at ~3 MB/s.
 * The 16 MiB connection window bounds what all streams of a connection can buffer unread.
 */
const DEFAULTS = {
  initialWindowSize: 4 * 1024 * 1024,
  connectionWindowSize: 16 * 1024 * 1024,
  maxFrameSize: 64 * 1024,
  maxHeaderListSize: 64 * 1024,
  readIdleTimeout: 30_000,
  pingTimeout: 15_000,
};

/** RFC 9113 §5.1.1: stream ids are 31-bit; the last odd one a client may use. */
const MAX_STREAM_ID = 2 ** 31 - 1;

export class H2Connection implements StreamHost {
  readonly closed: Promise<Error | undefined>;

  #duplex: Duplex;
  #writer: FrameWriter;
  #splitter: FrameSplitter;
  #opts: typeof DEFAULTS;
  #streams = new Map<number, H2Stream>();
  #nextStreamId: number;
  #encoder: HpackEncoder;
  #decoder: HpackDecoder;

  #peer: PeerSettings;
  #flow: ConnectionFlow;
  #health: HealthCheck;

  #gotSettings = false;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;
  #blocks: HeaderBlockAssembler;
  #goAway: { lastStreamId: number; code: number } | undefined;
  #error: Error | undefined;
  #closing = false;
  #resolveClosed!: (e: Error | undefined) => void;

  #readDone: Promise<void>;

  private constructor(duplex: Duplex, options: H2ConnectionOptions) {
    this.#duplex = duplex;
    const o = this.#opts = resolveSettings(DEFAULTS, options);
    this.#nextStreamId = options.firstStreamId ?? 1;
    if (this.#nextStreamId % 2 !== 1) throw new RangeError(`firstStreamId must be odd`);
    this.#encoder = new HpackEncoder({});
    this.#peer = new PeerSettings(this.#encoder, { isClient: true });
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
            { cause: err },
          ),
        );
      },
      // A socket is done with a write's bytes when it resolves; an in-memory pipe is not.
      reuseBuffer: duplex.copiesWrites === true,
    });

    // RFC 9113 §3.4: the client preface is the magic octets followed by a SETTINGS frame.
    this.#writer.urgent(CONNECTION_PREFACE);
    this.#writer.urgent(
      encodeSettings([
        [SettingId.ENABLE_PUSH, 0],
        [SettingId.INITIAL_WINDOW_SIZE, o.initialWindowSize],
        [SettingId.MAX_FRAME_SIZE, o.maxFrameSize],
        [SettingId.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
      ]),
    );
    this.#flow = new ConnectionFlow(this.#writer, {
      windowSize: o.connectionWindowSize,
      peerName: "peer",
    });
    this.#health = new HealthCheck(this.#writer, {
      readIdleTimeout: o.readIdleTimeout,
      pingTimeout: o.pingTimeout,
      onFailure: (err) => this.#fail(err),
    });
    this.#readDone = this.#readLoop();
  }

  /** Sends the preface and SETTINGS and waits for the peer's SETTINGS. */
  static async connect(duplex: Duplex, options: H2ConnectionOptions = {}): Promise<H2Connection> {
    const conn = new H2Connection(duplex, options);
    const ready = new Promise<void>((resolve, reject) => {
      conn.#resolveReady = resolve;
      conn.#rejectReady = reject;
    });
    // RFC 9113 §3.4: the server preface is a SETTINGS frame; a server that never sends one is dead.
    const timer = setTimeout(() => {
      conn.#fail(
        new ConnectionError(
          ErrorCode.SETTINGS_TIMEOUT,
          `no SETTINGS from the peer within ${conn.#opts.pingTimeout} ms`,
        ),
      );
    }, conn.#opts.pingTimeout);
    try {
      if (conn.#error) throw conn.#error;
      if (!conn.#gotSettings) await ready;
    } finally {
      clearTimeout(timer);
    }
    return conn;
  }

  /** Open, no GOAWAY, stream ids left, and below the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get usable(): boolean {
    return !this.#closing && !this.#goAway && this.#nextStreamId <= MAX_STREAM_ID &&
      this.#streams.size < this.#peer.maxConcurrentStreams;
  }

  /** True once the peer sent GOAWAY or the connection closed: it will never be usable again. */
  get goingAway(): boolean {
    return this.#closing || this.#goAway !== undefined || this.#nextStreamId > MAX_STREAM_ID;
  }

  get activeStreams(): number {
    return this.#streams.size;
  }

  /** Opens a stream and queues its HEADERS; does not wait for the response. */
  request(req: H2Request): H2Stream {
    if (!this.usable) {
      const why = this.#error
        ? `connection failed: ${this.#error.message}`
        : this.#closing
        ? "connection is closed"
        : this.#goAway
        ? `peer sent GOAWAY (${errorCodeName(this.#goAway.code)})`
        : this.#nextStreamId > MAX_STREAM_ID
        ? "stream ids exhausted"
        : `peer allows ${this.#peer.maxConcurrentStreams} concurrent streams`;
      throw refusedStreamError(0, `cannot open a stream: ${why}`);
    }
    const fields: Array<[string, string]> = [
      [":method", req.method],
      [":scheme", req.scheme],
      [":authority", req.authority],
      [":path", req.path],
    ];
    for (const [name, value] of req.headers ?? []) {
      const lower = name.toLowerCase();
      // RFC 9113 §8.2.2: "An endpoint MUST NOT generate an HTTP/2 message containing
      // connection-specific header fields."
      if (
        CONNECTION_SPECIFIC.has(lower) || lower === "host" ||
        (lower === "te" && value !== "trailers")
      ) {
        throw new TypeError(`Cannot send header "${name}" over HTTP/2: it is connection-specific`);
      }
      fields.push([lower, value]);
    }
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    // Encode now, in stream-id order: HPACK state and RFC 9113 §5.1.1 (ids increase) both need
    // header blocks sent in the order they are encoded.
    const block = this.#encoder.encode(fields);
    const endStream = req.endStream ?? false;
    const stream = new H2Stream(id, this, {
      sendWindow: this.#peer.initialWindowSize,
      recvWindow: this.#opts.initialWindowSize,
      endStream,
      expectStatus: req.expectStatus,
    });
    this.#streams.set(id, stream);
    this.#writer.queue(
      encodeHeaderBlock(id, block, { endStream, maxFrameSize: this.#peer.maxFrameSize }),
    );
    return stream;
  }

  /** Sends GOAWAY NO_ERROR and closes the duplex; open streams fail. Never throws. */
  close(): void {
    this.#fail(new ConnectionError(ErrorCode.NO_ERROR, "connection closed by us"));
  }

  // ---- StreamHost ----

  reserve(stream: H2Stream, want: number): number {
    if (this.#closing) return 0;
    return this.#flow.reserve(stream, want, this.#peer.maxFrameSize);
  }

  queueData(stream: H2Stream, data: Uint8Array, endStream: boolean, notify: boolean): void {
    if (this.#closing) return;
    this.#writer.queue(
      encodeDataHeader(stream.id, data.byteLength, endStream),
      data.byteLength > 0 ? data : undefined,
      notify ? stream : undefined,
    );
  }

  queueReset(stream: H2Stream, code: number): void {
    if (this.#closing) return;
    this.#writer.queue(encodeRstStream(stream.id, code));
  }

  consumed(stream: H2Stream, n: number, streamToo: boolean): void {
    if (this.#closing || n <= 0) return;
    this.#flow.consumed(stream, n, streamToo);
  }

  streamClosed(stream: H2Stream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    // After GOAWAY the connection only lives for the streams the peer is still finishing.
    if (this.#goAway && this.#streams.size === 0) this.close();
  }

  // ---- the reader ----

  async #readLoop(): Promise<void> {
    const reader = new SocketReader(this.#duplex);
    const onFrame = (h: FrameHeader, payload: Uint8Array) => {
      this.#handle(h, payload);
      return !this.#closing;
    };
    // WINDOW_UPDATEs without allocations, when nothing else is going on (see applyWindowUpdate).
    const onWindowUpdate = (streamId: number, increment: number): boolean => {
      if (this.#closing || !this.#gotSettings || this.#blocks.inProgress) return false;
      try {
        return this.#flow.applyWindowUpdate(streamId, increment, this.#streams);
      } catch (err) {
        this.#onStreamError(err);
        return true;
      }
    };
    try {
      for (;;) {
        let r: Uint8Array | null;
        try {
          r = await reader.read();
        } catch (err) {
          if (this.#closing) break;
          throw new ConnectionError(
            ErrorCode.INTERNAL_ERROR,
            `read failed: ${(err as Error)?.message ?? err}`,
            { cause: err, initiator: "peer" },
          );
        }
        if (r === null) {
          throw new ConnectionError(
            ErrorCode.INTERNAL_ERROR,
            "peer closed the connection" + (this.#goAway ? "" : " without GOAWAY"),
            { initiator: "peer" },
          );
        }
        if (this.#closing) break;
        this.#health.read();
        this.#splitter.feed(r, onFrame, onWindowUpdate);
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

  /** Handles one frame; a `StreamError` resets that stream, a `ConnectionError` propagates. */
  #handle(h: FrameHeader, payload: Uint8Array): void {
    try {
      this.#dispatch(h, payload);
    } catch (err) {
      this.#onStreamError(err);
    }
  }

  /** A `StreamError` resets that stream; anything else propagates (and fails the connection). */
  #onStreamError(err: unknown): void {
    if (!(err instanceof StreamError)) throw err;
    const stream = this.#streams.get(err.streamId);
    this.#writer.urgent(encodeRstStream(err.streamId, err.code));
    stream?.fail(err);
  }

  #dispatch(h: FrameHeader, payload: Uint8Array): void {
    if (!this.#gotSettings) requireSettingsFirst(h, "peer");
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
          break;
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
      case FrameType.PRIORITY:
        // Validated, then ignored: RFC 9113 §5.3.2 deprecates the priority signals.
        parsePriority(h, payload);
        break;
      case FrameType.RST_STREAM: {
        const code = parseRstStream(h, payload);
        this.#checkNotIdle(h, "RST_STREAM");
        this.#streams.get(h.streamId)?.onReset(code);
        break;
      }
      case FrameType.SETTINGS:
        this.#onSettings(h, payload);
        break;
      case FrameType.PUSH_PROMISE:
        // RFC 9113 §6.6: "A client cannot push... If ENABLE_PUSH is 0 a PUSH_PROMISE is a
        // connection error of type PROTOCOL_ERROR" (§6.5.2) — we always send ENABLE_PUSH = 0.
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `PUSH_PROMISE on stream ${h.streamId} though we disabled push`,
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

  /**
   * RFC 9113 §5.1: frames other than PRIORITY on an "idle" stream — one we have not opened, or an
   * even (server-initiated) id, which push being off rules out — are a connection PROTOCOL_ERROR.
   */
  #checkNotIdle(h: FrameHeader, what: string): void {
    if (h.streamId % 2 === 0 || h.streamId >= this.#nextStreamId) {
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `${what} on idle stream ${h.streamId}`,
      );
    }
  }

  #onHeaderBlock(streamId: number, block: Uint8Array, endStream: boolean): void {
    const stream = this.#streams.get(streamId);
    if (!stream) this.#checkNotIdle({ streamId, type: 1, flags: 0, length: 0 }, "HEADERS");
    // RFC 9113 §4.3: every header block is decoded, even for a stream we reset, or the HPACK
    // tables of the two ends drift apart. Decoding errors are connection errors.
    const headers = this.#decoder.decode(block);
    stream?.onHeaders(headers, endStream);
  }

  #onSettings(h: FrameHeader, payload: Uint8Array): void {
    const f = parseSettings(h, payload);
    if (f.ack) return;
    this.#peer.apply(f.settings, this.#streams.values());
    // RFC 9113 §6.5.3: "Upon receiving ... the recipient MUST immediately emit a SETTINGS frame
    // with the ACK flag set."
    this.#writer.urgent(encodeSettingsAck());
    if (!this.#gotSettings) {
      this.#gotSettings = true;
      this.#resolveReady?.();
      this.#health.start();
    }
  }

  #onGoAway(f: { lastStreamId: number; code: number; debugData: Uint8Array }): void {
    // RFC 9113 §6.8: the last-stream-id may only go down across several GOAWAYs.
    const last = Math.min(f.lastStreamId, this.#goAway?.lastStreamId ?? MAX_STREAM_ID);
    this.#goAway = { lastStreamId: last, code: f.code };
    const debug = describeDebugData(f.debugData);
    for (const s of [...this.#streams.values()]) {
      if (s.id > last) {
        // "... streams with identifiers higher than the last-stream-id were not processed and
        // can be retried on a new connection."
        s.fail(refusedStreamError(
          s.id,
          `stream ${s.id} was not processed: peer sent GOAWAY (${
            errorCodeName(f.code)
          }${debug}) with last stream ${last}; safe to retry`,
        ));
      }
    }
    if (this.#streams.size === 0) this.close();
  }

  // ---- shutdown ----

  /** Ends the connection with `err`: GOAWAY (if we started it), every stream fails, duplex closed. */
  #fail(err: Error): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#error = err;
    this.#health.stop();
    this.#rejectReady?.(err);
    for (const s of this.#streams.values()) s.fail(err);
    this.#streams.clear();
    // Queued frames of failed streams are dropped; the GOAWAY goes out alone.
    this.#writer.clear();
    const local = !(err instanceof ConnectionError) || err.initiator === "local";
    void this.#shutdown(local ? err : undefined);
  }

  async #shutdown(err: Error | undefined): Promise<void> {
    if (err) {
      // The GOAWAY goes out alone, then a half-close so it is delivered before the reset that
      // close() may be.
      await this.#writer.finish(encodeGoAwayFor(this.#lastPeerStreamId(), err), GOAWAY_WRITE_MS);
    } else {
      await this.#writer.idle();
    }
    this.#duplex.close();
    this.#writer.release();
    await this.#readDone.catch(() => {});
    this.#resolveClosed(this.#error);
  }

  /** We accept no server-initiated streams, so the last stream we processed is always 0. */
  #lastPeerStreamId(): number {
    return 0;
  }
}
