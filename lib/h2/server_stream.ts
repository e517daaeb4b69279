/**
 * One HTTP/2 server stream (RFC 9113 §5.1, §8.1): the request the client opened it with, the
 * request body as a pull-based `ReadableStream`, and the response — HEADERS sent by `respond()`,
 * the body through a flow-controlled `WritableStream`.
 *
 * The stream never touches the socket: it asks its connection (a `StreamHost<H2ServerStream>`) for send
 * credit and to queue frames, and the connection feeds it the frames the client sends.
 */
import type { StreamHost } from "./endpoint.ts";
import { ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { keepsReceivedBytes, ReceiveBody, SendBody } from "./body.ts";
import { ReceiveWindow, SendWindow } from "./flow.ts";
import { CONNECTION_SPECIFIC, contentLength, fieldProblem } from "./header_fields.ts";
import { type OpenedStreamState, StreamStateMachine } from "./stream_state.ts";

/** RFC 9113 §5.1 states of a stream the client opened (push, and so "reserved", is never used). */
export type ServerStreamState = OpenedStreamState;

export interface H2ServerRequest {
  method: string;
  scheme: string;
  /** `:authority`, or the Host header when the client sent no `:authority`; "" if neither. */
  authority: string;
  path: string;
  /** The regular header fields, names lowercase, in the order received. */
  headers: Array<[string, string]>;
}

function malformed(streamId: number, what: string): StreamError {
  return new StreamError(
    streamId,
    ErrorCode.PROTOCOL_ERROR,
    `reset stream ${streamId}: malformed request: ${what}`,
  );
}

/** RFC 9113 §8.2: a regular field's name and value, and no connection-specific field. */
function checkRegular(streamId: number, name: string, value: string): void {
  const problem = fieldProblem(name, value);
  if (problem) throw malformed(streamId, problem);
}

/**
 * Validates a request header block (RFC 9113 §8.3.1) and returns the request. Throws a
 * `StreamError` PROTOCOL_ERROR for a malformed request (RFC 9113 §8.1.1).
 */
export function parseRequest(streamId: number, fields: Array<[string, string]>): H2ServerRequest {
  const pseudo = new Map<string, string>();
  const headers: Array<[string, string]> = [];
  let host: string | undefined;
  for (const [name, value] of fields) {
    if (name[0] === ":") {
      // RFC 9113 §8.3: "All pseudo-header fields MUST appear in a field block before all regular
      // field lines. Any request or response that contains a pseudo-header field that appears in
      // a field block after a regular field line MUST be treated as malformed".
      if (headers.length > 0) throw malformed(streamId, `pseudo-header "${name}" after regular`);
      // "Endpoints MUST treat a request or response that contains undefined or invalid
      // pseudo-header fields as malformed" — ":status" included, it is a response's.
      if (
        name !== ":method" && name !== ":scheme" && name !== ":authority" && name !== ":path"
      ) {
        throw malformed(streamId, `pseudo-header "${name}" in a request`);
      }
      // §8.3.1: "The same pseudo-header field name MUST NOT appear more than once".
      if (pseudo.has(name)) throw malformed(streamId, `duplicate "${name}"`);
      pseudo.set(name, value);
      continue;
    }
    checkRegular(streamId, name, value);
    if (name === "host") host ??= value;
    headers.push([name, value]);
  }
  const method = pseudo.get(":method");
  if (method === undefined || method === "") throw malformed(streamId, `missing ":method"`);
  const authority = pseudo.get(":authority") ?? host ?? "";
  if (method === "CONNECT") {
    // RFC 9113 §8.5: "The :scheme and :path pseudo-header fields MUST be omitted" and ":authority"
    // carries the host and port to connect to.
    if (pseudo.has(":scheme") || pseudo.has(":path") || !pseudo.has(":authority")) {
      throw malformed(streamId, "CONNECT needs :authority and no :scheme or :path");
    }
    return { method, scheme: "", authority, path: "", headers };
  }
  // §8.3.1: "All HTTP/2 requests MUST include exactly one valid value for the :method, :scheme,
  // and :path pseudo-header fields, unless they are CONNECT requests"; ":path ... MUST NOT be
  // empty for "http" or "https" URIs".
  const scheme = pseudo.get(":scheme");
  const path = pseudo.get(":path");
  if (scheme === undefined || scheme === "") throw malformed(streamId, `missing ":scheme"`);
  if (path === undefined || path === "") throw malformed(streamId, `missing ":path"`);
  return { method, scheme, authority, path, headers };
}

export class H2ServerStream {
  readonly id: number;
  readonly request: H2ServerRequest;
  /** A write resolves once its bytes were copied into a connection write (SendBody). */
  readonly copiesWrites = true;
  /** Send credit the client gave this stream. */
  readonly sendWindow: SendWindow;
  /** Receive credit we gave the client for this stream. */
  readonly recvWindow: ReceiveWindow;

  #host: StreamHost<H2ServerStream>;
  #life: StreamStateMachine;
  #error: Error | undefined;
  #responded = false;
  #sent = 0;
  #contentLength = -1;
  #in: ReceiveBody;
  #out: SendBody;

  constructor(
    id: number,
    request: H2ServerRequest,
    host: StreamHost<H2ServerStream>,
    options: { sendWindow: number; recvWindow: number; endStream: boolean },
  ) {
    this.id = id;
    this.request = request;
    this.#host = host;
    this.sendWindow = new SendWindow(options.sendWindow);
    this.recvWindow = new ReceiveWindow(options.recvWindow);
    this.#contentLength = contentLength(request.headers, (what) => malformed(id, what));
    // RFC 9113 §5.1: HEADERS opens the stream; with END_STREAM it is half-closed (remote).
    this.#life = new StreamStateMachine(id, {
      state: "open",
      peerName: "client",
      onClosed: () => this.#host.streamClosed(this),
    });
    this.#in = new ReceiveBody({
      streamId: id,
      window: this.recvWindow,
      peerName: "client",
      onConsumed: (n, streamToo) => this.#host.consumed(this, n, streamToo),
      // The handler does not want the rest of the request body: ask the client to stop sending.
      onCancel: () => this.close(),
    });
    this.#out = new SendBody({
      reserve: (want) => {
        this.#ensureResponded(false);
        const n = this.#host.reserve(this, want);
        this.#sent += n;
        return n;
      },
      queueData: (data, endStream, notify) => this.#host.queueData(this, data, endStream, notify),
      beforeEnd: () => {
        if (this.#state === "closed" || this.#state === "half-closed-local") return false;
        if (!this.#responded) {
          this.respond(200, [], { endStream: true });
          return false;
        }
        return true;
      },
      ended: () => this.#endLocal(),
      abort: () => this.close(),
    });
    if (options.endStream) this.#endRemote();
  }

  get state(): ServerStreamState {
    return this.#life.state;
  }

  get #state(): ServerStreamState {
    return this.#life.state;
  }

  /** The error the stream failed with, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** The request body. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#in.readable;
  }

  /** The response body; closing it sends END_STREAM. Writing first sends a 200 response. */
  get writable(): WritableStream<Uint8Array> {
    return this.#out.writable;
  }

  get responded(): boolean {
    return this.#responded;
  }

  /** Response body bytes handed to the connection so far. */
  get bytesSent(): number {
    return this.#sent;
  }

  /**
   * Ends the response now with an empty END_STREAM (a 200 first if nothing was sent), even while
   * the writable is held by someone; later writes fail. Does nothing once our side has ended.
   */
  finish(): void {
    if (this.#error || this.#state === "closed" || this.#state === "half-closed-local") return;
    if (!this.#responded) {
      this.respond(200, [], { endStream: true });
      return;
    }
    this.#host.queueData(this, new Uint8Array(0), true, undefined);
    this.#out.fail(new StreamError(this.id, ErrorCode.STREAM_CLOSED, "response already ended"));
    this.#endLocal();
  }

  /**
   * Sends the response HEADERS now (queued ahead of any later DATA). Throws `TypeError` if a
   * response was already sent, the status is not 200-599 (informational responses are not
   * supported), or a header is one HTTP/2 forbids; does nothing once the stream failed.
   */
  respond(
    status: number,
    headers: Array<[string, string]> = [],
    opts: { endStream?: boolean } = {},
  ): void {
    if (this.#responded) throw new TypeError(`stream ${this.id}: response already sent`);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(`stream ${this.id}: response status must be 200-599, got ${status}`);
    }
    const fields: Array<[string, string]> = [[":status", String(status)]];
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      // RFC 9113 §8.2.2: "An endpoint MUST NOT generate an HTTP/2 message containing
      // connection-specific header fields".
      if (CONNECTION_SPECIFIC.has(lower) || lower === "te" || lower[0] === ":") {
        throw new TypeError(`Cannot send header "${name}" in an HTTP/2 response`);
      }
      fields.push([lower, value]);
    }
    this.#responded = true;
    if (this.#error || this.#state === "closed") return;
    const endStream = opts.endStream ?? false;
    this.#host.queueHeaders(this, fields, endStream);
    if (endStream) {
      this.#endLocal();
      this.#out.fail(new StreamError(this.id, ErrorCode.STREAM_CLOSED, "response already ended"));
    }
  }

  /**
   * Resets the stream unless it is already closed: RST_STREAM NO_ERROR when our response is
   * complete (RFC 9113 §8.1: the client may stop sending the request without error), CANCEL
   * otherwise. Drops unread request bytes. Never throws.
   */
  close(): void {
    if (this.#state === "closed") {
      this.#in.drop();
      return;
    }
    const code = this.#state === "half-closed-local" ? ErrorCode.NO_ERROR : ErrorCode.CANCEL;
    this.#host.queueReset(this, code);
    this.fail(new StreamError(this.id, code, `reset stream ${this.id} (${errorCodeName(code)})`));
  }

  // ---- called by the connection for frames from the client ----

  /** A header block after the request's: trailers (RFC 9113 §8.1), which must end the stream. */
  onHeaders(fields: Array<[string, string]>, endStream: boolean): void {
    this.#life.checkRemoteOpen("HEADERS");
    // RFC 9113 §8.1: "... a trailer section ... MUST ... carry END_STREAM"; otherwise malformed.
    if (!endStream) throw malformed(this.id, "second HEADERS without END_STREAM");
    for (const [name, value] of fields) {
      // §8.3: "Pseudo-header fields MUST NOT appear in a trailer section."
      if (name[0] === ":") throw malformed(this.id, `pseudo-header "${name}" in trailers`);
      checkRegular(this.id, name, value);
    }
    this.#endRemote();
  }

  /** A DATA frame; `flowLength` counts padding, which is credited back at once. */
  onData(data: Uint8Array, flowLength: number, endStream: boolean): void {
    this.#life.checkRemoteOpen("DATA");
    this.#in.admit(flowLength);
    this.#in.push(data, flowLength);
    if (endStream) this.#endRemote();
  }

  /** The client reset the stream. */
  onReset(code: number): void {
    this.fail(
      new StreamError(this.id, code, `client reset stream ${this.id} (${errorCodeName(code)})`, {
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

  /** Ends the stream with `err`: both bodies fail (a complete request body stays readable). */
  fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#in.fail(err, keepsReceivedBytes(err));
    this.#out.fail(err);
    this.#life.close();
  }

  // ---- internals ----

  #ensureResponded(endStream: boolean): void {
    if (!this.#responded) this.respond(200, [], { endStream });
  }

  #endRemote(): void {
    // RFC 9113 §8.1.1: "A request or response is also malformed if the value of a content-length
    // header field does not equal the sum of the DATA frame payload lengths".
    const received = this.#in.received;
    if (this.#contentLength >= 0 && this.#contentLength !== received) {
      throw malformed(
        this.id,
        `content-length ${this.#contentLength} but ${received} bytes of DATA`,
      );
    }
    this.#in.end();
    this.#life.endRemote();
  }

  #endLocal(): void {
    this.#life.endLocal();
  }
}
