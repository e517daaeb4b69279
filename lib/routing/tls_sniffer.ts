/**
 * Finds the server name (SNI) in a TLS ClientHello, as v2ray 4.34's sniffer does
 * (common/protocol/tls/sniff.go). Its quirks are kept, since routing decisions depend on them:
 * the whole first record must be buffered; the handshake type is not checked; the extensions must
 * end exactly at the end of that first record (a hello split over two records is not sniffed);
 * the first host_name entry wins, as sent (no lowercasing); a name ending in "." rejects the hello
 * (RFC 6066 §3: "The hostname is represented ... without a trailing dot"); no SNI means not TLS.
 */
import type { SniffOutcome } from "./sniffer.ts";

const LATIN1 = new TextDecoder("latin1");

export function sniffTls(b: Uint8Array): SniffOutcome {
  if (b.length < 5) return "wait";
  // RFC 8446 §5.1: ContentType handshake(22); legacy_record_version major 3.
  if (b[0] !== 0x16 || b[1] !== 3) return "no";
  const recordLength = (b[3] << 8) | b[4];
  if (5 + recordLength > b.length) return "wait";
  return serverName(b.subarray(5, 5 + recordLength));
}

function serverName(d: Uint8Array): SniffOutcome {
  // 4 bytes handshake header, 2 legacy_version, 32 random, then the session id length at 38.
  if (d.length < 42) return "wait";
  const sessionIdLength = d[38];
  if (sessionIdLength > 32 || d.length < 39 + sessionIdLength) return "wait";
  let p = 39 + sessionIdLength;
  if (d.length - p < 2) return "wait";
  const suitesLength = (d[p] << 8) | d[p + 1];
  if (suitesLength % 2 === 1 || d.length - p < 2 + suitesLength) return "no";
  p += 2 + suitesLength;
  if (d.length - p < 1) return "wait";
  const compressionLength = d[p];
  if (d.length - p < 1 + compressionLength) return "wait";
  p += 1 + compressionLength;
  if (d.length - p < 2) return "no";
  const extensionsLength = (d[p] << 8) | d[p + 1];
  p += 2;
  if (extensionsLength !== d.length - p) return "no";
  while (p < d.length) {
    if (d.length - p < 4) return "no";
    const type = (d[p] << 8) | d[p + 1];
    const length = (d[p + 2] << 8) | d[p + 3];
    p += 4;
    if (d.length - p < length) return "no";
    if (type === 0x0000) return fromServerNameExtension(d.subarray(p, p + length));
    p += length;
  }
  return "no";
}

/** RFC 6066 §3: ServerNameList, a list of (NameType, HostName) entries. */
function fromServerNameExtension(e: Uint8Array): SniffOutcome {
  if (e.length < 2) return "no";
  const listLength = (e[0] << 8) | e[1];
  if (listLength !== e.length - 2) return "no";
  for (let p = 2; p < e.length;) {
    if (e.length - p < 3) return "no";
    const nameType = e[p];
    const nameLength = (e[p + 1] << 8) | e[p + 2];
    p += 3;
    if (e.length - p < nameLength) return "no";
    if (nameType === 0) {
      const name = LATIN1.decode(e.subarray(p, p + nameLength));
      if (name.endsWith(".")) return "no";
      return { protocol: "tls", domain: name };
    }
    p += nameLength;
  }
  // 4.34 walks on past a list without a host_name and ends with "not TLS".
  return "no";
}
