/**
 * Readers for v2ray's geoip.dat and geosite.dat (app/router/config.proto: GeoIPList, GeoSiteList).
 *
 * Only the codes asked for are decoded: the top-level entries are walked by their length
 * prefixes and an entry whose code is not wanted is skipped without looking inside (v2ray 4.34
 * unmarshals the whole file once per reference). Codes compare case-insensitively, as 4.34's
 * `strings.EqualFold`. Proto3 omits default values, so a missing `prefix` is 0 and a missing
 * domain `type` is Plain.
 */
import { type DomainPattern, GEOSITE_TYPES } from "./domain_matcher.ts";
import { type Cidr, cidrOf, ipFromBytes } from "./ip_address.ts";
import { ProtoReader, WIRE_LEN, WIRE_VARINT } from "./proto_reader.ts";

/** A geosite domain with the keys of its attributes (`@ads`, `@cn`), lowercased. */
export interface GeoSiteDomain extends DomainPattern {
  attrs: string[];
}

/**
 * The CIDRs of each wanted code (keys lowercased). Codes absent from the file are absent from
 * the map. Throws SyntaxError naming `file` and the byte offset for malformed data.
 */
export function readGeoIp(
  bytes: Uint8Array,
  options: { file: string; codes: Iterable<string> },
): Map<string, Cidr[]> {
  return readLists(bytes, options, readCidr);
}

/** The domains of each wanted list (keys lowercased); see readGeoIp. */
export function readGeoSite(
  bytes: Uint8Array,
  options: { file: string; codes: Iterable<string> },
): Map<string, GeoSiteDomain[]> {
  return readLists(bytes, options, readDomain);
}

/** GeoIP and GeoSite share a layout: each entry's field 2 repeats one item (CIDR or Domain). */
function readLists<T>(
  bytes: Uint8Array,
  options: { file: string; codes: Iterable<string> },
  readItem: (item: ProtoReader) => T,
): Map<string, T[]> {
  const found = new Map<string, T[]>();
  forEachWanted(bytes, options.file, options.codes, (code, entry) => {
    const items = found.get(code) ?? [];
    found.set(code, items);
    while (!entry.done) {
      const [field, wire] = entry.key();
      if (field === 2 && wire === WIRE_LEN) items.push(readItem(entry.message()));
      else entry.skip(wire);
    }
  });
  return found;
}

/** Every code in a .dat file (GeoIPList or GeoSiteList alike), for error messages and tools. */
export function listCodes(bytes: Uint8Array, file: string): string[] {
  const codes: string[] = [];
  forEachEntry(bytes, file, (code) => codes.push(code));
  return codes;
}

function forEachWanted(
  bytes: Uint8Array,
  file: string,
  codes: Iterable<string>,
  decode: (code: string, rest: ProtoReader) => void,
): void {
  const wanted = new Set([...codes].map((c) => c.toLowerCase()));
  forEachEntry(bytes, file, (code, entry) => {
    const key = code.toLowerCase();
    if (wanted.has(key)) decode(key, entry);
  });
}

/** Calls `visit` with each top-level entry's code and a reader over the whole entry. */
function forEachEntry(
  bytes: Uint8Array,
  file: string,
  visit: (code: string, entry: ProtoReader) => void,
): void {
  const list = new ProtoReader(bytes, file);
  while (!list.done) {
    const [field, wire] = list.key();
    if (field !== 1 || wire !== WIRE_LEN) {
      list.skip(wire);
      continue;
    }
    const entry = list.message();
    visit(entryCode(entry.rewound()), entry);
  }
}

/**
 * country_code (field 1) of an entry, skipping fields before it without decoding them. Writers
 * put it first, so unwanted lists cost one key read each.
 */
function entryCode(entry: ProtoReader): string {
  while (!entry.done) {
    const [field, wire] = entry.key();
    if (field === 1 && wire === WIRE_LEN) return entry.string();
    entry.skip(wire);
  }
  return "";
}

function readCidr(m: ProtoReader): Cidr {
  const at = m.offset;
  let ip: Uint8Array | undefined;
  let prefix = 0;
  while (!m.done) {
    const [field, wire] = m.key();
    if (field === 1 && wire === WIRE_LEN) ip = m.bytes();
    else if (field === 2 && wire === WIRE_VARINT) prefix = m.varint();
    else m.skip(wire);
  }
  const addr = ip && ipFromBytes(ip);
  if (!ip || (ip.length !== 4 && ip.length !== 16) || !addr) {
    throw m.fail(`CIDR with an IP of ${ip?.length ?? 0} bytes (must be 4 or 16)`, at);
  }
  const max = ip.length === 4 ? 32 : 128;
  if (prefix > max) throw m.fail(`CIDR prefix ${prefix} exceeds ${max}`, at);
  // A v4-mapped IPv6 entry became IPv4: its prefix counts over the IPv6 form.
  const bits = addr.family === 4 && ip.length === 16 ? Math.max(0, prefix - 96) : prefix;
  return cidrOf(addr, bits);
}

function readDomain(m: ProtoReader): GeoSiteDomain {
  const at = m.offset;
  let type = 0;
  let value = "";
  const attrs: string[] = [];
  while (!m.done) {
    const [field, wire] = m.key();
    if (field === 1 && wire === WIRE_VARINT) type = m.varint();
    else if (field === 2 && wire === WIRE_LEN) value = m.string();
    else if (field === 3 && wire === WIRE_LEN) attrs.push(attributeKey(m.message()));
    else m.skip(wire);
  }
  const t = GEOSITE_TYPES[type];
  if (t === undefined) throw m.fail(`unknown domain type ${type}`, at);
  return { type: t, value, attrs };
}

function attributeKey(m: ProtoReader): string {
  let key = "";
  while (!m.done) {
    const [field, wire] = m.key();
    if (field === 1 && wire === WIRE_LEN) key = m.string();
    else m.skip(wire);
  }
  return key.toLowerCase();
}
