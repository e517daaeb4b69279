/**
 * HTTP proxy inbound: CONNECT tunnels, and plain absolute-form requests (RFC 9112 §3.2.2)
 * forwarded as origin-form with the hop-by-hop headers removed, keep-alive across requests.
 * The HTTP/1 message codec is in lib/http1/.
 */
import type { Dispatched } from "../dispatch/dispatcher.ts";
import { errorMessage } from "../error_message.ts";
import { ByteReader } from "../net/byte_reader.ts";
import { type Destination, formatDestination, formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { IdleTimer } from "../net/idle_timer.ts";
import { heldClient } from "./held_client.ts";
import type { InboundContext, InboundHandler, InboundResult } from "./inbound.ts";
import { lingeringClose } from "../net/lingering_close.ts";
import { copyBody } from "../http1/body.ts";
import { type Framing, requestFraming, responseFraming } from "../http1/framing.ts";
import {
  encodeErrorResponse,
  encodeHead,
  endToEnd,
  getHeader,
  type Headers,
  headerTokens,
  HttpError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from "../http1/message.ts";
import { readHead } from "../http1/read_head.ts";
import { type AbsoluteTarget, parseAbsoluteTarget, parseAuthority } from "../http1/target.ts";

const ascii = new TextEncoder();
type Writer = WritableStreamDefaultWriter<Uint8Array>;

/** Requests served on one client connection; keeps the loop bounded. */
const MAX_REQUESTS = 100_000;

export interface HttpProxyAccount {
  user: string;
  pass: string;
}

export interface HttpProxyOptions {
  /** v2ray `accounts`: when set, requests need `Proxy-Authorization: Basic`. */
  accounts?: HttpProxyAccount[];
}

/** The connection plain requests go over while they go to one destination. */
interface Upstream {
  key: string;
  dispatched: Dispatched;
  reader: ByteReader;
  writer: Writer;
  /** Bytes sent and received over it (heads and bodies), for its access line. */
  up: number;
  down: number;
}

export class HttpProxyInbound implements InboundHandler {
  /** Basic credentials token → user name. */
  readonly #credentials: Map<string, string> | undefined;

  constructor(options: HttpProxyOptions = {}) {
    const accounts = options.accounts ?? [];
    this.#credentials = accounts.length === 0
      ? undefined
      : new Map(accounts.map((a) => [basic(a.user, a.pass), a.user]));
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
    let user: string | undefined;
    let timedOut = false;
    // Ends the upstream connection and writes its access line.
    const release = (outcome?: string) => {
      const u = upstream;
      upstream = undefined;
      u?.dispatched.finish({ up: u.up, down: u.down, result: outcome });
    };
    const timer = new IdleTimer(ctx.policy.handshake, () => {
      timedOut = true;
      conn.close();
      upstream?.dispatched.duplex.close();
    }, ctx.deadlines);
    const tick = () => timer.touch();
    const onAbort = () => {
      conn.close();
      upstream?.dispatched.duplex.close();
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
        if (this.#credentials) {
          user = this.#user(head.headers);
          if (user === undefined) {
            await refuse(407, "proxy authentication required", [
              ["Proxy-Authenticate", 'Basic realm="dray"'],
            ]);
            break;
          }
        }
        if (head.method === "CONNECT") {
          release();
          timer.stop();
          return await this.#tunnel({
            conn,
            reader,
            writer,
            head,
            ctx,
            result,
            destinations,
            user,
          });
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
        if (upstream && upstream.key !== key) release();
        if (!upstream) {
          try {
            // v2ray 4.34 marks a forwarded request as "http/1.1" for the `protocol` rule field
            // (which matches by prefix, so "http" takes it); a CONNECT tunnel is unmarked.
            const route = {
              destination: dest,
              inboundTag: ctx.tag,
              source: ctx.source,
              user,
              protocol: "http/1.1",
            };
            const dispatched = await ctx.dispatcher.open(route, { signal: ctx.signal });
            result.outbound = dispatched.outbound;
            const { duplex } = dispatched;
            upstream = {
              key,
              dispatched,
              reader: new ByteReader(duplex.readable),
              writer: duplex.writable.getWriter(),
              up: 0,
              down: 0,
            };
          } catch (err) {
            // The dispatcher logged the failed dial.
            result.outbound ??= "";
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
          release(errorMessage(err));
          // Nothing of the response reached the client yet: it gets a 502 instead of a hang.
          if (!progress.responded && !timedOut) {
            await refuse(502, errorMessage(err));
            break;
          }
          throw err;
        }
        if (keep === "close-upstream" || keep === "close") {
          release(result.result === "ok" ? undefined : result.result);
        }
        if (keep === "close") break;
      }
      // A normal end: FIN after the last response, so it is not lost to a reset.
      if (!timedOut) {
        release();
        await lingeringClose(conn, writer, reader);
      }
    } catch (err) {
      if (result.result === "ok") result.result = timedOut ? "idle timeout" : errorMessage(err);
    } finally {
      timer.stop();
      ctx.signal.removeEventListener("abort", onAbort);
      release(result.result === "ok" ? undefined : result.result);
      conn.close();
    }
    if (timedOut && result.result === "ok" && destinations.length === 0) {
      result.result = "handshake timeout";
    }
    summarize();
    return result;
  }

  /** The user whose Basic credentials the request carries, or undefined. */
  #user(headers: Headers): string | undefined {
    const value = getHeader(headers, "proxy-authorization") ?? "";
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(value.trim());
    return m === null ? undefined : this.#credentials!.get(m[1]);
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
    const clientConn = headerTokens(getHeader(head.headers, "connection"));
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
    upstream.up += out.byteLength;
    result.up += out.byteLength;
    // The body goes up while the response comes down: a server may answer before reading it all.
    const sending = copyBody(reader, upstream.writer, framing, tick).then((n) => {
      upstream.up += n;
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
      upstream.down += respBytes.byteLength;
      result.down += respBytes.byteLength;
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
      !headerTokens(getHeader(response.headers, "connection")).includes("close") &&
      response.version === "1.1";
    const keep = clientKeepAlive && respFraming.kind !== "close";
    progress.responded = true;
    await writer.write(
      encodeHead(`HTTP/1.1 ${response.status} ${response.reason}`, [
        ...endToEnd(response.headers),
        ["Connection", keep ? "keep-alive" : "close"],
      ]),
    );
    const body = await copyBody(upstream.reader, writer, respFraming, tick);
    upstream.down += body;
    result.down += body;
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
    { conn, reader, writer, head, ctx, result, destinations, user }: {
      conn: Duplex;
      reader: ByteReader;
      writer: Writer;
      head: RequestHead;
      ctx: InboundContext;
      result: InboundResult;
      destinations: string[];
      user: string | undefined;
    },
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
    const route = { destination: dest, inboundTag: ctx.tag, source: ctx.source, user };
    const r = await ctx.dispatcher.connect(heldClient(conn, reader, writer), route, {
      policy: ctx.policy,
      signal: ctx.signal,
      onOpened: () => writer.write(ascii.encode("HTTP/1.1 200 Connection established\r\n\r\n")),
    });
    result.outbound = r.outbound;
    result.result = r.result;
    if (r.error !== undefined) {
      await writer.write(encodeErrorResponse(502)).catch(() => {});
      await lingeringClose(conn, writer, reader);
      return result;
    }
    result.up += r.up;
    result.down += r.down;
    return result;
  }
}

/** The Basic credentials token for `user:pass` (RFC 7617, UTF-8). */
export function basic(user: string, pass: string): string {
  return btoa(String.fromCharCode(...ascii.encode(`${user}:${pass}`)));
}
