/**
 * HTTP/1.1 message heads (RFC 9112): parse a complete request or response head, find where a head
 * ends, encode a head, and the header rules a proxy needs (hop-by-hop fields). Pure: bytes in,
 * values out.
 */

/** A malformed message; `status` is what to answer with. */
export class HttpError extends SyntaxError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

export type Headers = [name: string, value: string][];

export interface RequestHead {
  method: string;
  target: string;
  /** "1.0" or "1.1". */
  version: string;
  headers: Headers;
}

export interface ResponseHead {
  version: string;
  status: number;
  reason: string;
  headers: Headers;
}

const latin1 = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Where the head in `b` ends (the index after the blank line), scanning from `from`; -1 if not
 * there yet. Bare LF line ends are accepted (RFC 9112 §2.2 MAY).
 */
export function findHeadEnd(b: Uint8Array, from = 0): number {
  for (let i = Math.max(0, from); i < b.byteLength; i++) {
    if (b[i] !== 0x0a) continue;
    if (b[i + 1] === 0x0a) return i + 2;
    if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

function splitLines(b: Uint8Array): string[] {
  const text = latin1.decode(b);
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function parseHeaders(lines: string[]): Headers {
  const headers: Headers = [];
  for (const line of lines) {
    // RFC 9112 §5.2: a server that receives obs-fold in a request MAY reject it with 400.
    if (line.startsWith(" ") || line.startsWith("\t")) {
      throw new HttpError(400, "Cannot parse header: obsolete line folding");
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    // RFC 9112 §5.1: "A server MUST reject, with a response status code of 400 (Bad Request),
    // any received request message that contains whitespace between a header field name and
    // colon."
    if (!TOKEN.test(name)) {
      throw new HttpError(400, `Cannot parse header line "${line.slice(0, 40)}"`);
    }
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  return headers;
}

/** A complete request head (through the blank line). */
export function parseRequestHead(b: Uint8Array): RequestHead {
  const lines = splitLines(b);
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received before the request-line.
  while (lines.length > 0 && lines[0] === "") lines.shift();
  const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ ]+) HTTP\/(1\.[01])$/.exec(lines[0] ?? "");
  if (!m) throw new HttpError(400, `Cannot parse request line "${(lines[0] ?? "").slice(0, 60)}"`);
  return { method: m[1], target: m[2], version: m[3], headers: parseHeaders(lines.slice(1)) };
}

/** A complete response head. */
export function parseResponseHead(b: Uint8Array): ResponseHead {
  const lines = splitLines(b);
  const m = /^HTTP\/(1\.[01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!m) throw new HttpError(502, `Cannot parse status line "${(lines[0] ?? "").slice(0, 60)}"`);
  return {
    version: m[1],
    status: Number(m[2]),
    reason: m[3] ?? "",
    headers: parseHeaders(lines.slice(1)),
  };
}

export function getHeader(headers: Headers, name: string): string | undefined {
  const lower = name.toLowerCase();
  const values = headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(", ");
}

/** The comma-separated tokens of a header value, lowercased (Connection, Transfer-Encoding). */
export function headerTokens(value: string | undefined): string[] {
  return (value ?? "").split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
}

/** RFC 9110 §7.6.1: hop-by-hop fields, plus those the Connection header names. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "upgrade",
]);

/**
 * The end-to-end headers. Transfer-Encoding is hop-by-hop too, but chunked bodies are passed on
 * unchanged, so it stays with the body it describes.
 */
export function endToEnd(headers: Headers): Headers {
  const named = new Set(headerTokens(getHeader(headers, "connection")));
  named.delete("transfer-encoding");
  named.delete("content-length");
  return headers.filter(([n]) => {
    const lower = n.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !named.has(lower);
  });
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

const ascii = new TextEncoder();

/** A complete short response that ends the connection. */
export function encodeErrorResponse(status: number, extra: Headers = []): Uint8Array {
  const text = STATUS_TEXT[status] ?? "Error";
  const body = `${status} ${text}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${text}`,
    ...extra.map(([n, v]) => `${n}: ${v}`),
    "Content-Type: text/plain",
    `Content-Length: ${body.length}`,
    "Connection: close",
  ];
  return ascii.encode(lines.join("\r\n") + "\r\n\r\n" + body);
}

/** A head: start line, fields, blank line (latin1, byte for byte). */
export function encodeHead(startLine: string, headers: Headers): Uint8Array {
  let s = startLine + "\r\n";
  for (const [n, v] of headers) s += `${n}: ${v}\r\n`;
  // Header values are latin1 text on the wire; encode byte for byte.
  s += "\r\n";
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}
