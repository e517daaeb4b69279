/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): what a load balancer
 * or CDN edge in front of a server writes before the client's bytes, so the server learns the
 * client's address. Pure codec: bytes in, values out.
 *
 * What is accepted follows the library v2ray 4.34 reads it with (pires/go-proxyproto, policy
 * REQUIRE): v1 `TCP4`/`TCP6`/`UNKNOWN` lines of at most 107 bytes; v2 commands LOCAL and PROXY,
 * address blocks at least as long as their family needs, TLVs skipped; LOCAL and UNKNOWN carry no
 * address (the socket's stays). Unlike that library, a v1 line split across reads is waited for.
 */
import {
  type HostPort,
  ipv4ToBytes,
  ipv4ToString,
  ipv6ToBytes,
  ipv6ToString,
} from "./destination.ts";

export interface ProxyHeader {
  version: 1 | 2;
  /** "local": a health check or the proxy's own connection; the addresses are not the client's. */
  command: "proxy" | "local";
  /** The client's address, when the header names an IP one (absent for LOCAL, UNKNOWN, AF_UNIX). */
  source?: HostPort;
  /** The address the client connected to, likewise. */
  destination?: HostPort;
  /** How many bytes the header took: the connection's own bytes start after them. */
  byteLength: number;
}

/** spec §2.1: "a 107-byte buffer is enough to store all the line" (CRLF included). */
export const V1_MAX_BYTES = 107;
const V1_SIGNATURE = new TextEncoder().encode("PROXY ");
/** spec §2.2: the 12-byte v2 signature, which cannot start any HTTP or TLS stream. */
export const V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
const V2_FIXED = 16;
const V2_LOCAL = 0x20;
const V2_PROXY = 0x21;

/**
 * Parses the header at the start of `bytes`. Returns null while more bytes are needed; throws
 * SyntaxError (naming the byte offset) once the bytes cannot be a valid header, including when
 * they start with something else: a server that requires the header has no other way to read
 * them.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeader | null {
  if (bytes.length === 0) return null;
  if (bytes[0] === V1_SIGNATURE[0]) {
    checkPrefix(bytes, V1_SIGNATURE, "PROXY v1");
    return bytes.length < V1_SIGNATURE.length ? null : parseV1(bytes);
  }
  if (bytes[0] === V2_SIGNATURE[0]) {
    checkPrefix(bytes, V2_SIGNATURE, "PROXY v2");
    return bytes.length < V2_FIXED ? null : parseV2(bytes);
  }
  throw new SyntaxError(
    `Cannot read PROXY protocol header: byte 0 is 0x${hex(bytes[0])}, ` +
      `not the start of a v1 ("PROXY ") or v2 signature`,
  );
}

/** Throws at the first byte that differs from `signature` (as far as `bytes` go). */
function checkPrefix(bytes: Uint8Array, signature: Uint8Array, what: string): void {
  const n = Math.min(bytes.length, signature.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== signature[i]) {
      throw new SyntaxError(
        `Cannot read ${what} header: byte ${i} is 0x${hex(bytes[i])}, ` +
          `expected 0x${hex(signature[i])} of the signature`,
      );
    }
  }
}

function parseV1(bytes: Uint8Array): ProxyHeader | null {
  const limit = Math.min(bytes.length, V1_MAX_BYTES);
  let lf = -1;
  for (let i = V1_SIGNATURE.length; i < limit; i++) {
    if (bytes[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf < 0) {
    if (bytes.length < V1_MAX_BYTES) return null;
    throw new SyntaxError(
      `Cannot read PROXY v1 header: no line end within ${V1_MAX_BYTES} bytes (byte ${
        V1_MAX_BYTES - 1
      })`,
    );
  }
  if (bytes[lf - 1] !== 0x0d) {
    throw new SyntaxError(
      `Cannot read PROXY v1 header: line feed at byte ${lf} without CR before it`,
    );
  }
  const byteLength = lf + 1;
  const line = new TextDecoder().decode(bytes.subarray(0, lf - 1));
  // Offsets of the fields, for messages: the line is ASCII, so characters are bytes.
  const fields: { text: string; at: number }[] = [];
  let at = 0;
  for (const text of line.split(" ")) {
    fields.push({ text, at });
    at += text.length + 1;
  }
  const family = fields[1];
  if (family.text === "UNKNOWN") {
    // spec §2.1: "the receiver must ignore anything presented before the CRLF is found".
    return { version: 1, command: "local", byteLength };
  }
  if (family.text !== "TCP4" && family.text !== "TCP6") {
    throw new SyntaxError(
      `Cannot read PROXY v1 header: protocol "${
        family.text.slice(0, 16)
      }" at byte ${family.at} is not TCP4, TCP6 or UNKNOWN`,
    );
  }
  if (fields.length !== 6) {
    throw new SyntaxError(
      `Cannot read PROXY v1 header: ${fields.length} fields, expected 6 ` +
        `("PROXY ${family.text} src dst sport dport"; line ends at byte ${lf - 1})`,
    );
  }
  const ip = (f: { text: string; at: number }, what: string): string => {
    const v4 = family.text === "TCP4";
    try {
      return v4 ? ipv4ToString(ipv4ToBytes(f.text)) : ipv6ToString(v6Only(f.text));
    } catch (err) {
      throw new SyntaxError(
        `Cannot read PROXY v1 header: ${what} "${f.text.slice(0, 48)}" at byte ${f.at} ` +
          `is not an ${v4 ? "IPv4" : "IPv6"} address`,
        { cause: err },
      );
    }
  };
  const port = (f: { text: string; at: number }, what: string): number => {
    const n = /^\d{1,5}$/.test(f.text) ? Number(f.text) : NaN;
    if (!(n <= 65535)) {
      throw new SyntaxError(
        `Cannot read PROXY v1 header: ${what} "${f.text.slice(0, 16)}" at byte ${f.at} ` +
          `is not a port (0-65535)`,
      );
    }
    return n;
  };
  return {
    version: 1,
    command: "proxy",
    source: { host: ip(fields[2], "source address"), port: port(fields[4], "source port") },
    destination: {
      host: ip(fields[3], "destination address"),
      port: port(fields[5], "destination port"),
    },
    byteLength,
  };
}

/** An IPv6 literal that is not an IPv4 one in disguise (go-proxyproto refuses those for TCP6). */
function v6Only(text: string): Uint8Array {
  if (!text.includes(":")) throw new SyntaxError(`"${text}" is not IPv6`);
  const b = ipv6ToBytes(text);
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) throw new SyntaxError(`"${text}" is an IPv4-mapped address`);
  return b;
}

function parseV2(bytes: Uint8Array): ProxyHeader | null {
  const command = bytes[12];
  if (command !== V2_LOCAL && command !== V2_PROXY) {
    throw new SyntaxError(
      `Cannot read PROXY v2 header: version/command byte 12 is 0x${hex(command)}, ` +
        `expected 0x20 (LOCAL) or 0x21 (PROXY)`,
    );
  }
  const family = bytes[13];
  const length = (bytes[14] << 8) | bytes[15];
  const byteLength = V2_FIXED + length;
  // spec §2.2: "the receiver must only receive the exact number of bytes indicated in len".
  const need = addressBytes(family);
  if (need === undefined) {
    throw new SyntaxError(
      `Cannot read PROXY v2 header: address family/protocol byte 13 is 0x${hex(family)}`,
    );
  }
  if (family === 0 && command === V2_PROXY) {
    throw new SyntaxError(
      "Cannot read PROXY v2 header: byte 13 is 0x00 (UNSPEC), which a PROXY command cannot carry",
    );
  }
  if (length < need) {
    throw new SyntaxError(
      `Cannot read PROXY v2 header: length ${length} at byte 14 is shorter than the ${need} ` +
        `address bytes of family 0x${hex(family)}`,
    );
  }
  if (bytes.length < byteLength) return null;
  if (command === V2_LOCAL) return { version: 2, command: "local", byteLength };
  const block = bytes.subarray(V2_FIXED, byteLength);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  switch (family >> 4) {
    case 1:
      return {
        version: 2,
        command: "proxy",
        source: { host: ipv4ToString(block.subarray(0, 4)), port: view.getUint16(8) },
        destination: { host: ipv4ToString(block.subarray(4, 8)), port: view.getUint16(10) },
        byteLength,
      };
    case 2:
      return {
        version: 2,
        command: "proxy",
        source: { host: ipv6ToString(block.subarray(0, 16)), port: view.getUint16(32) },
        destination: { host: ipv6ToString(block.subarray(16, 32)), port: view.getUint16(34) },
        byteLength,
      };
    default:
      // AF_UNIX: a path, not an address a routing rule or the access log can use.
      return { version: 2, command: "proxy", byteLength };
  }
}

/** The address block a v2 family/protocol byte needs; undefined for an unknown one. */
function addressBytes(family: number): number | undefined {
  const transport = family & 0x0f;
  if (family === 0) return 0;
  if (transport !== 1 && transport !== 2) return undefined;
  switch (family >> 4) {
    case 1:
      return 12;
    case 2:
      return 36;
    case 3:
      return 216;
    default:
      return undefined;
  }
}

export interface ProxyHeaderInit {
  version: 1 | 2;
  /** Absent: v1 UNKNOWN, v2 LOCAL. */
  source?: HostPort;
  destination?: HostPort;
}

/** Encodes a header (a TCP one when addresses are given): for tests and for dialing such servers. */
export function encodeProxyHeader(init: ProxyHeaderInit): Uint8Array {
  const { source, destination } = init;
  if ((source === undefined) !== (destination === undefined)) {
    throw new TypeError("A PROXY header needs both source and destination, or neither");
  }
  const v6 = source !== undefined && source.host.includes(":");
  if (destination !== undefined && destination.host.includes(":") !== v6) {
    throw new TypeError("A PROXY header's source and destination must be of one IP version");
  }
  if (init.version === 1) {
    if (!source || !destination) return new TextEncoder().encode("PROXY UNKNOWN\r\n");
    return new TextEncoder().encode(
      `PROXY ${v6 ? "TCP6" : "TCP4"} ${source.host} ${destination.host} ` +
        `${source.port} ${destination.port}\r\n`,
    );
  }
  if (!source || !destination) {
    const out = new Uint8Array(V2_FIXED);
    out.set(V2_SIGNATURE);
    out[12] = V2_LOCAL;
    return out;
  }
  const ip = v6 ? ipv6ToBytes : ipv4ToBytes;
  const size = v6 ? 36 : 12;
  const out = new Uint8Array(V2_FIXED + size);
  const view = new DataView(out.buffer);
  out.set(V2_SIGNATURE);
  out[12] = V2_PROXY;
  out[13] = v6 ? 0x21 : 0x11;
  view.setUint16(14, size);
  const half = (size - 4) / 2;
  out.set(ip(source.host), V2_FIXED);
  out.set(ip(destination.host), V2_FIXED + half);
  view.setUint16(V2_FIXED + size - 4, source.port);
  view.setUint16(V2_FIXED + size - 2, destination.port);
  return out;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, "0");
}
