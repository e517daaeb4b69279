/**
 * SOCKS5 inbound (RFC 1928) with username/password authentication (RFC 1929): CONNECT and
 * UDP ASSOCIATE. The wire codec is a set of pure functions over byte arrays, each returning the
 * offset after what it parsed, or `null` when more bytes are needed; the handler below drives them
 * off a `ByteReader`.
 */
import { ByteReader } from "../net/byte_reader.ts";
import {
  addressKind,
  type Destination,
  formatDestination,
  ipv4ToBytes,
  ipv4ToString,
  ipv6ToBytes,
  ipv6ToString,
} from "../net/destination.ts";
import type { Duplex, HeldDuplex } from "../net/duplex.ts";
import { relay } from "../net/relay.ts";
import {
  deadline,
  describeRelay,
  errorMessage,
  hasCause,
  type InboundContext,
  type InboundHandler,
  type InboundResult,
  lingeringClose,
  openOutbound,
  splitHostPort,
} from "./inbound.ts";
import {
  encodeSocks4Reply,
  parseSocks4Request,
  SOCKS4_MAX_FIELD,
  SOCKS4_VERSION,
  Socks4Command,
  Socks4Error,
  Socks4Reply,
  type Socks4Request,
} from "./socks4.ts";
import { UdpFlow, UdpFlowTable } from "./udp_flow.ts";
import { closeQuietly } from "../net/close_quietly.ts";

export const SOCKS_VERSION = 0x05;
/** RFC 1929 §2: "The VER field contains the current version of the subnegotiation, which is X'01'." */
export const USERPASS_VERSION = 0x01;

/** RFC 1928 §3 METHOD values we know. */
export const Method = {
  noAuth: 0x00,
  userPass: 0x02,
  noAcceptable: 0xff,
} as const;

/** RFC 1928 §4 CMD values. */
export const Command = { connect: 0x01, bind: 0x02, udpAssociate: 0x03 } as const;

/** RFC 1928 §5 ATYP values. */
export const AddressType = { ipv4: 0x01, domain: 0x03, ipv6: 0x04 } as const;

/** RFC 1928 §6 REP values. */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A malformed or unsupported request; `reply` is the REP code to answer with, if any. */
export class SocksError extends SyntaxError {
  readonly reply: number | undefined;
  constructor(message: string, reply?: number) {
    super(message);
    this.name = "SocksError";
    this.reply = reply;
  }
}

export interface Greeting {
  methods: Uint8Array;
  next: number;
}

/** RFC 1928 §3: VER NMETHODS METHODS[NMETHODS]. */
export function parseGreeting(b: Uint8Array, off = 0): Greeting | null {
  if (b.byteLength <= off) return null;
  if (b[off] !== SOCKS_VERSION) {
    throw new SocksError(`Cannot parse SOCKS greeting: version ${b[off]} at byte ${off}, want 5`);
  }
  if (b.byteLength < off + 2) return null;
  const n = b[off + 1];
  if (n === 0) throw new SocksError("Cannot parse SOCKS greeting: NMETHODS is 0");
  if (b.byteLength < off + 2 + n) return null;
  return { methods: b.subarray(off + 2, off + 2 + n), next: off + 2 + n };
}

export interface UserPass {
  user: string;
  pass: string;
  next: number;
}

const utf8 = new TextDecoder();
const utf8Encode = new TextEncoder();

/** RFC 1929 §2: VER ULEN UNAME PLEN PASSWD. */
export function parseUserPass(b: Uint8Array, off = 0): UserPass | null {
  if (b.byteLength <= off) return null;
  if (b[off] !== USERPASS_VERSION) {
    throw new SocksError(`Cannot parse SOCKS username/password: version ${b[off]}, want 1`);
  }
  if (b.byteLength < off + 2) return null;
  const ulen = b[off + 1];
  if (b.byteLength < off + 3 + ulen) return null;
  const plen = b[off + 2 + ulen];
  const end = off + 3 + ulen + plen;
  if (b.byteLength < end) return null;
  return {
    user: utf8.decode(b.subarray(off + 2, off + 2 + ulen)),
    pass: utf8.decode(b.subarray(off + 3 + ulen, end)),
    next: end,
  };
}

export interface AddressPort {
  host: string;
  port: number;
  next: number;
}

/** ATYP DST.ADDR DST.PORT starting at `off`. Unknown ATYP or an empty domain → REP 08 / 01. */
export function parseAddress(b: Uint8Array, off: number): AddressPort | null {
  if (b.byteLength <= off) return null;
  const atyp = b[off];
  let host: string;
  let at: number;
  switch (atyp) {
    case AddressType.ipv4:
      if (b.byteLength < off + 1 + 4 + 2) return null;
      host = ipv4ToString(b.subarray(off + 1, off + 5));
      at = off + 5;
      break;
    case AddressType.ipv6:
      if (b.byteLength < off + 1 + 16 + 2) return null;
      host = ipv6ToString(b.subarray(off + 1, off + 17));
      at = off + 17;
      break;
    case AddressType.domain: {
      if (b.byteLength < off + 2) return null;
      const len = b[off + 1];
      if (len === 0) {
        throw new SocksError(
          `Cannot parse SOCKS address: empty domain at byte ${off + 1}`,
          Reply.generalFailure,
        );
      }
      if (b.byteLength < off + 2 + len + 2) return null;
      host = utf8.decode(b.subarray(off + 2, off + 2 + len));
      at = off + 2 + len;
      break;
    }
    default:
      throw new SocksError(
        `Cannot parse SOCKS address: unknown ATYP ${atyp} at byte ${off}`,
        Reply.addressTypeNotSupported,
      );
  }
  return { host, port: (b[at] << 8) | b[at + 1], next: at + 2 };
}

/** ATYP + address + port for `host` (IPv4/IPv6 literal or domain). */
export function encodeAddress(host: string, port: number): Uint8Array {
  const kind = addressKind(host);
  let body: Uint8Array;
  if (kind === "ipv4") body = Uint8Array.of(AddressType.ipv4, ...ipv4ToBytes(host));
  else if (kind === "ipv6") body = Uint8Array.of(AddressType.ipv6, ...ipv6ToBytes(host));
  else {
    const name = utf8Encode.encode(host);
    if (name.byteLength === 0 || name.byteLength > 255) {
      throw new RangeError(`Cannot encode SOCKS address: domain length ${name.byteLength}`);
    }
    body = Uint8Array.of(AddressType.domain, name.byteLength, ...name);
  }
  const out = new Uint8Array(body.byteLength + 2);
  out.set(body);
  out[body.byteLength] = port >> 8;
  out[body.byteLength + 1] = port & 0xff;
  return out;
}

export interface Request {
  command: number;
  host: string;
  port: number;
  next: number;
}

/** RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. Errors carry the REP to answer with. */
export function parseRequest(b: Uint8Array, off = 0): Request | null {
  if (b.byteLength <= off) return null;
  if (b[off] !== SOCKS_VERSION) {
    throw new SocksError(`Cannot parse SOCKS request: version ${b[off]}, want 5`);
  }
  if (b.byteLength < off + 2) return null;
  const command = b[off + 1];
  if (b.byteLength < off + 4) return null;
  // The whole request is read before refusing a command, so the refusal is not lost to a RST
  // for unread bytes.
  const addr = parseAddress(b, off + 3);
  if (!addr) return null;
  if (command !== Command.connect && command !== Command.udpAssociate) {
    // BIND is not offered: a proxy reached over VLESS cannot accept inbound connections.
    throw new SocksError(
      `Cannot serve SOCKS request: command ${command} not supported`,
      Reply.commandNotSupported,
    );
  }
  return { command, host: addr.host, port: addr.port, next: addr.next };
}

/** RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT. */
export function encodeReply(reply: number, host = "0.0.0.0", port = 0): Uint8Array {
  const addr = encodeAddress(host, port);
  const out = new Uint8Array(3 + addr.byteLength);
  out[0] = SOCKS_VERSION;
  out[1] = reply;
  out.set(addr, 3);
  return out;
}

export interface UdpDatagram {
  frag: number;
  host: string;
  port: number;
  payload: Uint8Array;
}

/**
 * RFC 1928 §7: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. `null` for a datagram too short for its
 * header (to be dropped); throws SocksError for an unknown ATYP or empty domain (also dropped).
 */
export function parseUdpDatagram(b: Uint8Array): UdpDatagram | null {
  if (b.byteLength < 4) return null;
  const addr = parseAddress(b, 3);
  if (!addr) return null;
  return { frag: b[2], host: addr.host, port: addr.port, payload: b.subarray(addr.next) };
}

/** The header the relay puts in front of each datagram it returns to the client. */
export function encodeUdpDatagram(host: string, port: number, payload: Uint8Array): Uint8Array {
  const addr = encodeAddress(host, port);
  const out = new Uint8Array(3 + addr.byteLength + payload.byteLength);
  out.set(addr, 3);
  out.set(payload, 3 + addr.byteLength);
  return out;
}

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

export interface Socks5Account {
  user: string;
  pass: string;
}

export interface Socks5Options {
  /** v2ray `auth`: "noauth" (default) or "password". */
  auth?: "noauth" | "password";
  accounts?: Socks5Account[];
  /** v2ray `udp`: allow UDP ASSOCIATE. */
  udp?: boolean;
  /** v2ray `ip`: the address put in the UDP ASSOCIATE reply; default the address the client used. */
  ip?: string;
}

/** How many destinations one UDP association may talk to at once; the oldest flow makes room. */
const MAX_UDP_FLOWS = 256;

export class Socks5Inbound implements InboundHandler {
  readonly #password: boolean;
  readonly #accounts: Map<string, string>;
  readonly #udp: boolean;
  readonly #ip: string | undefined;

  constructor(options: Socks5Options = {}) {
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
    const disarm = deadline(conn, ctx.policy.handshake, () => (timedOut = true));
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
        granted = encodeSocks4Reply(Socks4Reply.granted);
        refusal = () => rejected;
      } else {
        const req = await this.#socks5Request(reader, writer, fail);
        if (!("command" in req)) return req;
        disarm();
        if (req.command === Command.udpAssociate) {
          if (!this.#udp) {
            return fail("UDP ASSOCIATE not enabled", encodeReply(Reply.commandNotSupported));
          }
          writer.releaseLock();
          return await this.#associate(conn, reader, req, ctx, result);
        }
        dest = { network: "tcp", host: req.host, port: req.port };
        // CONNECT: BND.ADDR/BND.PORT would be the outbound's local address, which a proxied path
        // does not have; 0.0.0.0:0 is what v2ray sends and what clients accept.
        granted = encodeReply(Reply.succeeded);
        refusal = (err) => encodeReply(replyFor(err));
      }
      result.destination = formatDestination(dest);
      let remote: Duplex;
      try {
        remote = await openOutbound(ctx, dest);
      } catch (err) {
        return fail(errorMessage(err), refusal(err));
      }
      try {
        await writer.write(granted);
      } catch (err) {
        remote.close();
        return fail(errorMessage(err));
      }
      const client: HeldDuplex = { reader: reader.restReader(), writer, close: () => conn.close() };
      const r = await relay(client, remote, { ...ctx.policy, signal: ctx.signal });
      result.up = r.up;
      result.down = r.down;
      result.result = describeRelay(r);
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
  ): Promise<Request | InboundResult> {
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
    }
    const req = await readParsed(reader, parseRequest);
    if (!req) return fail("closed before request");
    return req;
  }

  async #associate(
    conn: Duplex,
    reader: ByteReader,
    req: Request,
    ctx: InboundContext,
    result: InboundResult,
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
    const source = splitHostPort(ctx.source);
    const association = new UdpAssociation(socket, ctx, {
      clientHost: source.host,
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
    return result;
  }
}

interface AssociationOptions {
  clientHost: string;
  clientPort: number;
}

/** One UDP ASSOCIATE: the relay socket, and one outbound UDP Duplex per destination. */
class UdpAssociation {
  up = 0;
  down = 0;
  readonly done: Promise<void>;
  #socket: Deno.DatagramConn;
  #ctx: InboundContext;
  #clientHost: string;
  #client: Deno.NetAddr | undefined;
  #clientPort: number;
  #flows = new UdpFlowTable(MAX_UDP_FLOWS);
  #closed = false;

  constructor(socket: Deno.DatagramConn, ctx: InboundContext, opts: AssociationOptions) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#clientHost = unmapV4(opts.clientHost);
    this.#clientPort = opts.clientPort;
    this.done = this.#receive();
  }

  async #receive(): Promise<void> {
    for (let n = 0; n < Number.MAX_SAFE_INTEGER && !this.#closed; n++) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await this.#socket.receive();
      } catch {
        return; // socket closed
      }
      const from = addr as Deno.NetAddr;
      // Only the client that asked for the association may use it.
      if (unmapV4(from.hostname) !== this.#clientHost) continue;
      if (this.#client) {
        if (from.port !== this.#client.port) continue;
      } else {
        if (this.#clientPort !== 0 && from.port !== this.#clientPort) continue;
        this.#client = { transport: "udp", hostname: from.hostname, port: from.port };
      }
      let dg: UdpDatagram | null;
      try {
        dg = parseUdpDatagram(data);
      } catch {
        continue; // unknown address type: drop
      }
      // RFC 1928 §7: "An implementation that does not support fragmentation MUST drop any
      // datagram whose FRAG field is other than X'00'."
      if (!dg || dg.frag !== 0) continue;
      this.#flow(dg.host, dg.port).send(dg.payload.slice());
    }
  }

  #flow(host: string, port: number): UdpFlow {
    return this.#flows.flow(`${host}|${port}`, (onClose) =>
      new UdpFlow({
        ctx: this.#ctx,
        dest: { network: "udp", host, port },
        onReply: (payload) => this.#reply(host, port, payload),
        onClose: (flow) => {
          onClose(flow);
          this.up += flow.up;
          this.down += flow.down;
        },
      }));
  }

  #reply(host: string, port: number, payload: Uint8Array): void {
    if (this.#closed || !this.#client) return;
    this.#socket.send(encodeUdpDatagram(host, port, payload), this.#client).catch(() => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#socket);
    this.#flows.closeAll();
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`, so a dual-stack socket's view of a v4 client compares equal. */
function unmapV4(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1] : host;
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
