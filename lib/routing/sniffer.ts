/**
 * What the first bytes of a TCP connection say about its protocol and server name, with v2ray
 * 4.34's sniffers in its order: HTTP/1 Host, TLS SNI, then BitTorrent's handshake
 * (app/dispatcher/sniffer.go). The caller reads at most SNIFF_LIMIT bytes in at most
 * SNIFF_ATTEMPTS reads of up to SNIFF_WAIT_MS each, as 4.34 does, and calls `sniff()` on what it
 * has after each read.
 */
import { sniffHttp } from "./http_sniffer.ts";
import { sniffTls } from "./tls_sniffer.ts";

/** A sniffed protocol ("http1", "tls", "bittorrent") and the server name it carried ("" none). */
export interface Sniffed {
  protocol: string;
  domain: string;
}

/** Found, "wait" for more bytes, or "no" (this is not that protocol). */
export type SniffOutcome = Sniffed | "wait" | "no";

/** 4.34 sniffs into one buf.Buffer: 2048 bytes (common/buf Size). */
export const SNIFF_LIMIT = 2048;
/** 4.34's cachedReader.Cache waits up to 100 ms per read, and the sniffer tries twice. */
export const SNIFF_WAIT_MS = 100;
export const SNIFF_ATTEMPTS = 2;

const BITTORRENT = "\x13BitTorrent protocol";

export function sniffBittorrent(b: Uint8Array): SniffOutcome {
  if (b.length < 20) return "wait";
  for (let i = 0; i < 20; i++) if (b[i] !== BITTORRENT.charCodeAt(i)) return "no";
  return { protocol: "bittorrent", domain: "" };
}

const SNIFFERS = [sniffHttp, sniffTls, sniffBittorrent];

/** The first sniffer that recognises `bytes`; "wait" while any could still; else "no". */
export function sniff(bytes: Uint8Array): SniffOutcome {
  const b = bytes.length > SNIFF_LIMIT ? bytes.subarray(0, SNIFF_LIMIT) : bytes;
  let waiting = false;
  for (const s of SNIFFERS) {
    const outcome = s(b);
    if (outcome === "wait") waiting = true;
    else if (outcome !== "no") return outcome;
  }
  return waiting && bytes.length < SNIFF_LIMIT ? "wait" : "no";
}

/** 4.34's shouldOverride: a destOverride entry ("http", "tls") that prefixes the protocol. */
export function shouldOverride(sniffed: Sniffed, destOverride: readonly string[]): boolean {
  return sniffed.domain !== "" && destOverride.some((p) => sniffed.protocol.startsWith(p));
}

/**
 * The destination and protocol routing sees after sniffing, as 4.34's dispatcher sets them:
 * the protocol always when something was sniffed; the host replaced by the sniffed name (the
 * port kept) only for a protocol `destOverride` lists.
 */
export function applySniffed<D extends { host: string }>(
  destination: D,
  sniffed: Sniffed | undefined,
  destOverride: readonly string[],
): { destination: D; protocol?: string } {
  if (!sniffed) return { destination };
  if (!shouldOverride(sniffed, destOverride)) return { destination, protocol: sniffed.protocol };
  return { destination: { ...destination, host: sniffed.domain }, protocol: sniffed.protocol };
}
