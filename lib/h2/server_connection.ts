/**
 * The server role of an HTTP/2 connection (RFC 9113) over any {@link Duplex}: it serves the
 * streams clients open and checks what only a server checks; everything both roles share — the
 * preface, the read loop, the writer, SETTINGS, PING, GOAWAY both ways, flow control, stream
 * errors, shutdown — is the {@link H2Endpoint} it drives.
 *
 * Abusive clients (RFC 9113 §10.5) end with GOAWAY ENHANCE_YOUR_CALM: one that makes us reset
 * streams faster than the reset budget allows (rapid reset, CVE-2023-44487: open a stream, reset
 * it, repeat — each one started a handler), and (in the endpoint, for both roles) one that lets
 * more than MAX_QUEUED_URGENT replies to its SETTINGS and PINGs pile up unread (abuse_limit.ts has
 * the numbers and why).
 */
import type { Duplex } from "../net/duplex.ts";
import { AbuseLimit, RESET_BURST, RESET_PER_SECOND } from "./abuse_limit.ts";
import { type EndpointRole, H2Endpoint } from "./endpoint.ts";
import { ConnectionError, ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { SettingId } from "./frame.ts";
import { type H2ServerRequest, H2ServerStream, parseRequest } from "./server_stream.ts";
import { resolveSettings } from "./settings.ts";

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

export class H2ServerConnection implements EndpointRole<H2ServerStream> {
  /** Resolves when the connection is gone: undefined for a clean end, else what ended it. */
  readonly closed: Promise<Error | undefined>;

  #endpoint: H2Endpoint<H2ServerStream>;
  #onStream: StreamHandler;
  #opts: typeof DEFAULTS;
  /** Client-caused stream resets: the rapid-reset budget. */
  #resets: AbuseLimit;

  private constructor(duplex: Duplex, onStream: StreamHandler, options: H2ServerOptions) {
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
    this.#endpoint = new H2Endpoint<H2ServerStream>(duplex, this, {
      ...o,
      isClient: false,
      peerName: "client",
      settings: [
        [SettingId.MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
        [SettingId.INITIAL_WINDOW_SIZE, o.initialWindowSize],
        [SettingId.MAX_FRAME_SIZE, o.maxFrameSize],
        [SettingId.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
      ],
    });
    this.closed = this.#endpoint.closed.then((err) =>
      err instanceof ConnectionError && err.code === ErrorCode.NO_ERROR ? undefined : err
    );
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
    await conn.#endpoint.ready;
    return conn;
  }

  /** Streams open right now (not yet closed both ways or reset). */
  get activeStreams(): number {
    return this.#endpoint.streams.size;
  }

  /** Sends GOAWAY NO_ERROR with the last stream id processed and closes now; open streams fail. */
  close(): void {
    this.#endpoint.close();
  }

  /**
   * Graceful close: GOAWAY NO_ERROR now (new streams are refused), open streams get up to
   * `graceMs` to finish, then the connection closes. Resolves once it is closed.
   */
  shutdown(graceMs: number): Promise<void> {
    return this.#endpoint.shutdown(graceMs);
  }

  // ---- EndpointRole: what only a server does ----

  openStream(streamId: number, fields: Array<[string, string]>, endStream: boolean): void {
    const e = this.#endpoint;
    // RFC 9113 §5.1.2: "An endpoint that receives a HEADERS frame that causes its advertised
    // concurrent stream limit to be exceeded MUST treat this as a stream error of type
    // PROTOCOL_ERROR or REFUSED_STREAM." REFUSED_STREAM tells the client it may retry.
    if (e.streams.size >= this.#opts.maxConcurrentStreams) {
      throw new StreamError(
        streamId,
        ErrorCode.REFUSED_STREAM,
        `refused stream ${streamId}: ${e.streams.size} streams open, the limit is ${this.#opts.maxConcurrentStreams}`,
      );
    }
    const request = parseRequest(streamId, fields);
    const created = new H2ServerStream(streamId, request, e, {
      sendWindow: e.peer.initialWindowSize,
      recvWindow: this.#opts.initialWindowSize,
      endStream,
    });
    e.addStream(created);
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

  onPeerReset(stream: H2ServerStream, code: number): void {
    // Only a stream still being served counts: resetting one whose response we have sent in full
    // (half-closed local: only the client's upload was open) costs us nothing, and a client may
    // well cancel a request body once the answer is in.
    const served = stream.state !== "half-closed-local";
    stream.onReset(code);
    if (served) this.#spendReset(stream.id);
  }

  onStreamError(err: StreamError): void {
    // Every stream error here was the client's doing (a malformed request, a refused stream,
    // a flow-control violation), except a handler that threw: our bug, not its abuse.
    if (err.code !== ErrorCode.INTERNAL_ERROR) this.#spendReset(err.streamId);
  }

  onGoAway(code: number, _last: number, debug: string): void {
    // A client's GOAWAY says it is going: it opens no more streams. With NO_ERROR the streams in
    // flight finish first; with an error code the client is about to drop the connection.
    if (code !== ErrorCode.NO_ERROR) {
      throw new ConnectionError(
        code,
        `client sent GOAWAY (${errorCodeName(code)}${debug})`,
        { initiator: "peer" },
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
}
