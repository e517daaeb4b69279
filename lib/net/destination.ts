/** Where a proxied connection goes. `host` is an IPv4/IPv6 literal (IPv6 without brackets) or a domain. */
export interface Destination {
  network: "tcp" | "udp";
  host: string;
  port: number;
}

/** A host and port: a client's address, a listener's. `host` as in {@link Destination}. */
export interface HostPort {
  host: string;
  port: number;
}

export type AddressKind = "ipv4" | "ipv6" | "domain";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Classifies a host string the way address fields on the wire need it. */
export function addressKind(host: string): AddressKind {
  if (IPV4.test(host)) return "ipv4";
  if (host.includes(":")) return "ipv6";
  return "domain";
}

/** `host:port`, with IPv6 hosts in brackets, for logs and Host headers. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`, so a dual-stack socket's view of a v4 peer compares equal. */
export function unmapIpv4(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1] : host;
}

/** A destination for logs: `tcp:example.com:443`. */
export function formatDestination(d: Destination): string {
  return `${d.network}:${formatHostPort(d.host, d.port)}`;
}

/** Parses the 4 bytes of an IPv4 address into dotted form. */
export function ipv4ToString(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** Parses dotted IPv4 into 4 bytes; throws SyntaxError when it is not one. */
export function ipv4ToBytes(host: string): Uint8Array {
  if (!IPV4.test(host)) throw new SyntaxError(`Cannot parse IPv4 address "${host}"`);
  return Uint8Array.from(host.split(".").map(Number));
}

/** Formats 16 bytes as a compressed IPv6 string (RFC 5952: longest zero run as "::"). */
export function ipv6ToString(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLen).join(":");
  return `${head}::${tail}`;
}

/** Parses an IPv6 literal (no brackets, optional embedded IPv4 tail) into 16 bytes. */
export function ipv6ToBytes(host: string): Uint8Array {
  const fail = () => new SyntaxError(`Cannot parse IPv6 address "${host}"`);
  let s = host;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    // Embedded IPv4 tail (::ffff:1.2.3.4): rewrite it as two hex groups.
    const v4 = ipv4ToBytes(s.slice(lastColon + 1));
    const hi = ((v4[0] << 8) | v4[1]).toString(16);
    const lo = ((v4[2] << 8) | v4[3]).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const parseGroups = (part: string): number[] => {
    if (part === "") return [];
    return part.split(":").map((g) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw fail();
      return parseInt(g, 16);
    });
  };
  const halves = s.split("::");
  if (halves.length > 2) throw fail();
  const want = 8;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0]);
    const rest = parseGroups(halves[1]);
    if (head.length + rest.length >= want) throw fail();
    groups = [...head, ...new Array(want - head.length - rest.length).fill(0), ...rest];
  } else {
    groups = parseGroups(halves[0]);
    if (groups.length !== want) throw fail();
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/**
 * The client address an `X-Forwarded-For` header value names (its first entry, when it is an IP),
 * else `remote`. A CDN or reverse proxy in front of a ws or http server says who its client was
 * this way; as in v2ray 4.34 it becomes the connection's source for the access log and for routing
 * `source` rules, so such rules trust whatever sits in front of the server.
 */
export function forwardedSource(xff: string | undefined, remote: HostPort): HostPort {
  const forwarded = xff?.split(",")[0].trim();
  if (forwarded && addressKind(forwarded) !== "domain") return { host: forwarded, port: 0 };
  return remote;
}
