import type { ByteReader } from "../net/byte_reader.ts";
import { findHeadEnd, HttpError } from "./message.ts";

/** The largest request or response head we accept (431 beyond it). */
export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Reads one head off `reader`, scanning each new chunk once. `null` on EOF before any byte;
 * throws HttpError 431 past MAX_HEAD_BYTES, 400 (or `eofStatus`) on EOF mid-head.
 */
export async function readHead(reader: ByteReader, eofStatus = 400): Promise<Uint8Array | null> {
  let buf = new Uint8Array(0);
  for (let i = 0; i <= MAX_HEAD_BYTES; i++) {
    const chunk = await reader.read();
    if (chunk === null) {
      if (buf.byteLength === 0) return null;
      throw new HttpError(eofStatus, `Connection closed after ${buf.byteLength} bytes of a head`);
    }
    const from = Math.max(0, buf.byteLength - 2);
    const joined = new Uint8Array(buf.byteLength + chunk.byteLength);
    joined.set(buf);
    joined.set(chunk, buf.byteLength);
    buf = joined;
    const end = findHeadEnd(buf, from);
    if (end >= 0) {
      if (end > MAX_HEAD_BYTES) break;
      reader.unshift(buf.subarray(end));
      return buf.subarray(0, end);
    }
    if (buf.byteLength > MAX_HEAD_BYTES) break;
  }
  throw new HttpError(431, `Head longer than ${MAX_HEAD_BYTES} bytes`);
}
