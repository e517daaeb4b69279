/**
 * Finds the Host of a plain HTTP/1 request in its first bytes, as v2ray 4.34's sniffer does
 * (common/protocol/http/sniff.go): the request must start with a known method (any case); the
 * head is split on "\n" and scanned up to the first truly empty line (a bare "\r" is not empty);
 * the last `Host` header wins; its value is trimmed, lowercased, and its port dropped.
 */
import type { SniffOutcome } from "./sniffer.ts";

const METHODS = ["get", "post", "head", "put", "delete", "options", "connect"];
const LATIN1 = new TextDecoder("latin1");

export function sniffHttp(bytes: Uint8Array): SniffOutcome {
  const start = LATIN1.decode(bytes.subarray(0, 7)).toLowerCase();
  let method = false;
  for (const m of METHODS) {
    // 4.34 checks the methods in order and gives up waiting at the first one that fits.
    if (start.length < m.length) return "wait";
    if (start.startsWith(m)) {
      method = true;
      break;
    }
  }
  if (!method) return "no";
  const lines = LATIN1.decode(bytes).split("\n");
  let host = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.length === 0) break;
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    if (line.slice(0, colon).toLowerCase() !== "host") continue;
    const parsed = hostWithoutPort(line.slice(colon + 1).trim().toLowerCase());
    if (parsed === null) return "no";
    host = parsed;
  }
  return host === "" ? "wait" : { protocol: "http1", domain: host };
}

/** Go's net.SplitHostPort as ParseHost uses it: "h:80" → h, "[::1]:80" → ::1, "h" → h. */
function hostWithoutPort(raw: string): string | null {
  if (raw.startsWith("[")) {
    const end = raw.indexOf("]");
    if (end < 0) return null;
    const rest = raw.slice(end + 1);
    if (rest !== "" && !/^:\d*$/.test(rest)) return null;
    if (rest.length > 1 && Number(rest.slice(1)) > 65535) return null;
    return raw.slice(1, end);
  }
  const colon = raw.indexOf(":");
  if (colon < 0) return raw;
  if (raw.indexOf(":", colon + 1) >= 0) return null; // too many colons
  const port = raw.slice(colon + 1);
  if (port !== "" && (!/^\d+$/.test(port) || Number(port) > 65535)) return null;
  return raw.slice(0, colon);
}
