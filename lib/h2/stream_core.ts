/**
 * What an HTTP/2 stream is in either role (RFC 9113 §5.1): its id, windows and state, the body the
 * peer sends as a pull-based `ReadableStream` and ours as a flow-controlled `WritableStream`, and
 * how it ends — END_STREAM either way, resets either way, failure. H2Stream (the client's,
 * stream.ts) and H2ServerStream (server_stream.ts) add only what their role's header blocks mean.
 *
 * A stream never touches the socket: it asks its connection (a `StreamHost`) for send credit and
 * to queue frames, and the connection feeds it the frames the peer sends.
 */
import type { EndpointStream, StreamHost } from "./endpoint.ts";
import {
  type BodySender,
  keepsReceivedBytes,
  ReceiveBody,
  type ReceiveBodyOptions,
  SendBody,
} from "./body.ts";
import { errorCodeName, StreamError } from "./errors.ts";
import { ReceiveWindow, SendWindow } from "./flow.ts";
import type { TakenListener } from "./frame_writer.ts";
import { type OpenedStreamState, StreamStateMachine } from "./stream_state.ts";

/**
 * Every callback of one stream's state machine and body halves, as the methods of one object
 * (they are the options of all three) instead of a closure each: streams are opened per proxied
 * connection, and most live long and idle. A role whose bodies need more of the stream extends it
 * (the server's response HEADERS go out before its first DATA).
 */
export class StreamLinks implements ReceiveBodyOptions, BodySender {
  readonly streamId: number;
  readonly window: ReceiveWindow;
  readonly peerName: string;
  readonly state: OpenedStreamState;
  /** Body bytes handed to the connection so far. */
  sent = 0;
  life!: StreamStateMachine;
  protected readonly stream: H2StreamCore;
  #host: StreamHost<H2StreamCore>;

  constructor(
    stream: H2StreamCore,
    options: { host: StreamHost<H2StreamCore>; state: OpenedStreamState; peerName: string },
  ) {
    this.stream = stream;
    this.#host = options.host;
    this.streamId = stream.id;
    this.window = stream.recvWindow;
    this.state = options.state;
    this.peerName = options.peerName;
  }

  // ---- StreamStateMachine ----

  onClosed(): void {
    this.#host.streamClosed(this.stream);
  }

  // ---- ReceiveBody: the peer's body ----

  onConsumed(n: number, streamToo: boolean): void {
    this.#host.consumed(this.stream, n, streamToo);
  }

  /** The consumer does not want the rest of the body: tell the peer to stop sending it. */
  onCancel(): void {
    this.stream.close();
  }

  // ---- SendBody: our body ----

  reserve(want: number): number {
    const n = this.#host.reserve(this.stream, want);
    this.sent += n;
    return n;
  }

  queueData(data: Uint8Array, endStream: boolean, notify: TakenListener | undefined): void {
    this.#host.queueData(this.stream, data, endStream, notify);
  }

  beforeEnd(): boolean {
    const state = this.life.state;
    return state === "open" || state === "half-closed-remote";
  }

  ended(): void {
    this.life.endLocal();
  }

  abort(): void {
    this.stream.close();
  }
}

export interface StreamCoreOptions {
  /** The peer's SETTINGS_INITIAL_WINDOW_SIZE: our send credit. */
  sendWindow: number;
  /** Our SETTINGS_INITIAL_WINDOW_SIZE: the peer's send credit. */
  recvWindow: number;
  /** Where the HEADERS that opened the stream left it (RFC 9113 §5.1). */
  state: OpenedStreamState;
  /** Names the peer in errors ("peer", "client"). */
  peerName: string;
  /** The links of a role whose bodies need more of the stream than StreamLinks gives them. */
  links?: typeof StreamLinks;
}

export abstract class H2StreamCore implements EndpointStream {
  readonly id: number;
  /** A write resolves once its bytes were copied into a connection write (SendBody). */
  readonly copiesWrites = true;
  /** Send credit the peer gave this stream. */
  readonly sendWindow: SendWindow;
  /** Receive credit we gave the peer for this stream. */
  readonly recvWindow: ReceiveWindow;
  /** Our body; flow control wakes it directly when send credit arrives. */
  readonly sendBody: SendBody;

  protected readonly host: StreamHost<H2StreamCore>;
  protected readonly life: StreamStateMachine;
  /** The peer's body. */
  protected readonly receiveBody: ReceiveBody;
  /** The peer's content-length (-1: none), checked against the DATA received (endRemote). */
  protected contentLength = -1;
  #links: StreamLinks;
  #error: Error | undefined;

  protected constructor(id: number, host: StreamHost<H2StreamCore>, options: StreamCoreOptions) {
    this.id = id;
    this.host = host;
    this.sendWindow = new SendWindow(options.sendWindow);
    this.recvWindow = new ReceiveWindow(options.recvWindow);
    const links = this.#links = new (options.links ?? StreamLinks)(this, {
      host,
      state: options.state,
      peerName: options.peerName,
    });
    this.life = links.life = new StreamStateMachine(id, links);
    this.receiveBody = new ReceiveBody(links);
    this.sendBody = new SendBody(links);
  }

  /** The peer's body. */
  get readable(): ReadableStream<Uint8Array> {
    return this.receiveBody.readable;
  }

  /** Our body; closing it sends END_STREAM. */
  get writable(): WritableStream<Uint8Array> {
    return this.sendBody.writable;
  }

  /**
   * The peer's body read directly, without a ReadableStream (HeldDuplex's reader): for a relay or
   * a VLESS connection. Take this or `readable`, not both.
   */
  get reader(): ReadableStreamDefaultReader<Uint8Array> {
    return this.receiveBody.reader;
  }

  /** Our body written directly, without a WritableStream (see `reader`). */
  get writer(): WritableStreamDefaultWriter<Uint8Array> {
    return this.sendBody.writer;
  }

  get state(): OpenedStreamState {
    return this.life.state;
  }

  /** The error the stream failed with, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Body bytes handed to the connection so far. */
  get bytesSent(): number {
    return this.#links.sent;
  }

  /** Ends the stream unless it is already closed: `reset()`, unless a role says more. */
  close(): void {
    this.reset();
  }

  /**
   * Resets the stream (RST_STREAM, see `resetError`) unless it is already closed: the abortive
   * close. Never throws.
   */
  reset(): void {
    if (this.life.state === "closed") {
      this.receiveBody.drop();
      return;
    }
    const err = this.resetError();
    this.host.queueReset(this, err.code);
    this.fail(err);
  }

  // ---- called by the connection for frames from the peer ----

  /** A header block after the one that opened the stream (a response, trailers). */
  onHeaders(fields: Array<[string, string]>, endStream: boolean): void {
    this.life.checkRemoteOpen("HEADERS");
    this.receivedHeaders(fields, endStream);
  }

  /** A DATA frame; `flowLength` counts padding, which is credited back at once. */
  onData(data: Uint8Array, flowLength: number, endStream: boolean): void {
    this.life.checkRemoteOpen("DATA");
    this.receiveBody.admit(flowLength);
    this.checkData();
    this.receiveBody.push(data, flowLength);
    if (endStream) this.endRemote();
  }

  /** The peer reset the stream. */
  onReset(code: number): void {
    // RFC 9113 §8.1: after a complete body (END_STREAM received), RST_STREAM NO_ERROR just asks us
    // to stop sending; the body stays a complete body. Before END_STREAM any reset cuts the body
    // short: its readable ends in this error, after the bytes already received.
    const name = errorCodeName(code);
    this.fail(
      new StreamError(this.id, code, `${this.#links.peerName} reset stream ${this.id} (${name})`, {
        initiator: "peer",
      }),
    );
  }

  /**
   * Ends the stream with `err`: pending and later writes fail; the peer's body fails unless it was
   * already received in full (bytes the peer sent stay readable ahead of an error it caused);
   * unread bytes are credited back to the connection.
   */
  fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.receiveBody.fail(err, keepsReceivedBytes(err));
    this.sendBody.fail(err);
    this.life.close();
  }

  // ---- what a role adds ----

  /** A header block on the open stream; the state allows it. */
  protected abstract receivedHeaders(fields: Array<[string, string]>, endStream: boolean): void;

  /** A StreamError PROTOCOL_ERROR for a malformed message (RFC 9113 §8.1.1). */
  protected abstract malformed(what: string): StreamError;

  /** What `reset()` resets the stream with. */
  protected abstract resetError(): StreamError;

  /** Throws if DATA may not come yet (admitted to the window, not yet buffered). */
  protected checkData(): void {}

  /** The peer's END_STREAM was accepted; the body has ended and the state moves on next. */
  protected remoteEnded(): void {}

  /** The peer sent END_STREAM. */
  protected endRemote(): void {
    // RFC 9113 §8.1.1: "A request or response is also malformed if the value of a content-length
    // header field does not equal the sum of the DATA frame payload lengths".
    const received = this.receiveBody.received;
    if (this.contentLength >= 0 && this.contentLength !== received) {
      throw this.malformed(`content-length ${this.contentLength} but ${received} bytes of DATA`);
    }
    this.receiveBody.end();
    this.remoteEnded();
    this.life.endRemote();
  }
}
