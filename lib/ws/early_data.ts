/**
 * Early data ("0-RTT"): the first bytes of the uplink ride in the opening request, base64url
 * without padding, so the server can dial the destination before the handshake round trip ends.
 * Two dialects carry it: Xray's `?ed=N` path option (in Sec-WebSocket-Protocol) and v2fly's
 * `maxEarlyData` + `earlyDataHeaderName` (that header, or appended to the path when no header is
 * named). Both encode with Go's base64.RawURLEncoding; Xray's server also accepts the standard
 * alphabet and padding, and so do we.
 */

/** Base64url without padding (RFC 4648 §5), as Go's base64.RawURLEncoding. */
export function encodeEarlyData(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.byteLength; i += 0x8000) {
    bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Decodes early data; null when `text` is not base64 (a real subprotocol name, say), so a server
 * can tell early data from anything else in the header.
 */
export function decodeEarlyData(text: string): Uint8Array | null {
  const s = text.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "");
  if (s.length === 0 || s.length % 4 === 1 || !/^[A-Za-z0-9+/]*$/.test(s)) return null;
  const bin = atob(s + "=".repeat((4 - (s.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
