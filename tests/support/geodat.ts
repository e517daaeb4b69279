/**
 * A tiny protobuf encoder for geoip.dat / geosite.dat test fixtures (router.proto GeoIPList /
 * GeoSiteList), so tests never depend on downloaded files. Proto3: zero values are omitted.
 */
import { ipv4ToBytes, ipv6ToBytes } from "../../lib/net/destination.ts";

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function len(field: number, payload: Uint8Array | number[]): number[] {
  return [...varint((field << 3) | 2), ...varint(payload.length), ...payload];
}

function num(field: number, n: number): number[] {
  return n === 0 ? [] : [...varint(field << 3), ...varint(n)];
}

const text = (s: string) => [...new TextEncoder().encode(s)];

/** One CIDR message from "10.0.0.0/8" / "fd00::/8" / "1.2.3.4". */
function cidr(s: string): number[] {
  const [addr, bits] = s.split("/");
  const ip = addr.includes(":") ? ipv6ToBytes(addr) : ipv4ToBytes(addr);
  const prefix = bits === undefined ? ip.length * 8 : Number(bits);
  return [...len(1, ip), ...num(2, prefix)];
}

/** A GeoIPList with one entry per code. */
export function encodeGeoIp(entries: Record<string, string[]>): Uint8Array {
  const out: number[] = [];
  for (const [code, cidrs] of Object.entries(entries)) {
    out.push(...len(1, [...len(1, text(code)), ...cidrs.flatMap((c) => len(2, cidr(c)))]));
  }
  return Uint8Array.from(out);
}

/** One geosite domain: "domain:x.com", "full:x", "regexp:…", "plain" text; `@attr` suffixes. */
function domain(spec: string): number[] {
  const [body, ...attrs] = spec.split("@");
  const types: Record<string, number> = { "regexp:": 1, "domain:": 2, "full:": 3 };
  let type = 0;
  let value = body;
  for (const [prefix, t] of Object.entries(types)) {
    if (body.startsWith(prefix)) [type, value] = [t, body.slice(prefix.length)];
  }
  return [
    ...num(1, type),
    ...len(2, text(value)),
    ...attrs.flatMap((a) => len(3, [...len(1, text(a)), ...num(2, 1)])),
  ];
}

/** A GeoSiteList with one entry per code. */
export function encodeGeoSite(entries: Record<string, string[]>): Uint8Array {
  const out: number[] = [];
  for (const [code, domains] of Object.entries(entries)) {
    out.push(...len(1, [...len(1, text(code)), ...domains.flatMap((d) => len(2, domain(d)))]));
  }
  return Uint8Array.from(out);
}
