/**
 * The client role of an HTTP/2 connection (RFC 9113) over any {@link Duplex}: it opens streams
 * (odd ids, in order) and checks what only a client checks; everything both roles share — the
 * read loop, the writer, SETTINGS, PING, GOAWAY, flow control, stream errors, shutdown — is the
 * {@link H2Endpoint} it drives.
 */
import type { Duplex } from "../net/duplex.ts";
import { type EndpointRole, H2Endpoint, MAX_STREAM_ID } from "./endpoint.ts";
import { ConnectionError, ErrorCode, errorCodeName, type StreamError } from "./errors.ts";
import { SettingId } from "./frame.ts";
import { CONNECTION_SPECIFIC } from "./header_fields.ts";
import { resolveSettings } from "./settings.ts";
import { H2Stream, refusedStreamError } from "./stream.ts";

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
   * The caller writes the first body bytes (or closes the stream) right away: HEADERS wait in the
   * queue for them (or for any frame queued meanwhile) and leave in the same write. Ignored with
   * `endStream`. For a tunnel whose first payload carries its own header (VLESS: at most 100 ms).
   */
  holdHeaders?: boolean;
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

export class H2Connection implements EndpointRole<H2Stream> {
  #endpoint: H2Endpoint<H2Stream>;
  #opts: typeof DEFAULTS;
  #nextStreamId: number;

  private constructor(duplex: Duplex, options: H2ConnectionOptions) {
    const o = this.#opts = resolveSettings(DEFAULTS, options);
    this.#nextStreamId = options.firstStreamId ?? 1;
    if (this.#nextStreamId % 2 !== 1) throw new RangeError(`firstStreamId must be odd`);
    this.#endpoint = new H2Endpoint<H2Stream>(duplex, this, {
      ...o,
      isClient: true,
      peerName: "peer",
      settings: [
        [SettingId.ENABLE_PUSH, 0],
        [SettingId.INITIAL_WINDOW_SIZE, o.initialWindowSize],
        [SettingId.MAX_FRAME_SIZE, o.maxFrameSize],
        [SettingId.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
      ],
      // A server that does not send its SETTINGS (or ACK ours) in time is as dead as one that
      // does not answer a PING.
      settingsTimeout: o.pingTimeout,
    });
  }

  /** Sends the preface and SETTINGS and waits for the peer's SETTINGS. */
  static async connect(duplex: Duplex, options: H2ConnectionOptions = {}): Promise<H2Connection> {
    const conn = new H2Connection(duplex, options);
    await conn.#endpoint.ready;
    return conn;
  }

  /** Resolves when the connection is gone, with what ended it (NO_ERROR for a clean close). */
  get closed(): Promise<Error> {
    return this.#endpoint.closed;
  }

  /** Open, no GOAWAY, stream ids left, and below the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get usable(): boolean {
    const e = this.#endpoint;
    return !e.closing && !e.peerGoAway && this.#nextStreamId <= MAX_STREAM_ID &&
      e.streams.size < e.peer.maxConcurrentStreams;
  }

  /** True once the peer sent GOAWAY or the connection closed: it will never be usable again. */
  get goingAway(): boolean {
    const e = this.#endpoint;
    return e.closing || e.peerGoAway !== undefined || this.#nextStreamId > MAX_STREAM_ID;
  }

  get activeStreams(): number {
    return this.#endpoint.streams.size;
  }

  /** When bytes last arrived from the server (performance.now() ms). */
  get lastReadAt(): number {
    return this.#endpoint.lastReadAt;
  }

  /** Opens a stream and queues its HEADERS; does not wait for the response. */
  request(req: H2Request): H2Stream {
    const e = this.#endpoint;
    if (!this.usable) {
      const goAway = e.peerGoAway;
      const why = e.error
        ? `connection failed: ${e.error.message}`
        : e.closing
        ? "connection is closed"
        : goAway
        ? `peer sent GOAWAY (${errorCodeName(goAway.code)})`
        : this.#nextStreamId > MAX_STREAM_ID
        ? "stream ids exhausted"
        : `peer allows ${e.peer.maxConcurrentStreams} concurrent streams`;
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
    const endStream = req.endStream ?? false;
    const stream = new H2Stream(id, e, {
      sendWindow: e.peer.initialWindowSize,
      recvWindow: this.#opts.initialWindowSize,
      endStream,
      expectStatus: req.expectStatus,
    });
    e.addStream(stream);
    // Encoded now, in stream-id order: HPACK state and RFC 9113 §5.1.1 (ids increase) both need
    // header blocks sent in the order they are encoded.
    e.queueHeaders(stream, fields, endStream, req.holdHeaders === true && !endStream);
    return stream;
  }

  /** Sends GOAWAY NO_ERROR and closes the duplex; open streams fail. Never throws. */
  close(): void {
    this.#endpoint.close();
  }

  // ---- EndpointRole: what only a client does ----

  /**
   * RFC 9113 §8.4: a server opens streams only by PUSH_PROMISE, and we send
   * SETTINGS_ENABLE_PUSH = 0; a HEADERS opening an even stream is a connection PROTOCOL_ERROR.
   */
  openStream(streamId: number): void {
    throw new ConnectionError(
      ErrorCode.PROTOCOL_ERROR,
      `HEADERS on even stream ${streamId}: servers cannot open streams (push is off)`,
    );
  }

  onPeerReset(stream: H2Stream, code: number): void {
    stream.onReset(code);
  }

  onStreamError(_err: StreamError): void {
    // A server's abuse is bounded by the streams we open.
  }

  onGoAway(code: number, last: number, debug: string): void {
    for (const s of [...this.#endpoint.streams.values()]) {
      if (s.id > last) {
        // RFC 9113 §6.8: "... streams with identifiers higher than the last-stream-id were not
        // processed and can be retried on a new connection."
        s.fail(refusedStreamError(
          s.id,
          `stream ${s.id} was not processed: peer sent GOAWAY (${
            errorCodeName(code)
          }${debug}) with last stream ${last}; safe to retry`,
        ));
      }
    }
  }
}
