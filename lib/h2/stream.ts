/**
 * One HTTP/2 client stream (RFC 9113 §5.1, §8.1): what a response's header blocks mean — the
 * response, informational responses, trailers, the status the caller expects. Its state, windows
 * and bodies (the response body to read, the request body to write) are the {@link H2StreamCore}
 * both roles share.
 */
import type { Duplex } from "../net/duplex.ts";
import type { StreamHost } from "./endpoint.ts";
import { ErrorCode, StreamError } from "./errors.ts";
import { contentLength, fieldProblem } from "./header_fields.ts";
import { H2StreamCore } from "./stream_core.ts";
import type { StreamState } from "./stream_state.ts";

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

export class H2Stream extends H2StreamCore implements Duplex {
  #expectStatus: number;
  /** The final response, once its HEADERS arrived. */
  #response: H2Response | undefined;
  /** The trailers once known: a list, or null when the body ended without any. */
  #trailers: Array<[string, string]> | null | undefined;
  #responseWaiter: Deferred<H2Response> | undefined;
  #trailersWaiter: Deferred<Array<[string, string]> | undefined> | undefined;

  constructor(id: number, host: StreamHost<H2Stream>, options: H2StreamOptions) {
    // RFC 9113 §5.1: sending HEADERS opens the stream; with END_STREAM it is half-closed (local).
    super(id, host, {
      sendWindow: options.sendWindow,
      recvWindow: options.recvWindow,
      state: options.endStream ? "half-closed-local" : "open",
      peerName: "peer",
    });
    this.#expectStatus = options.expectStatus ?? -1;
    if (options.endStream) this.sendBody.closeEarly();
  }

  /** The final response (informational ones skipped); rejects if the stream fails before it. */
  get response(): Promise<H2Response> {
    if (this.#responseWaiter) return this.#responseWaiter.promise;
    const waiter = this.#responseWaiter = deferred<H2Response>();
    if (this.#response) waiter.resolve(this.#response);
    else if (this.error) waiter.reject(this.error);
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
    else if (this.error) waiter.reject(this.error);
    return waiter.promise;
  }

  /**
   * Ends the stream unless it is already closed: END_STREAM first while the request body is open
   * and whole (no chunk half sent), then RST_STREAM CANCEL (`reset()`). Never throws.
   *
   * Why END_STREAM first: v2ray 4.34's h2 server runs each stream's handler with the request
   * body read on one goroutine and the response written on another, returns from the handler as
   * soon as either fails, and panics the whole process ("Header called after Handler finished",
   * hub.go:56) when the other one is still inside a Write at that moment. A bare reset fails both
   * at once; after END_STREAM the body read ends cleanly, so the handler only returns once the
   * response writer itself has failed on the reset.
   */
  override close(): void {
    const state = this.life.state;
    const local = state === "open" || state === "half-closed-remote";
    if (local && !this.sendBody.waitingForWindow) this.host.queueData(this, NO_BYTES, true);
    this.reset();
  }

  /** The peer reset the stream. */
  override onReset(code: number): void {
    if (code === ErrorCode.REFUSED_STREAM && !this.#response) {
      this.fail(
        refusedStreamError(
          this.id,
          `peer refused stream ${this.id} (REFUSED_STREAM): not processed, safe to retry`,
        ),
      );
      return;
    }
    super.onReset(code);
  }

  /** As H2StreamCore.fail(); a response or trailers not yet received reject too. */
  override fail(err: Error): void {
    if (!this.error) {
      if (!this.#response) this.#responseWaiter?.reject(err);
      if (!this.receiveBody.ended) this.#trailersWaiter?.reject(err);
    }
    super.fail(err);
  }

  // ---- H2StreamCore: what a response's header blocks mean ----

  /** A complete header block (response, informational response or trailers). */
  protected receivedHeaders(headers: Array<[string, string]>, endStream: boolean): void {
    if (!this.#response) {
      const status = this.#validate(headers, true);
      if (status >= 100 && status < 200) {
        // RFC 9113 §8.1: informational responses precede the final one and cannot end the stream.
        if (endStream || status === 101) {
          throw this.malformed(
            `informational status ${status} ${endStream ? "with END_STREAM" : ""}`,
          );
        }
        return;
      }
      const fields = headers.filter(([name]) => name[0] !== ":");
      this.contentLength = contentLength(fields, (what) => this.malformed(what));
      const response = this.#response = { status, headers: fields };
      this.#responseWaiter?.resolve(response);
      if (this.#expectStatus !== -1 && status !== this.#expectStatus) {
        this.#unexpectedStatus(status, endStream);
        return;
      }
    } else {
      // RFC 9113 §8.1: trailers are the last header block and carry END_STREAM.
      if (!endStream) throw this.malformed("trailers HEADERS without END_STREAM");
      this.#validate(headers, false);
      this.#trailers = headers;
      this.#trailersWaiter?.resolve(headers);
    }
    if (endStream) this.endRemote();
  }

  protected override checkData(): void {
    // RFC 9113 §8.1: a response is HEADERS, then DATA; DATA first is malformed.
    if (!this.#response) throw this.malformed("DATA before the response HEADERS");
  }

  protected override remoteEnded(): void {
    if (this.#trailers === undefined) {
      this.#trailers = null;
      this.#trailersWaiter?.resolve(undefined);
    }
  }

  protected malformed(what: string): StreamError {
    return new StreamError(
      this.id,
      ErrorCode.PROTOCOL_ERROR,
      `reset stream ${this.id}: malformed response: ${what}`,
    );
  }

  /** We give up on the response: RST_STREAM CANCEL. */
  protected resetError(): StreamError {
    return new StreamError(this.id, ErrorCode.CANCEL, `reset stream ${this.id}: cancelled`);
  }

  // ---- internals ----

  /**
   * A final status the caller does not accept: the stream fails with "unexpected status N" and,
   * unless the peer's END_STREAM just closed it, is reset with CANCEL. Its body is not wanted.
   */
  #unexpectedStatus(status: number, endStream: boolean): void {
    if (!(endStream && this.life.state === "half-closed-local")) {
      this.host.queueReset(this, ErrorCode.CANCEL);
    }
    this.fail(new Error(`unexpected status ${status}`));
  }

  /** RFC 9113 §8.2, §8.3: field names and pseudo-headers. Returns `:status` for a response. */
  #validate(headers: Array<[string, string]>, isResponse: boolean): number {
    let status = -1;
    let regular = false;
    for (const [name, value] of headers) {
      if (name[0] === ":") {
        // RFC 9113 §8.3: "Pseudo-header fields MUST NOT appear in a trailer section" and "All
        // pseudo-header fields MUST appear in a field block before all regular field lines".
        if (!isResponse) throw this.malformed(`pseudo-header "${name}" in trailers`);
        if (regular) throw this.malformed(`pseudo-header "${name}" after regular header`);
        // RFC 9113 §8.3.2: the only response pseudo-header is ":status"; others are malformed.
        if (name !== ":status") throw this.malformed(`unknown pseudo-header "${name}"`);
        if (status !== -1) throw this.malformed(`duplicate header ":status"`);
        if (!/^[1-9][0-9][0-9]$/.test(value)) {
          throw this.malformed(`header ":status" is "${value}"`);
        }
        status = Number(value);
        continue;
      }
      regular = true;
      const problem = fieldProblem(name, value);
      if (problem) throw this.malformed(problem);
    }
    if (isResponse && status === -1) throw this.malformed(`missing header ":status"`);
    return status;
  }
}
