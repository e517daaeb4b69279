/**
 * The SOCKS inbound: SOCKS5 CONNECT and UDP ASSOCIATE (with username/password authentication when
 * configured), SOCKS4 and SOCKS4a CONNECT, told apart by the version byte. The wire codecs are in
 * lib/socks/; this file drives them off a `ByteReader` and hands the destination on.
 */
import { errorMessage, hasCause } from "../error_message.ts";
import { ByteReader } from "../net/byte_reader.ts";
import { type Destination, formatDestination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { deadline } from "./deadline.ts";
import { heldClient } from "./held_client.ts";
import type { InboundContext, InboundHandler, InboundResult } from "./inbound.ts";
import { lingeringClose } from "../net/lingering_close.ts";
import {
  Command,
  encodeReply,
  Method,
  parseGreeting,
  parseRequest,
  parseUserPass,
  Reply,
  type Request,
  SOCKS_VERSION,
  SocksError,
  USERPASS_VERSION,
} from "../socks/socks5.ts";
import {
  encodeSocks4Reply,
  parseSocks4Request,
  SOCKS4_MAX_FIELD,
  SOCKS4_VERSION,
  Socks4Command,
  Socks4Error,
  Socks4Reply,
  type Socks4Request,
} from "../socks/socks4.ts";
import { UdpAssociation } from "./socks_udp.ts";

/**
 * The success replies, the same bytes for every connection (encoding them parsed "0.0.0.0" each
 * time). Sockets copy what they are given; nothing writes into these.
 */
const SOCKS5_GRANTED = encodeReply(Reply.succeeded);
const SOCKS4_GRANTED = encodeSocks4Reply(Socks4Reply.granted);

/**
 * Parses off a `ByteReader` with an offset-returning parser: feeds it everything buffered and
 * pulls more while it asks for more. `null` on EOF. At most `limit` bytes are buffered.
 */
export async function readParsed<T extends { next: number }>(
  reader: ByteReader,
  parse: (b: Uint8Array) => T | null,
  limit = 1024,
): Promise<T | null> {
  for (let need = 1; need <= limit + 1; need = reader.buffered + 1) {
    if (!(await reader.ensure(need))) {
      if (reader.buffered === 0) return null;
      throw new SocksError(`Truncated SOCKS message: EOF after ${reader.buffered} bytes`);
    }
    const r = parse(reader.peek(reader.buffered));
    if (r) {
      await reader.readExact(r.next);
      return r;
    }
  }
  throw new SocksError(`SOCKS message longer than ${limit} bytes`);
}

export interface SocksAccount {
  user: string;
  pass: string;
}

export interface SocksOptions {
  /** v2ray `auth`: "noauth" (default) or "password". */
  auth?: "noauth" | "password";
  accounts?: SocksAccount[];
  /** v2ray `udp`: allow UDP ASSOCIATE. */
  udp?: boolean;
  /** v2ray `ip`: the address put in the UDP ASSOCIATE reply; default the address the client used. */
  ip?: string;
}

/** SOCKS5 (RFC 1928, RFC 1929), SOCKS4 and SOCKS4a on one port, as v2ray's socks inbound. */
export class SocksInbound implements InboundHandler {
  readonly #password: boolean;
  readonly #accounts: Map<string, string>;
  readonly #udp: boolean;
  readonly #ip: string | undefined;

  constructor(options: SocksOptions = {}) {
    this.#password = options.auth === "password";
    this.#accounts = new Map((options.accounts ?? []).map((a) => [a.user, a.pass]));
    this.#udp = options.udp ?? false;
    this.#ip = options.ip;
  }

  /** True when clients must authenticate (for the open-proxy warning). */
  get requiresAuth(): boolean {
    return this.#password;
  }

  handle(conn: Duplex, ctx: InboundContext): Promise<InboundResult> {
    return this.serve(conn, new ByteReader(conn.readable), ctx);
  }

  /** Serves a connection whose reader may already have bytes buffered (the mixed inbound). */
  async serve(conn: Duplex, reader: ByteReader, ctx: InboundContext): Promise<InboundResult> {
    const result: InboundResult = { destination: "", result: "ok", up: 0, down: 0 };
    let timedOut = false;
    const disarm = deadline(conn, ctx.policy.handshake, () => (timedOut = true), ctx.deadlines);
    const writer = conn.writable.getWriter();
    // Ends the connection, first sending `reply` if there is one (and letting it arrive).
    const fail = async (message: string, reply?: Uint8Array): Promise<InboundResult> => {
      disarm();
      if (reply && !timedOut) {
        try {
          await writer.write(reply);
          await lingeringClose(conn, writer, reader);
        } catch {
          // The client is gone already.
        }
      }
      conn.close();
      result.result = timedOut ? "handshake timeout" : message;
      return result;
    };
    try {
      if (!(await reader.ensure(1))) return fail("closed before greeting");
      let dest: Destination;
      let user: string | undefined;
      let granted: Uint8Array;
      let refusal: (err: unknown) => Uint8Array;
      if (reader.peek(1)[0] === SOCKS4_VERSION) {
        const rejected = encodeSocks4Reply(Socks4Reply.rejected);
        // SOCKS4 has no authentication: refused where a password is required (as v2ray does).
        if (this.#password) return fail("SOCKS4 refused: a password is required", rejected);
        let req4: Socks4Request | null;
        try {
          req4 = await readParsed(reader, parseSocks4Request, 8 + 2 * (SOCKS4_MAX_FIELD + 1));
        } catch (err) {
          if (err instanceof Socks4Error) return fail(err.message, rejected);
          throw err;
        }
        if (!req4) return fail("closed before request");
        disarm();
        if (req4.command !== Socks4Command.connect) {
          return fail(`Cannot serve SOCKS4 command ${req4.command}: only CONNECT`, rejected);
        }
        dest = { network: "tcp", host: req4.host, port: req4.port };
        granted = SOCKS4_GRANTED;
        refusal = () => rejected;
      } else {
        const asked = await this.#socks5Request(reader, writer, fail);
        if (!("req" in asked)) return asked;
        const { req } = asked;
        user = asked.user;
        disarm();
        if (req.command === Command.udpAssociate) {
          if (!this.#udp) {
            return fail("UDP ASSOCIATE not enabled", encodeReply(Reply.commandNotSupported));
          }
          writer.releaseLock();
          return await this.#associate(conn, reader, req, ctx, result, user);
        }
        dest = { network: "tcp", host: req.host, port: req.port };
        // CONNECT: BND.ADDR/BND.PORT would be the outbound's local address, which a proxied path
        // does not have; 0.0.0.0:0 is what v2ray sends and what clients accept.
        granted = SOCKS5_GRANTED;
        refusal = (err) => encodeReply(replyFor(err));
      }
      result.destination = formatDestination(dest);
      const route = { destination: dest, inboundTag: ctx.tag, source: ctx.source, user };
      const r = await ctx.dispatcher.connect(heldClient(conn, reader, writer), route, {
        policy: ctx.policy,
        signal: ctx.signal,
        onOpened: () => writer.write(granted),
      });
      result.outbound = r.outbound;
      if (r.error !== undefined) return fail(r.result, refusal(r.error));
      result.up = r.up;
      result.down = r.down;
      result.result = r.result;
      return result;
    } catch (err) {
      const reply = err instanceof SocksError && err.reply !== undefined
        ? encodeReply(err.reply)
        : undefined;
      return fail(errorMessage(err), reply);
    }
  }

  /**
   * The SOCKS5 greeting, method selection, password check and request. Returns the request, or
   * the result of `fail` when the client was refused or went away.
   */
  async #socks5Request(
    reader: ByteReader,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    fail: (message: string, reply?: Uint8Array) => Promise<InboundResult>,
  ): Promise<{ req: Request; user?: string } | InboundResult> {
    let user: string | undefined;
    const greeting = await readParsed(reader, parseGreeting);
    if (!greeting) return fail("closed before greeting");
    const want = this.#password ? Method.userPass : Method.noAuth;
    if (!greeting.methods.includes(want)) {
      // RFC 1928 §3: "If the selected METHOD is X'FF', none of the methods listed by the
      // client are acceptable, and the client MUST close the connection."
      return fail(
        "no acceptable authentication method",
        Uint8Array.of(SOCKS_VERSION, Method.noAcceptable),
      );
    }
    await writer.write(Uint8Array.of(SOCKS_VERSION, want));
    if (this.#password) {
      const creds = await readParsed(reader, parseUserPass);
      if (!creds) return fail("closed before authentication");
      const pass = this.#accounts.get(creds.user);
      // RFC 1929 §2: "A STATUS field of X'00' indicates success. If the server returns a
      // `failure' (STATUS value other than X'00') status, it MUST close the connection."
      if (pass === undefined || pass !== creds.pass) {
        return fail("authentication failed", Uint8Array.of(USERPASS_VERSION, 0x01));
      }
      await writer.write(Uint8Array.of(USERPASS_VERSION, 0x00));
      user = creds.user;
    }
    const req = await readParsed(reader, parseRequest);
    if (!req) return fail("closed before request");
    return { req, user };
  }

  async #associate(
    conn: Duplex,
    reader: ByteReader,
    req: Request,
    ctx: InboundContext,
    result: InboundResult,
    user: string | undefined,
  ): Promise<InboundResult> {
    const bindHost = ctx.localAddress ?? "127.0.0.1";
    let socket: Deno.DatagramConn;
    const writer = conn.writable.getWriter();
    try {
      socket = Deno.listenDatagram({ transport: "udp", hostname: bindHost, port: 0 });
    } catch (err) {
      await writer.write(encodeReply(Reply.generalFailure)).catch(() => {});
      conn.close();
      result.result = `cannot open UDP relay: ${errorMessage(err)}`;
      return result;
    }
    const port = (socket.addr as Deno.NetAddr).port;
    const association = new UdpAssociation(socket, ctx, {
      user,
      // RFC 1928 §4: DST.ADDR/DST.PORT of UDP ASSOCIATE are where the client will send from;
      // zero when it does not know yet. Only the port is used: the host must match the TCP peer.
      clientPort: req.port,
    });
    result.destination = `udp:${bindHost}:${port}`;
    try {
      // RFC 1928 §6: "In the reply to a UDP ASSOCIATE request, the BND.PORT and BND.ADDR fields
      // indicate the port number/address where the client MUST send UDP request messages".
      await writer.write(encodeReply(Reply.succeeded, this.#ip ?? bindHost, port));
      writer.releaseLock();
      // RFC 1928 §7: "A UDP association terminates when the TCP connection that the UDP
      // ASSOCIATE request arrived on terminates." Read and discard until then.
      const aborted = new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      const controlClosed = (async () => {
        try {
          for (let n = 0; n < Number.MAX_SAFE_INTEGER; n++) {
            if ((await reader.read()) === null) break;
          }
        } catch {
          // A reset ends the association as well.
        }
      })();
      await Promise.race([controlClosed, aborted, association.done]);
    } catch (err) {
      result.result = errorMessage(err);
    } finally {
      association.close();
      conn.close();
    }
    result.up = association.up;
    result.down = association.down;
    // With flows, the dispatcher logged each; an association that carried none is logged alone.
    if (association.outbound !== undefined) result.outbound = association.outbound;
    return result;
  }
}

/** The REP for an outbound failure (RFC 1928 §6). */
export function replyFor(err: unknown): number {
  if (hasCause(err, Deno.errors.ConnectionRefused)) return Reply.connectionRefused;
  if (hasCause(err, Deno.errors.NetworkUnreachable)) return Reply.networkUnreachable;
  if (hasCause(err, Deno.errors.NotFound) || hasCause(err, Deno.errors.TimedOut)) {
    return Reply.hostUnreachable;
  }
  return Reply.generalFailure;
}
