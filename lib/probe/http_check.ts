/**
 * One HTTP/1.1 GET over a channel, read up to the end of the response head: the status is all the
 * probe needs (a 204 has no body; other bodies are not waited for).
 */
import type { ByteChannel } from "./byte_channel.ts";

/** A response head longer than this is not an HTTP server we should keep reading from. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/** The GET request for `url`, closing after the response (one request per proxied connection). */
export function encodeGetRequest(url: URL, userAgent: string): Uint8Array {
  const target = (url.pathname || "/") + url.search;
  // RFC 9110 §7.2: Host is the authority without userinfo; the port only when not the default.
  const host = url.host;
  return new TextEncoder().encode(
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${userAgent}\r\nAccept: */*\r\n` +
      "Connection: close\r\n\r\n",
  );
}

/**
 * Reads a response head and returns its status code. Throws SyntaxError for something that is
 * not an HTTP/1.x response, Error when the peer closes before the head ends.
 */
export async function readResponseStatus(channel: ByteChannel): Promise<number> {
  let head = new Uint8Array(0);
  // Each round appends one chunk; the head limit bounds the rounds.
  for (;;) {
    const chunk = await channel.read();
    if (chunk === null) {
      if (head.byteLength === 0) {
        throw new Error("the target closed the connection without an HTTP response");
      }
      throw new Error(`the HTTP response head ended early (after ${head.byteLength} bytes)`);
    }
    const joined = new Uint8Array(head.byteLength + chunk.byteLength);
    joined.set(head);
    joined.set(chunk, head.byteLength);
    head = joined;
    const end = indexOfBlankLine(head);
    if (end >= 0) return parseStatusLine(head.subarray(0, end));
    if (head.byteLength > MAX_RESPONSE_HEAD) {
      throw new SyntaxError(`HTTP response head over ${MAX_RESPONSE_HEAD} bytes`);
    }
  }
}

/** The offset of "\r\n\r\n", or -1. */
function indexOfBlankLine(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.byteLength; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function parseStatusLine(head: Uint8Array): number {
  const text = new TextDecoder("latin1").decode(head);
  const line = text.slice(0, text.indexOf("\r\n") >>> 0);
  // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(line);
  if (!m) {
    throw new SyntaxError(`not an HTTP/1.x response: ${JSON.stringify(line.slice(0, 40))}`);
  }
  return Number(m[1]);
}
