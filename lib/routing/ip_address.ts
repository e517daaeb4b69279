/**
 * IP addresses as routing compares them: IPv4 as an unsigned 32-bit number, IPv6 as 32 lowercase
 * hex digits (fixed width, so string order is numeric order). An IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`) is IPv4, as v2ray 4.34 treats it (common/net/address.go IPAddress).
 */
import { addressKind, ipv4ToBytes, ipv6ToBytes } from "../net/destination.ts";

export type IpAddress = { family: 4; value: number } | { family: 6; value: string };

export interface Cidr {
  family: 4 | 6;
  /** First address, as in IpAddress.value; host bits are masked off. */
  first: number | string;
  /** Last address, inclusive. */
  last: number | string;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Parses an IP literal (IPv6 with or without brackets); null when `text` is not one. */
export function parseIp(text: string): IpAddress | null {
  let s = text;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const kind = addressKind(s);
  if (kind === "ipv4") {
    const b = ipv4ToBytes(s);
    return { family: 4, value: ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0 };
  }
  if (kind !== "ipv6") return null;
  let b: Uint8Array;
  try {
    b = ipv6ToBytes(s);
  } catch {
    return null;
  }
  return ipFromBytes(b);
}

/** An address from its 4 or 16 wire bytes; null for any other length. */
export function ipFromBytes(b: Uint8Array): IpAddress | null {
  if (b.length === 4) {
    return { family: 4, value: ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0 };
  }
  if (b.length !== 16) return null;
  if (isV4Mapped(b)) return ipFromBytes(b.subarray(12));
  let hex = "";
  for (let i = 0; i < 16; i++) hex += HEX[b[i]];
  return { family: 6, value: hex };
}

/** The text form of `ip`, for dialling (IPv6 uncompressed: eight groups of four hex digits). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = ip.value;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  return ip.value.match(/.{4}/g)!.join(":");
}

/**
 * Parses `1.2.3.4`, `::1` (a single address) or `10.0.0.0/8`, `fd00::/8`. Host bits are masked
 * off, as 4.34 does (`10.1.2.3/8` is 10.0.0.0/8). Throws SyntaxError / RangeError naming the text.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addr);
  if (ip === null) throw new SyntaxError(`"${text}" is not an IP address or CIDR`);
  const max = ip.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const mask = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(mask)) throw new SyntaxError(`invalid network mask in "${text}"`);
    bits = Number(mask);
    if (bits > max) throw new RangeError(`network mask ${bits} in "${text}" exceeds ${max}`);
  }
  // An IPv4-mapped IPv6 CIDR counts its bits over the IPv6 form.
  if (ip.family === 4 && addressKind(addr.replace(/^\[|\]$/g, "")) === "ipv6") {
    bits = Math.max(0, bits - 96);
  }
  return cidrOf(ip, bits);
}

/** The CIDR of `ip` with `bits` prefix bits (geoip.dat entries). */
export function cidrOf(ip: IpAddress, bits: number): Cidr {
  if (ip.family === 4) {
    const hostBits = 32 - bits;
    const size = 2 ** hostBits;
    const first = Math.floor(ip.value / size) * size;
    return { family: 4, first, last: first + size - 1 };
  }
  const v = BigInt("0x" + ip.value);
  const hostBits = BigInt(128 - bits);
  const first = (v >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  return { family: 6, first: toHex128(first), last: toHex128(last) };
}

export function toHex128(v: bigint): string {
  return v.toString(16).padStart(32, "0");
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}
