/**
 * One HTTP/2 server stream (RFC 9113 §5.1, §8.1): the request the client opened it with, trailers,
 * and the response — HEADERS sent by `respond()` (or a 200 before the first DATA). Its state,
 * windows and bodies (the request body to read, the response body to write) are the
 * {@link H2StreamCore} both roles share.
 */
import type { StreamHost } from "./endpoint.ts";
import { ErrorCode, errorCodeName, StreamError } from "./errors.ts";
import { CONNECTION_SPECIFIC, contentLength, fieldProblem } from "./header_fields.ts";
import { H2StreamCore, StreamLinks } from "./stream_core.ts";
import type { OpenedStreamState } from "./stream_state.ts";

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

/** A server stream's links: the response HEADERS go out before its first DATA or END_STREAM. */
class ServerStreamLinks extends StreamLinks {
  declare protected readonly stream: H2ServerStream;

  override reserve(want: number): number {
    if (!this.stream.responded) this.stream.respond(200);
    return super.reserve(want);
  }

  override beforeEnd(): boolean {
    if (!super.beforeEnd()) return false;
    if (this.stream.responded) return true;
    this.stream.respond(200, [], { endStream: true });
    return false;
  }
}

/**
 * `readable` is the request body; `writable` the response body (closing it sends END_STREAM;
 * writing before `respond()` sends a 200 first).
 */
export class H2ServerStream extends H2StreamCore {
  readonly request: H2ServerRequest;
  #responded = false;

  constructor(
    id: number,
    request: H2ServerRequest,
    host: StreamHost<H2ServerStream>,
    options: { sendWindow: number; recvWindow: number; endStream: boolean },
  ) {
    // RFC 9113 §5.1: HEADERS opens the stream; with END_STREAM it is half-closed (remote).
    super(id, host, {
      sendWindow: options.sendWindow,
      recvWindow: options.recvWindow,
      state: "open",
      peerName: "client",
      links: ServerStreamLinks,
    });
    this.request = request;
    this.contentLength = contentLength(request.headers, (what) => this.malformed(what));
    if (options.endStream) this.endRemote();
  }

  get responded(): boolean {
    return this.#responded;
  }

  /**
   * Ends the response now with an empty END_STREAM (a 200 first if nothing was sent), even while
   * the writable is held by someone; later writes fail. Does nothing once our side has ended.
   */
  finish(): void {
    const state = this.life.state;
    if (this.error || state === "closed" || state === "half-closed-local") return;
    if (!this.#responded) {
      this.respond(200, [], { endStream: true });
      return;
    }
    this.host.queueData(this, new Uint8Array(0), true, undefined);
    this.sendBody.fail(new StreamError(this.id, ErrorCode.STREAM_CLOSED, "response already ended"));
    this.life.endLocal();
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
    if (this.error || this.life.state === "closed") return;
    const endStream = opts.endStream ?? false;
    this.host.queueHeaders(this, fields, endStream);
    if (endStream) {
      this.life.endLocal();
      this.sendBody.fail(
        new StreamError(this.id, ErrorCode.STREAM_CLOSED, "response already ended"),
      );
    }
  }

  // ---- H2StreamCore: what a request's header blocks mean ----

  /** A header block after the request's: trailers (RFC 9113 §8.1), which must end the stream. */
  protected receivedHeaders(fields: Array<[string, string]>, endStream: boolean): void {
    // RFC 9113 §8.1: "... a trailer section ... MUST ... carry END_STREAM"; otherwise malformed.
    if (!endStream) throw this.malformed("second HEADERS without END_STREAM");
    for (const [name, value] of fields) {
      // §8.3: "Pseudo-header fields MUST NOT appear in a trailer section."
      if (name[0] === ":") throw this.malformed(`pseudo-header "${name}" in trailers`);
      checkRegular(this.id, name, value);
    }
    this.endRemote();
  }

  protected malformed(what: string): StreamError {
    return malformed(this.id, what);
  }

  /**
   * RST_STREAM NO_ERROR when our response is complete (RFC 9113 §8.1: the client may stop sending
   * the request without error), CANCEL otherwise.
   */
  protected resetError(): StreamError {
    const code = this.life.state === "half-closed-local" ? ErrorCode.NO_ERROR : ErrorCode.CANCEL;
    return new StreamError(this.id, code, `reset stream ${this.id} (${errorCodeName(code)})`);
  }
}
