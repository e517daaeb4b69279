/**
 * One HTTP/2 client stream (RFC 9113 §5.1, §8.1): its state, the response body as a pull-based
 * `ReadableStream` and the request body as a flow-controlled `WritableStream`.
 *
 * The stream never touches the socket: it asks its connection (a `StreamHost`) for send credit and
 * to queue frames, and the connection feeds it the frames the peer sends.
 */
import type { Duplex } from "../net/duplex.ts";
import type { StreamHost } from "./endpoint.ts";
import {
  type BodySender,
  keepsReceivedBytes,
  ReceiveBody,
  type ReceiveBodyOptions,
  SendBody,
} from "./body.ts";
import { ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { ReceiveWindow, SendWindow } from "./flow.ts";
import { contentLength, fieldProblem } from "./header_fields.ts";
import { type OpenedStreamState, type StreamState, StreamStateMachine } from "./stream_state.ts";
import type { TakenListener } from "./frame_writer.ts";

export type { StreamState };

const NO_BYTES = new Uint8Array(0);

export interface H2Response {
  status: number;
  headers: Array<[string, string]>;
}

/** An error meaning the peer did not process the stream, so the request is safe to retry. */
export type RetryableStreamError = StreamError & { readonly retryable: true };

export function refusedStreamError(streamId: number, message: string): RetryableStreamError {
  const err = new StreamError(streamId, ErrorCode.REFUSED_STREAM, message, { initiator: "peer" });
  return Object.assign(err, { retryable: true as const });
}

/** True for errors saying the peer never processed the request (GOAWAY / REFUSED_STREAM). */
export function isRetryable(err: unknown): boolean {
  return err instanceof Error && (err as { retryable?: unknown }).retryable === true;
}

/**
 * Every callback of one stream's state machine and body halves, as the methods of one object
 * (they are the options of all three) instead of a closure each: streams are opened per proxied
 * connection, and most live long and idle.
 */
class StreamLinks implements ReceiveBodyOptions, BodySender {
  readonly streamId: number;
  readonly window: ReceiveWindow;
  readonly peerName = "peer";
  readonly state: OpenedStreamState;
  life!: StreamStateMachine;
  #stream: H2Stream;
  #host: StreamHost<H2Stream>;

  constructor(stream: H2Stream, host: StreamHost<H2Stream>, state: OpenedStreamState) {
    this.#stream = stream;
    this.#host = host;
    this.streamId = stream.id;
    this.window = stream.recvWindow;
    this.state = state;
  }

  // ---- StreamStateMachine ----

  onClosed(): void {
    this.#host.streamClosed(this.#stream);
  }

  // ---- ReceiveBody: the response body ----

  onConsumed(n: number, streamToo: boolean): void {
    this.#host.consumed(this.#stream, n, streamToo);
  }

  /** The consumer does not want the rest of the response: tell the peer to stop sending it. */
  onCancel(): void {
    this.#stream.close();
  }

  // ---- SendBody: the request body ----

  reserve(want: number): number {
    return this.#host.reserve(this.#stream, want);
  }

  queueData(data: Uint8Array, endStream: boolean, notify: TakenListener | undefined): void {
    this.#host.queueData(this.#stream, data, endStream, notify);
  }

  beforeEnd(): boolean {
    const state = this.life.state;
    return state === "open" || state === "half-closed-remote";
  }

  ended(): void {
    this.life.endLocal();
  }

  abort(): void {
    this.#stream.close();
  }
}

export interface H2StreamOptions {
  sendWindow: number;
  recvWindow: number;
  endStream: boolean;
  /** The only final status accepted; any other fails the stream (see H2Request.expectStatus). */
  expectStatus?: number;
}

/** A promise made on first use, settled when its outcome is known (most streams never ask). */
interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Whoever asked may not await it; a failure is also reported through the body streams.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export class H2Stream implements Duplex {
  readonly id: number;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** A write resolves once its bytes were copied into a connection write (SendBody). */
  readonly copiesWrites = true;
  /** Send credit the peer gave this stream. */
  readonly sendWindow: SendWindow;
  /** Receive credit we gave the peer for this stream. */
  readonly recvWindow: ReceiveWindow;

  #life: StreamStateMachine;
  #host: StreamHost<H2Stream>;
  #error: Error | undefined;
  #expectStatus: number;

  /** The final response, once its HEADERS arrived. */
  #response: H2Response | undefined;
  /** The trailers once known: a list, or null when the body ended without any. */
  #trailers: Array<[string, string]> | null | undefined;
  #responseWaiter: Deferred<H2Response> | undefined;
  #trailersWaiter: Deferred<Array<[string, string]> | undefined> | undefined;
  #contentLength = -1;
  /** The response body. */
  #in: ReceiveBody;
  /** The request body. */
  #out: SendBody;

  constructor(id: number, host: StreamHost<H2Stream>, options: H2StreamOptions) {
    this.id = id;
    this.#host = host;
    this.#expectStatus = options.expectStatus ?? -1;
    this.sendWindow = new SendWindow(options.sendWindow);
    this.recvWindow = new ReceiveWindow(options.recvWindow);

    // RFC 9113 §5.1: sending HEADERS opens the stream; with END_STREAM it is half-closed (local).
    const links = new StreamLinks(this, host, options.endStream ? "half-closed-local" : "open");
    this.#life = links.life = new StreamStateMachine(id, links);
    this.#in = new ReceiveBody(links);
    this.#out = new SendBody(links);
    this.readable = this.#in.readable;
    this.writable = this.#out.writable;
    if (options.endStream) this.writable.close().catch(() => {});
  }

  /** The final response (informational ones skipped); rejects if the stream fails before it. */
  get response(): Promise<H2Response> {
    if (this.#responseWaiter) return this.#responseWaiter.promise;
    const waiter = this.#responseWaiter = deferred<H2Response>();
    if (this.#response) waiter.resolve(this.#response);
    else if (this.#error) waiter.reject(this.#error);
    return waiter.promise;
  }

  /**
   * The trailers, or undefined when the body ended without any; rejects if the stream fails
   * before its body was received in full.
   */
  get trailers(): Promise<Array<[string, string]> | undefined> {
    if (this.#trailersWaiter) return this.#trailersWaiter.promise;
    const waiter = this.#trailersWaiter = deferred<Array<[string, string]> | undefined>();
    if (this.#trailers !== undefined) waiter.resolve(this.#trailers ?? undefined);
    else if (this.#error) waiter.reject(this.#error);
    return waiter.promise;
  }

  get state(): StreamState {
    return this.#life.state;
  }

  get #state(): StreamState {
    return this.#life.state;
  }

  /** The error the stream failed with, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /**
   * Ends the stream unless it is already closed: END_STREAM first while the request body is open
   * and whole (no chunk half sent), then RST_STREAM CANCEL. Never throws.
   *
   * Why END_STREAM first: v2ray 4.34's h2 server runs each stream's handler with the request
   * body read on one goroutine and the response written on another, returns from the handler as
   * soon as either fails, and panics the whole process ("Header called after Handler finished",
   * hub.go:56) when the other one is still inside a Write at that moment. A bare reset fails both
   * at once; after END_STREAM the body read ends cleanly, so the handler only returns once the
   * response writer itself has failed on the reset.
   */
  close(): void {
    if (this.#state === "closed") {
      this.#in.drop();
      return;
    }
    const local = this.#state === "open" || this.#state === "half-closed-remote";
    if (local && !this.#out.waitingForWindow) this.#host.queueData(this, NO_BYTES, true);
    this.reset();
  }

  /**
   * Resets the stream (RST_STREAM CANCEL) unless it is already closed, without ending the request
   * body first: the abortive close, for a stream whose local side was cut short. Never throws.
   */
  reset(): void {
    if (this.#state === "closed") {
      this.#in.drop();
      return;
    }
    this.#host.queueReset(this, ErrorCode.CANCEL);
    this.fail(new StreamError(this.id, ErrorCode.CANCEL, `reset stream ${this.id}: cancelled`));
  }

  // ---- called by the connection for frames from the peer ----

  /** A complete header block (response, informational response or trailers). */
  onHeaders(headers: Array<[string, string]>, endStream: boolean): void {
    this.#life.checkRemoteOpen("HEADERS");
    if (!this.#response) {
      const status = this.#validate(headers, true);
      if (status >= 100 && status < 200) {
        // RFC 9113 §8.1: informational responses precede the final one and cannot end the stream.
        if (endStream || status === 101) {
          throw this.#malformed(
            `informational status ${status} ${endStream ? "with END_STREAM" : ""}`,
          );
        }
        return;
      }
      const fields = headers.filter(([name]) => name[0] !== ":");
      this.#contentLength = contentLength(fields, (what) => this.#malformed(what));
      const response = this.#response = { status, headers: fields };
      this.#responseWaiter?.resolve(response);
      if (this.#expectStatus !== -1 && status !== this.#expectStatus) {
        this.#unexpectedStatus(status, endStream);
        return;
      }
    } else {
      // RFC 9113 §8.1: trailers are the last header block and carry END_STREAM.
      if (!endStream) throw this.#malformed("trailers HEADERS without END_STREAM");
      this.#validate(headers, false);
      this.#trailers = headers;
      this.#trailersWaiter?.resolve(headers);
    }
    if (endStream) this.#endRemote();
  }

  /** A DATA frame; `flowLength` counts padding, which is credited back at once. */
  onData(data: Uint8Array, flowLength: number, endStream: boolean): void {
    this.#life.checkRemoteOpen("DATA");
    this.#in.admit(flowLength);
    // RFC 9113 §8.1: a response is HEADERS, then DATA; DATA first is malformed.
    if (!this.#response) throw this.#malformed("DATA before the response HEADERS");
    this.#in.push(data, flowLength);
    if (endStream) this.#endRemote();
  }

  /** The peer reset the stream. */
  onReset(code: number): void {
    if (code === ErrorCode.REFUSED_STREAM && !this.#response) {
      this.fail(
        refusedStreamError(
          this.id,
          `peer refused stream ${this.id} (REFUSED_STREAM): not processed, safe to retry`,
        ),
      );
      return;
    }
    // RFC 9113 §8.1: after a complete response (END_STREAM received), RST_STREAM NO_ERROR just
    // asks us to stop sending; the body stays a complete body. Before END_STREAM any reset cuts
    // the response short: its readable ends in this error, after the bytes already received.
    this.fail(
      new StreamError(this.id, code, `peer reset stream ${this.id} (${errorCodeName(code)})`, {
        initiator: "peer",
      }),
    );
  }

  /** The send window may have grown. */
  wakeWindow(): void {
    this.#out.wakeWindow();
  }

  get waitingForWindow(): boolean {
    return this.#out.waitingForWindow;
  }

  /**
   * Ends the stream with `err`: pending and later writes fail; the response body fails unless it
   * was already received in full; unread bytes are credited back to the connection.
   */
  fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    if (!this.#response) this.#responseWaiter?.reject(err);
    if (!this.#in.ended) this.#trailersWaiter?.reject(err);
    this.#in.fail(err, keepsReceivedBytes(err));
    this.#out.fail(err);
    this.#life.close();
  }

  // ---- internals ----

  /**
   * A final status the caller does not accept: the stream fails with "unexpected status N" and,
   * unless the peer's END_STREAM just closed it, is reset with CANCEL. Its body is not wanted.
   */
  #unexpectedStatus(status: number, endStream: boolean): void {
    if (!(endStream && this.#state === "half-closed-local")) {
      this.#host.queueReset(this, ErrorCode.CANCEL);
    }
    this.fail(new Error(`unexpected status ${status}`));
  }

  #malformed(what: string): StreamError {
    return new StreamError(
      this.id,
      ErrorCode.PROTOCOL_ERROR,
      `reset stream ${this.id}: malformed response: ${what}`,
    );
  }

  /** RFC 9113 §8.2, §8.3: field names and pseudo-headers. Returns `:status` for a response. */
  #validate(headers: Array<[string, string]>, isResponse: boolean): number {
    let status = -1;
    let regular = false;
    for (const [name, value] of headers) {
      if (name[0] === ":") {
        // RFC 9113 §8.3: "Pseudo-header fields MUST NOT appear in a trailer section" and "All
        // pseudo-header fields MUST appear in a field block before all regular field lines".
        if (!isResponse) throw this.#malformed(`pseudo-header "${name}" in trailers`);
        if (regular) throw this.#malformed(`pseudo-header "${name}" after regular header`);
        // RFC 9113 §8.3.2: the only response pseudo-header is ":status"; others are malformed.
        if (name !== ":status") throw this.#malformed(`unknown pseudo-header "${name}"`);
        if (status !== -1) throw this.#malformed(`duplicate header ":status"`);
        if (!/^[1-9][0-9][0-9]$/.test(value)) {
          throw this.#malformed(`header ":status" is "${value}"`);
        }
        status = Number(value);
        continue;
      }
      regular = true;
      const problem = fieldProblem(name, value);
      if (problem) throw this.#malformed(problem);
    }
    if (isResponse && status === -1) throw this.#malformed(`missing header ":status"`);
    return status;
  }

  #endRemote(): void {
    // RFC 9113 §8.1.1: a content-length that does not match the DATA received is malformed.
    const received = this.#in.received;
    if (this.#contentLength >= 0 && this.#contentLength !== received) {
      throw this.#malformed(`content-length ${this.#contentLength} but ${received} bytes of DATA`);
    }
    this.#in.end();
    if (this.#trailers === undefined) {
      this.#trailers = null;
      this.#trailersWaiter?.resolve(undefined);
    }
    this.#life.endRemote();
  }
}
