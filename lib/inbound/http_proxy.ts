/**
 * HTTP proxy inbound: CONNECT tunnels, and plain absolute-form requests (RFC 9112 §3.2.2)
 * forwarded as origin-form with the hop-by-hop headers removed, keep-alive across requests.
 *
 * The message codec is pure: `parseRequestHead`/`parseResponseHead` take the bytes of a complete
 * head; `findHeadEnd` tells where a head ends. Bodies are copied as they are framed (RFC 9112 §6):
 * chunked bodies are passed through verbatim while being parsed, so their end is known.
 */
import { ByteReader } from "../net/byte_reader.ts";
import { type Destination, formatDestination, formatHostPort } from "../net/destination.ts";
import type { Duplex, HeldDuplex } from "../net/duplex.ts";
import { relay } from "../net/relay.ts";
import {
  describeRelay,
  errorMessage,
  IdleTimer,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  lingeringClose,
  openOutbound,
} from "./inbound.ts";

/** The largest request or response head we accept (431 beyond it). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line or trailer line longer than this is malformed. */
const MAX_LINE_BYTES = 8 * 1024;
/** Requests served on one client connection; keeps the loop bounded. */
const MAX_REQUESTS = 100_000;

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

function tokens(value: string | undefined): string[] {
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
  const named = new Set(tokens(getHeader(headers, "connection")));
  named.delete("transfer-encoding");
  named.delete("content-length");
  return headers.filter(([n]) => {
    const lower = n.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !named.has(lower);
  });
}

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
    const codings = tokens(te);
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
    const codings = tokens(te);
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

export interface AbsoluteTarget {
  host: string;
  port: number;
  /** origin-form: path and query, at least "/". */
  path: string;
}

/** `http://host[:port]/path?q` → its parts; anything else is a 400. */
export function parseAbsoluteTarget(target: string): AbsoluteTarget {
  const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(target);
  if (!m) {
    throw new HttpError(
      400,
      `Cannot proxy request target "${target.slice(0, 60)}": want absolute http:// URI`,
    );
  }
  const authority = m[1].includes("@") ? m[1].slice(m[1].lastIndexOf("@") + 1) : m[1];
  const { host, port } = parseAuthority(authority, 80);
  let path = m[2] || "/";
  if (path.startsWith("?")) path = "/" + path;
  return { host, port, path };
}

/** `host:port`, `[v6]:port`, or a bare host with `defaultPort`. */
export function parseAuthority(
  authority: string,
  defaultPort?: number,
): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+))(?::(\d{1,5}))?$/.exec(authority);
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || port === undefined || port < 1 || port > 65535) {
    throw new HttpError(400, `Cannot parse authority "${authority.slice(0, 60)}"`);
  }
  return { host: (m[1] ?? m[2]).toLowerCase(), port };
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
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

function encodeHead(startLine: string, headers: Headers): Uint8Array {
  let s = startLine + "\r\n";
  for (const [n, v] of headers) s += `${n}: ${v}\r\n`;
  // Header values are latin1 text on the wire; encode byte for byte.
  s += "\r\n";
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/**
 * Reads one head off `reader`, scanning each new chunk once. `null` on EOF before any byte;
 * throws HttpError 431 past MAX_HEAD_BYTES, 400 (or `eofStatus`) on EOF mid-head.
 */
export async function readHead(reader: ByteReader, eofStatus = 400): Promise<Uint8Array | null> {
  let buf = new Uint8Array(0);
  for (let i = 0; i <= MAX_HEAD_BYTES; i++) {
    const chunk = await reader.read();
    if (chunk === null) {
      if (buf.byteLength === 0) return null;
      throw new HttpError(eofStatus, `Connection closed after ${buf.byteLength} bytes of a head`);
    }
    const from = Math.max(0, buf.byteLength - 2);
    const joined = new Uint8Array(buf.byteLength + chunk.byteLength);
    joined.set(buf);
    joined.set(chunk, buf.byteLength);
    buf = joined;
    const end = findHeadEnd(buf, from);
    if (end >= 0) {
      if (end > MAX_HEAD_BYTES) break;
      reader.unshift(buf.subarray(end));
      return buf.subarray(0, end);
    }
    if (buf.byteLength > MAX_HEAD_BYTES) break;
  }
  throw new HttpError(431, `Head longer than ${MAX_HEAD_BYTES} bytes`);
}

/** One line including its LF, at most MAX_LINE_BYTES. */
async function readLine(reader: ByteReader): Promise<Uint8Array> {
  for (let need = 1; need <= MAX_LINE_BYTES; need = reader.buffered + 1) {
    if (!(await reader.ensure(need))) {
      throw new HttpError(400, "Connection closed inside a chunked body");
    }
    const b = reader.peek(Math.min(reader.buffered, MAX_LINE_BYTES));
    const lf = b.indexOf(0x0a);
    if (lf >= 0) return (await reader.readExact(lf + 1))!.slice();
  }
  throw new HttpError(400, `Chunked body line longer than ${MAX_LINE_BYTES} bytes`);
}

type Writer = WritableStreamDefaultWriter<Uint8Array>;

/** Copies exactly `n` bytes; returns the count, or throws on early EOF. */
async function copyLength(
  reader: ByteReader,
  writer: Writer,
  n: number,
  tick: () => void,
): Promise<number> {
  let left = n;
  for (let i = 0; left > 0 && i < Number.MAX_SAFE_INTEGER; i++) {
    const chunk = await reader.read(left);
    if (chunk === null) throw new Deno.errors.UnexpectedEof(`body ended ${left} bytes early`);
    tick();
    await writer.write(chunk.slice());
    left -= chunk.byteLength;
  }
  return n;
}

/** Copies until EOF. */
async function copyToEnd(reader: ByteReader, writer: Writer, tick: () => void): Promise<number> {
  let n = 0;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
    const chunk = await reader.read();
    if (chunk === null) break;
    tick();
    await writer.write(chunk.slice());
    n += chunk.byteLength;
  }
  return n;
}

/** RFC 9112 §7.1: passes a chunked body through unchanged, parsing it to find its end. */
async function copyChunked(reader: ByteReader, writer: Writer, tick: () => void): Promise<number> {
  let n = 0;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
    const line = await readLine(reader);
    const text = latin1.decode(line).trim();
    const m = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(text);
    if (!m) throw new HttpError(400, `Cannot parse chunk size "${text.slice(0, 40)}"`);
    const size = parseInt(m[1], 16);
    await writer.write(line);
    n += line.byteLength;
    if (size === 0) {
      // The trailer section, ended by an empty line.
      for (let t = 0; t < 1000; t++) {
        const trailer = await readLine(reader);
        await writer.write(trailer);
        n += trailer.byteLength;
        if (trailer.byteLength <= 2 && latin1.decode(trailer).trim() === "") return n;
      }
      throw new HttpError(400, "Too many trailer lines");
    }
    n += await copyLength(reader, writer, size, tick);
    const crlf = await readLine(reader);
    if (latin1.decode(crlf).trim() !== "") {
      throw new HttpError(400, "Chunk data not followed by CRLF");
    }
    await writer.write(crlf);
    n += crlf.byteLength;
  }
  return n;
}

function copyBody(
  reader: ByteReader,
  writer: Writer,
  framing: Framing,
  tick: () => void,
): Promise<number> {
  switch (framing.kind) {
    case "none":
      return Promise.resolve(0);
    case "length":
      return copyLength(reader, writer, framing.length, tick);
    case "chunked":
      return copyChunked(reader, writer, tick);
    case "close":
      return copyToEnd(reader, writer, tick);
  }
}

export interface HttpProxyAccount {
  user: string;
  pass: string;
}

export interface HttpProxyOptions {
  /** v2ray `accounts`: when set, requests need `Proxy-Authorization: Basic`. */
  accounts?: HttpProxyAccount[];
}

interface Upstream {
  key: string;
  duplex: Duplex;
  reader: ByteReader;
  writer: Writer;
}

export class HttpProxyInbound implements InboundHandler {
  readonly #credentials: Set<string> | undefined;

  constructor(options: HttpProxyOptions = {}) {
    const accounts = options.accounts ?? [];
    this.#credentials = accounts.length === 0
      ? undefined
      : new Set(accounts.map((a) => basic(a.user, a.pass)));
  }

  get requiresAuth(): boolean {
    return this.#credentials !== undefined;
  }

  handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    return this.serve(conn, new ByteReader(conn.readable), ctx);
  }

  async serve(conn: Duplex, reader: ByteReader, ctx: InboundContext): Promise<InboundResult> {
    const result: InboundResult = { destination: "", result: "ok", up: 0, down: 0 };
    const destinations: string[] = [];
    const writer = conn.writable.getWriter();
    let upstream: Upstream | undefined;
    let timedOut = false;
    const timer = new IdleTimer(ctx.policy.handshake, () => {
      timedOut = true;
      conn.close();
      upstream?.duplex.close();
    });
    const tick = () => timer.touch();
    const onAbort = () => {
      conn.close();
      upstream?.duplex.close();
    };
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const refuse = async (status: number, message: string, extra: Headers = []) => {
      result.result = message;
      try {
        await writer.write(encodeErrorResponse(status, extra));
        await lingeringClose(conn, writer, reader);
      } catch {
        // The client is gone.
      }
    };
    const summarize = () => {
      result.destination = destinations.length <= 1
        ? (destinations[0] ?? "")
        : `${destinations[0]} (+${destinations.length - 1} more)`;
    };
    try {
      for (let n = 0; n < MAX_REQUESTS; n++) {
        // The first head must arrive within the handshake deadline (slowloris); later ones may
        // take the idle time of a keep-alive connection.
        timer.set(n === 0 ? ctx.policy.handshake : ctx.policy.connIdle);
        let head: RequestHead;
        try {
          const bytes = await readHead(reader);
          if (bytes === null) break;
          head = parseRequestHead(bytes);
        } catch (err) {
          if (timedOut) break;
          if (err instanceof HttpError) await refuse(err.status, err.message);
          else result.result = errorMessage(err);
          break;
        }
        timer.set(ctx.policy.connIdle);
        if (this.#credentials && !this.#authorized(head.headers)) {
          await refuse(407, "proxy authentication required", [
            ["Proxy-Authenticate", 'Basic realm="dray"'],
          ]);
          break;
        }
        if (head.method === "CONNECT") {
          upstream?.duplex.close();
          upstream = undefined;
          timer.stop();
          return await this.#tunnel(conn, reader, writer, head, ctx, result, destinations);
        }
        let target: AbsoluteTarget;
        let framing: Framing;
        try {
          // RFC 9112 §3.2.2: a proxy receives requests in absolute-form; origin-form means the
          // client took us for the origin server.
          target = parseAbsoluteTarget(head.target);
          // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
          // HTTP/1.1 request message that lacks a Host header field".
          if (head.version === "1.1" && getHeader(head.headers, "host") === undefined) {
            throw new HttpError(400, "HTTP/1.1 request without Host");
          }
          framing = requestFraming(head.headers);
        } catch (err) {
          await refuse(err instanceof HttpError ? err.status : 400, errorMessage(err));
          break;
        }
        const dest: Destination = { network: "tcp", host: target.host, port: target.port };
        const key = formatDestination(dest);
        if (destinations[destinations.length - 1] !== key) destinations.push(key);
        summarize();
        if (upstream && upstream.key !== key) {
          upstream.duplex.close();
          upstream = undefined;
        }
        if (!upstream) {
          try {
            const duplex = await openOutbound(ctx, dest);
            upstream = {
              key,
              duplex,
              reader: new ByteReader(duplex.readable),
              writer: duplex.writable.getWriter(),
            };
          } catch (err) {
            await refuse(502, errorMessage(err));
            break;
          }
        }
        const progress = { responded: false };
        let keep: "keep" | "close-upstream" | "close";
        try {
          keep = await this.#exchange(
            { head, target, framing, upstream, reader, writer, tick, result, progress },
          );
        } catch (err) {
          // Nothing of the response reached the client yet: it gets a 502 instead of a hang.
          if (!progress.responded && !timedOut) {
            await refuse(502, errorMessage(err));
            break;
          }
          throw err;
        }
        if (keep === "close-upstream" || keep === "close") {
          upstream.duplex.close();
          upstream = undefined;
        }
        if (keep === "close") break;
      }
      // A normal end: FIN after the last response, so it is not lost to a reset.
      if (!timedOut) {
        upstream?.duplex.close();
        upstream = undefined;
        await lingeringClose(conn, writer, reader);
      }
    } catch (err) {
      if (result.result === "ok") result.result = timedOut ? "idle timeout" : errorMessage(err);
    } finally {
      timer.stop();
      ctx.signal.removeEventListener("abort", onAbort);
      upstream?.duplex.close();
      conn.close();
    }
    if (timedOut && result.result === "ok" && destinations.length === 0) {
      result.result = "handshake timeout";
    }
    summarize();
    return result;
  }

  #authorized(headers: Headers): boolean {
    const value = getHeader(headers, "proxy-authorization") ?? "";
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(value.trim());
    return m !== null && this.#credentials!.has(m[1]);
  }

  /**
   * One request/response exchange. Returns whether the client connection and the upstream
   * connection can carry another request.
   */
  async #exchange(
    { head, target, framing, upstream, reader, writer, tick, result, progress }: {
      head: RequestHead;
      target: AbsoluteTarget;
      framing: Framing;
      upstream: Upstream;
      reader: ByteReader;
      writer: Writer;
      tick: () => void;
      result: InboundResult;
      progress: { responded: boolean };
    },
  ): Promise<"keep" | "close-upstream" | "close"> {
    const clientConn = tokens(getHeader(head.headers, "connection"));
    const clientKeepAlive = head.version === "1.1"
      ? !clientConn.includes("close")
      : clientConn.includes("keep-alive");
    // RFC 9110 §7.2: a proxy MUST send an appropriate Host header field that matches the target
    // URI, replacing what the client sent.
    const headers = endToEnd(head.headers).filter(([n]) => n.toLowerCase() !== "host");
    const hostValue = target.port !== 80
      ? formatHostPort(target.host, target.port)
      : target.host.includes(":")
      ? `[${target.host}]`
      : target.host;
    const out = encodeHead(`${head.method} ${target.path} HTTP/1.1`, [
      ["Host", hostValue],
      ...headers,
      ["Connection", "keep-alive"],
    ]);
    await upstream.writer.write(out);
    // The body goes up while the response comes down: a server may answer before reading it all.
    const sending = copyBody(reader, upstream.writer, framing, tick).then((n) => {
      result.up += n;
    });
    sending.catch(() => {});
    let response: ResponseHead;
    let respBytes: Uint8Array | null;
    for (let i = 0;; i++) {
      respBytes = await readHead(upstream.reader, 502);
      if (respBytes === null) {
        throw new Deno.errors.UnexpectedEof("upstream closed before responding");
      }
      response = parseResponseHead(respBytes);
      // 1xx interim responses (100 Continue) go to the client as they are; the final one follows.
      if (response.status >= 200 || response.status === 101 || i >= 10) break;
      progress.responded = true;
      await writer.write(
        encodeHead(`HTTP/1.1 ${response.status} ${response.reason}`, endToEnd(response.headers)),
      );
    }
    const respFraming = responseFraming(head.method, response);
    const upstreamKeep = respFraming.kind !== "close" &&
      !tokens(getHeader(response.headers, "connection")).includes("close") &&
      response.version === "1.1";
    const keep = clientKeepAlive && respFraming.kind !== "close";
    progress.responded = true;
    await writer.write(
      encodeHead(`HTTP/1.1 ${response.status} ${response.reason}`, [
        ...endToEnd(response.headers),
        ["Connection", keep ? "keep-alive" : "close"],
      ]),
    );
    result.down += await copyBody(upstream.reader, writer, respFraming, tick);
    if (framing.kind !== "none") {
      try {
        await sending;
      } catch (err) {
        result.result = errorMessage(err);
        return "close";
      }
    }
    if (!keep) return "close";
    return upstreamKeep ? "keep" : "close-upstream";
  }

  async #tunnel(
    conn: Duplex,
    reader: ByteReader,
    writer: Writer,
    head: RequestHead,
    ctx: InboundContext,
    result: InboundResult,
    destinations: string[],
  ): Promise<InboundResult> {
    let dest: Destination;
    try {
      // RFC 9112 §3.2.3: CONNECT uses authority-form, host and port both required.
      const { host, port } = parseAuthority(head.target);
      dest = { network: "tcp", host, port };
    } catch (err) {
      result.result = errorMessage(err);
      await writer.write(encodeErrorResponse(400)).catch(() => {});
      await lingeringClose(conn, writer, reader);
      return result;
    }
    destinations.push(formatDestination(dest));
    result.destination = destinations.length === 1
      ? destinations[0]
      : `${destinations[destinations.length - 1]} (after ${destinations.length - 1} more)`;
    let remote: Duplex;
    try {
      remote = await openOutbound(ctx, dest);
    } catch (err) {
      result.result = errorMessage(err);
      await writer.write(encodeErrorResponse(502)).catch(() => {});
      await lingeringClose(conn, writer, reader);
      return result;
    }
    try {
      await writer.write(ascii.encode("HTTP/1.1 200 Connection established\r\n\r\n"));
    } catch (err) {
      remote.close();
      conn.close();
      result.result = errorMessage(err);
      return result;
    }
    const client: HeldDuplex = { reader: reader.restReader(), writer, close: () => conn.close() };
    const r = await relay(client, remote, { ...ctx.policy, signal: ctx.signal });
    result.up += r.up;
    result.down += r.down;
    result.result = describeRelay(r);
    return result;
  }
}

/** The Basic credentials token for `user:pass` (RFC 7617, UTF-8). */
export function basic(user: string, pass: string): string {
  return btoa(String.fromCharCode(...ascii.encode(`${user}:${pass}`)));
}
