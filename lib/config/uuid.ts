/**
 * VLESS user ids.
 *
 * Accepted forms, as Xray accepts them:
 * - the canonical 36-character form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any letter case);
 * - the same 32 hex digits without dashes;
 * - any other string of 1–30 UTF-8 bytes (except one shaped like a broken UUID, refused as a
 *   likely typo), mapped to a name-based UUIDv5 (RFC 4122 §4.3) whose
 *   namespace is the all-zero UUID, so `"example"` → `feb54431-301b-52bb-a6dd-e1e93e81bb9e`.
 *
 * v2ray 4.34 itself only knows the first two forms; the mapping lets a server and client share a
 * memorable password instead of a UUID.
 */
import { createHash } from "node:crypto";

export interface UserId {
  /** Canonical lowercase 36-character form. */
  id: string;
  /** The 16 bytes sent on the wire. */
  bytes: Uint8Array;
}

const CANONICAL = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const COMPACT = /^[0-9a-fA-F]{32}$/;
const UUID_LIKE = /^[0-9a-fA-F]{8}-[0-9a-fA-F-]*$/;
const encoder = new TextEncoder();

/** The longest string Xray maps to a UUIDv5; longer ones must be real UUIDs. */
export const MAX_MAPPED_ID_BYTES = 30;

/** What a valid id looks like, for error messages. */
export const USER_ID_RULE =
  "must be a UUID (8-4-4-4-12 or 32 hex digits) or a string of 1-30 bytes";

/**
 * Parses a user id in any accepted form. Throws RangeError (message: {@link USER_ID_RULE} plus
 * what was given) when it is none of them.
 */
export function parseUserId(text: string): UserId {
  if (CANONICAL.test(text) || COMPACT.test(text)) {
    const bytes = hexToBytes(text.replaceAll("-", ""));
    return { id: formatUuid(bytes), bytes };
  }
  // Xray would map "b831381d-6324-4d53" to a UUIDv5 like any short string; a truncated or
  // mistyped UUID is far likelier than a password of that shape, so say what it looks like.
  if (UUID_LIKE.test(text)) {
    throw new RangeError(
      `looks like a UUID but is not one (8-4-4-4-12 hex digits), got ${JSON.stringify(text)}`,
    );
  }
  const nameBytes = encoder.encode(text).length;
  if (nameBytes >= 1 && nameBytes <= MAX_MAPPED_ID_BYTES) {
    const bytes = uuidV5FromName(text);
    return { id: formatUuid(bytes), bytes };
  }
  throw new RangeError(`${USER_ID_RULE}, got ${JSON.stringify(text)}`);
}

/** The name-based UUIDv5 of `name` in the all-zero namespace (RFC 4122 §4.3). */
export function uuidV5FromName(name: string): Uint8Array {
  const hash = createHash("sha1");
  // The namespace UUID comes first in the hashed input; Xray uses 16 zero bytes.
  hash.update(new Uint8Array(16));
  hash.update(encoder.encode(name));
  const digest = new Uint8Array(hash.digest());
  const bytes = digest.slice(0, 16);
  // RFC 4122 §4.1.3: version 5 in the high nibble of octet 6.
  bytes[6] = (bytes[6] & 0x0f) | 0x50;
  // RFC 4122 §4.1.1: variant 10xx in octet 8.
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return bytes;
}

/** Formats 16 bytes as the canonical lowercase 8-4-4-4-12 string. */
export function formatUuid(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`A UUID has 16 bytes, got ${bytes.length}`);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
