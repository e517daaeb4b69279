/**
 * How an HTTP/1.1 body is delimited (RFC 9112 §6): none, a length, chunked, or until the
 * connection closes.
 */
import { getHeader, type Headers, headerTokens, HttpError, type ResponseHead } from "./message.ts";

export type Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** RFC 9112 §6.3: how a request body is delimited. */
export function requestFraming(headers: Headers): Framing {
  const te = getHeader(headers, "transfer-encoding");
  const cl = getHeader(headers, "content-length");
  if (te !== undefined) {
    // RFC 9112 §6.1: a request with both "ought to be handled as an error" (request smuggling).
    if (cl !== undefined) {
      throw new HttpError(400, "Request has both Transfer-Encoding and Content-Length");
    }
    const codings = headerTokens(te);
    // RFC 9112 §6.3: if chunked is not the final coding of a request, respond 400 and close.
    if (codings[codings.length - 1] !== "chunked") {
      throw new HttpError(400, `Cannot frame request body: Transfer-Encoding "${te}"`);
    }
    return { kind: "chunked" };
  }
  if (cl !== undefined) return { kind: "length", length: parseContentLength(cl, 400) };
  return { kind: "none" };
}

/** RFC 9112 §6.3: how a response body is delimited. */
export function responseFraming(method: string, head: ResponseHead): Framing {
  const s = head.status;
  if (method === "HEAD" || (s >= 100 && s < 200) || s === 204 || s === 304) return { kind: "none" };
  const te = getHeader(head.headers, "transfer-encoding");
  if (te !== undefined) {
    const codings = headerTokens(te);
    return codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const cl = getHeader(head.headers, "content-length");
  if (cl !== undefined) return { kind: "length", length: parseContentLength(cl, 502) };
  return { kind: "close" };
}

function parseContentLength(value: string, status: number): number {
  // Repeated identical values ("5, 5") are allowed (RFC 9110 §8.6); differing ones are not.
  const values = new Set(value.split(",").map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^\d{1,15}$/.test(only)) {
    throw new HttpError(status, `Cannot parse Content-Length "${value}"`);
  }
  return Number(only);
}
