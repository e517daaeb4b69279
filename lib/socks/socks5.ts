/**
 * SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): pure functions over byte
 * arrays, each returning the offset after what it parsed, or `null` when more bytes are needed.
 * The inbound (lib/inbound/socks.ts) drives them off a `ByteReader`.
 */
import {
  addressKind,
  ipv4ToBytes,
  ipv4ToString,
  ipv6ToBytes,
  ipv6ToString,
} from "../net/destination.ts";

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
