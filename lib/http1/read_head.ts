import type { ByteReader } from "../net/byte_reader.ts";
import { findHeadEnd, HttpError } from "./message.ts";

/** The largest request or response head we accept (431 beyond it). */
export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Reads one head off `reader`, scanning each new chunk once. `null` on EOF before any byte;
 * throws HttpError 431 past MAX_HEAD_BYTES, 400 (or `eofStatus`) on EOF mid-head.
 */
export async function readHead(reader: ByteReader, eofStatus = 400): Promise<Uint8Array | null> {
  // The buffer grows geometrically so each byte is copied O(1) times: a head trickled in one
  // byte per chunk would otherwise cost a copy of everything so far per byte (quadratic CPU).
  let buf = new Uint8Array(0);
  let length = 0;
  for (let i = 0; i <= MAX_HEAD_BYTES; i++) {
    const chunk = await reader.read();
    if (chunk === null) {
      if (length === 0) return null;
      throw new HttpError(eofStatus, `Connection closed after ${length} bytes of a head`);
    }
    const from = Math.max(0, length - 2);
    if (length + chunk.byteLength > buf.byteLength) {
      const grown = new Uint8Array(Math.max(length + chunk.byteLength, buf.byteLength * 2, 1024));
      grown.set(buf.subarray(0, length));
      buf = grown;
    }
    buf.set(chunk, length);
    length += chunk.byteLength;
    const end = findHeadEnd(buf.subarray(0, length), from);
    if (end >= 0) {
      if (end > MAX_HEAD_BYTES) break;
      reader.unshift(buf.subarray(end, length));
      return buf.subarray(0, end);
    }
    if (length > MAX_HEAD_BYTES) break;
  }
  throw new HttpError(431, `Head longer than ${MAX_HEAD_BYTES} bytes`);
}
