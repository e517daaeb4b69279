/**
 * SOCKS4 and SOCKS4a requests (CONNECT only), served on the same port as SOCKS5, as v2ray's socks
 * inbound does. The protocol has no authentication, so an inbound that requires a password refuses
 * it. Pure functions over byte arrays, like the SOCKS5 codec: each returns the offset after what it
 * parsed, or `null` when more bytes are needed.
 *
 * Request: VN(4) CD DSTPORT(2) DSTIP(4) USERID NUL; SOCKS4a puts 0.0.0.x (x ≠ 0) in DSTIP and the
 * host name after USERID, NUL-terminated. Reply: VN(0) CD DSTPORT(2) DSTIP(4).
 */
import { ipv4ToString } from "../net/destination.ts";

export const SOCKS4_VERSION = 0x04;

/** The CD values of a reply. */
export const Socks4Reply = { granted: 90, rejected: 91 } as const;

/** The CD values of a request. */
export const Socks4Command = { connect: 0x01, bind: 0x02 } as const;

/** Longest USERID or SOCKS4a host name we read (the protocol sets none; v2ray reads up to 255). */
export const SOCKS4_MAX_FIELD = 255;

/** A malformed SOCKS4 request; the connection gets a "rejected" reply and is closed. */
export class Socks4Error extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = "Socks4Error";
  }
}

export interface Socks4Request {
  command: number;
  host: string;
  port: number;
  user: string;
  next: number;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

/** The whole request starting at `off`, or `null` while bytes are missing. */
export function parseSocks4Request(b: Uint8Array, off = 0): Socks4Request | null {
  if (b.byteLength <= off) return null;
  if (b[off] !== SOCKS4_VERSION) {
    throw new Socks4Error(`Cannot parse SOCKS4 request: version ${b[off]} at byte ${off}, want 4`);
  }
  if (b.byteLength < off + 8) return null;
  const command = b[off + 1];
  const port = (b[off + 2] << 8) | b[off + 3];
  const ip = b.subarray(off + 4, off + 8);
  const userEnd = nulAt(b, off + 8, "USERID");
  if (userEnd < 0) return null;
  const user = latin1.decode(b.subarray(off + 8, userEnd));
  // SOCKS4a: DSTIP 0.0.0.x with x non-zero means "a host name follows". (v2ray takes any
  // address starting with 0 that way; 0.0.0.0 is not a destination either way.)
  if (ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0) {
    const nameEnd = nulAt(b, userEnd + 1, "host name");
    if (nameEnd < 0) return null;
    if (nameEnd === userEnd + 1) {
      throw new Socks4Error(`Cannot parse SOCKS4a request: empty host name at byte ${nameEnd}`);
    }
    const host = utf8.decode(b.subarray(userEnd + 1, nameEnd));
    return { command, host, port, user, next: nameEnd + 1 };
  }
  return { command, host: ipv4ToString(ip), port, user, next: userEnd + 1 };
}

/** VN(0) CD DSTPORT DSTIP: v2ray answers 0.0.0.0:0, as it does for SOCKS5. */
export function encodeSocks4Reply(code: number): Uint8Array {
  return Uint8Array.of(0, code, 0, 0, 0, 0, 0, 0);
}

/** The index of the NUL ending a field that starts at `from`, or -1 while it is still coming. */
function nulAt(b: Uint8Array, from: number, what: string): number {
  const end = Math.min(b.byteLength, from + SOCKS4_MAX_FIELD + 1);
  for (let i = from; i < end; i++) if (b[i] === 0) return i;
  if (end - from > SOCKS4_MAX_FIELD) {
    throw new Socks4Error(
      `Cannot parse SOCKS4 request: ${what} at byte ${from} longer than ${SOCKS4_MAX_FIELD} bytes`,
    );
  }
  return -1;
}
