/**
 * The VLESS inbound (server side): reads the request header off any byte stream — a TCP or TLS
 * socket, or one HTTP/2 request stream of the http transport — checks the user, opens the
 * destination on the outbound and relays.
 *
 * As v2ray 4.34's server:
 * - an unknown user id, a bad version, command or address closes the connection without a reply
 *   (nothing a prober could use);
 * - the response header (the request's version and empty addons) leaves together with the first
 *   downlink bytes, or alone just before the downlink's EOF when the target sends nothing;
 * - UDP (command 2) carries each datagram as a 2-byte length then its bytes, both ways;
 * - the handshake deadline is the level-0 policy's; after the header the user's level applies.
 *
 * Unlike v2ray 4.34, the downlink's end is passed on at once (its http server holds a finished
 * stream for about a second), and Mux (command 3) is refused with a log line saying so.
 */
import type { Policy } from "../dispatch/policy.ts";
import { errorMessage } from "../error_message.ts";
import { ForwardingWriter } from "../net/forwarding_writer.ts";
import { ByteReader } from "../net/byte_reader.ts";
import { type Destination, formatDestination, formatHostPort } from "../net/destination.ts";
import { abortively, type Duplex, type HeldDuplex } from "../net/duplex.ts";
import { encodeResponseHeader, parseRequestHeader, VLESS_VERSION } from "../vless/header.ts";
import { encodeUdpPacket, UdpPacketDecoderStream } from "../vless/udp.ts";
import { deadline } from "./deadline.ts";
import type { InboundContext, InboundHandler, InboundResult } from "./inbound.ts";

export interface VlessInboundClient {
  /** The 16 bytes of the user's UUID (never logged). */
  id: Uint8Array;
  /** Policy level (default 0). */
  level?: number;
  /** For logs only. */
  email?: string;
}

export interface VlessInboundOptions {
  /** `settings.clients`: at least one. */
  clients: VlessInboundClient[];
  /**
   * The policy of a user level, applied once the user is known. Without it every user gets the
   * context's policy (which also bounds the handshake).
   */
  policyForLevel?: (level: number) => Policy;
}

/**
 * The longest request header: version, id, addons length, 255 bytes of addons, command, port,
 * address type, domain length and a 255-byte domain. Nothing beyond this is buffered before the
 * header is known.
 */
export const MAX_REQUEST_HEADER = 1 + 16 + 1 + 255 + 1 + 2 + 1 + 1 + 255;

/** A request the server refuses; the message goes to the log and the access log. */
class Refusal extends Error {
  /** Worth a warning (a misconfigured client), not just an info line (a prober, a scanner). */
  readonly warn: boolean;
  constructor(message: string, warn = false) {
    super(message);
    this.name = "Refusal";
    this.warn = warn;
  }
}

export class VlessInbound implements InboundHandler {
  /** Clients authenticate with their id: no open-proxy warning on a public address. */
  readonly requiresAuth = true;
  readonly #users = new Map<string, VlessInboundClient>();
  readonly #policyForLevel: ((level: number) => Policy) | undefined;

  constructor(options: VlessInboundOptions) {
    if (options.clients.length === 0) {
      throw new TypeError("VlessInbound needs at least one client");
    }
    for (const [i, c] of options.clients.entries()) {
      if (c.id.byteLength !== 16) {
        throw new RangeError(`VLESS client ${i}: id must be 16 bytes, got ${c.id.byteLength}`);
      }
      this.#users.set(idKey(c.id), c);
    }
    this.#policyForLevel = options.policyForLevel;
  }

  async handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    const result: InboundResult = { destination: "", result: "ok", up: 0, down: 0 };
    const reader = new ByteReader(conn.readable);
    let timedOut = false;
    const disarm = deadline(conn, ctx.policy.handshake, () => (timedOut = true), ctx.deadlines);
    const source = formatHostPort(ctx.source.host, ctx.source.port);
    const refuse = (err: unknown): InboundResult => {
      disarm();
      conn.close();
      reader.cancel().catch(() => {});
      result.result = timedOut ? "handshake timeout" : errorMessage(err);
      const line = `vless: ${source}: ${result.result}`;
      if (err instanceof Refusal && err.warn && !timedOut) ctx.logger.warn(line);
      else ctx.logger.info(line);
      return result;
    };

    let user: VlessInboundClient;
    let dest: Destination;
    let version: number;
    try {
      ({ user, dest, version } = await this.#readRequest(reader));
    } catch (err) {
      return refuse(err);
    }
    disarm();
    result.destination = formatDestination(dest);
    const policy = this.#policyForLevel?.(user.level ?? 0) ?? ctx.policy;
    ctx.logger.debug(
      `vless: ${source}${user.email ? ` (${user.email})` : ""} → ${result.destination}`,
    );
    const udp = dest.network === "udp";
    const client: HeldDuplex = {
      reader: udp
        ? reader.rest().pipeThrough(new UdpPacketDecoderStream()).getReader()
        : reader.restReader(),
      writer: new ResponseWriter(conn, encodeResponseHeader(version), udp, ctx),
      close: () => conn.close(),
      // The response writer passes chunks on to the connection, or copies them.
      copiesWrites: conn.copiesWrites,
      reset: () => abortively(conn),
    };
    const route = {
      destination: dest,
      inboundTag: ctx.tag,
      source: ctx.source,
      user: user.email || undefined,
    };
    const r = await ctx.dispatcher.connect(client, route, { policy, signal: ctx.signal });
    result.outbound = r.outbound;
    // v2ray closes without a response too: the client sees the stream end before the header.
    if (r.error !== undefined) return refuse(r.error);
    result.up = r.up;
    result.down = r.down;
    result.result = r.result;
    return result;
  }

  /**
   * Reads exactly the request header: the user is checked as soon as its 16 bytes are in (an
   * unknown id is refused without waiting for more), and at most {@link MAX_REQUEST_HEADER} bytes
   * are looked at. Bytes after the header stay in `reader`.
   */
  async #readRequest(
    reader: ByteReader,
  ): Promise<{ user: VlessInboundClient; dest: Destination; version: number }> {
    if (!(await reader.ensure(1))) throw new Refusal("closed before sending a request");
    const version = reader.peek(1)[0];
    if (version !== VLESS_VERSION) {
      throw new Refusal(`not a VLESS request: unsupported version ${version}`);
    }
    if (!(await reader.ensure(17))) {
      throw new Refusal(`closed inside the request header after ${reader.buffered} bytes`);
    }
    const user = this.#users.get(idKey(reader.peek(17).subarray(1)));
    if (!user) throw new Refusal("unknown user id");
    // Each round needs one more byte than the last, so this ends within MAX_REQUEST_HEADER rounds.
    for (let want = 18; want <= MAX_REQUEST_HEADER; want = reader.buffered + 1) {
      if (!(await reader.ensure(want))) {
        throw new Refusal(`closed inside the request header after ${reader.buffered} bytes`);
      }
      let parsed;
      try {
        parsed = parseRequestHeader(reader.peek(Math.min(reader.buffered, MAX_REQUEST_HEADER)));
      } catch (err) {
        throw new Refusal(errorMessage(err));
      }
      if (!parsed) continue;
      const { header, consumed } = parsed;
      await reader.readExact(consumed);
      if (header.command === "mux") {
        throw new Refusal(
          "Mux (command 3) is not supported by this server; turn off mux on the client",
          true,
        );
      }
      if (header.addons.flow) {
        throw new Refusal(`flow "${header.addons.flow}" is not supported by this server`, true);
      }
      return { user, dest: header.dest, version: header.version };
    }
    throw new Refusal(`request header longer than ${MAX_REQUEST_HEADER} bytes`);
  }
}

/** A Map key for a 16-byte id, without building a hex string per lookup. */
function idKey(id: Uint8Array): string {
  return String.fromCharCode(...id);
}

/**
 * The client's side as the relay writes it: the response header goes out with the first chunk
 * (or alone right before the half-close when there is none); for UDP every chunk is one datagram,
 * framed with its 2-byte length. A writer over the connection's own writer rather than a stream
 * of its own, so chunks take no extra hop; backpressure is the connection's (`ready`).
 */
class ResponseWriter extends ForwardingWriter {
  #conn: Duplex;
  #pending: Uint8Array | null;
  #udp: boolean;
  #ctx: InboundContext;

  constructor(conn: Duplex, header: Uint8Array, udp: boolean, ctx: InboundContext) {
    super(conn.writable.getWriter());
    this.#conn = conn;
    this.#pending = header;
    this.#udp = udp;
    this.#ctx = ctx;
  }

  override write(chunk: Uint8Array): Promise<void> {
    let data = chunk;
    if (this.#udp) {
      if (chunk.byteLength === 0) return Promise.resolve();
      try {
        data = encodeUdpPacket(chunk);
      } catch (err) {
        // UDP is lossy: drop the datagram, keep the association.
        this.#ctx.logger.warn(
          `vless: ${
            formatHostPort(this.#ctx.source.host, this.#ctx.source.port)
          }: dropped a datagram: ${errorMessage(err)}`,
        );
        return Promise.resolve();
      }
    }
    const header = this.#pending;
    if (header) {
      this.#pending = null;
      const first = new Uint8Array(header.byteLength + data.byteLength);
      first.set(header);
      first.set(data, header.byteLength);
      data = first;
    }
    return this.inner.write(data);
  }

  override close(): Promise<void> {
    const header = this.#pending;
    this.#pending = null;
    if (header) this.inner.write(header).catch(() => {});
    return this.inner.close();
  }

  override abort(reason?: unknown): Promise<void> {
    this.inner.abort(reason).catch(() => {});
    this.#conn.close();
    return Promise.resolve();
  }
}
