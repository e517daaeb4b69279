/**
 * The checks RFC 9113 §8.2 puts on every regular header field, received by either role: names,
 * values, connection-specific fields, and content-length. Each caller wraps a problem in its own
 * "malformed request" or "malformed response" stream error.
 */

/** RFC 9113 §8.2.2: connection-specific fields an HTTP/2 message must not carry. */
export const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);

/** What is wrong with a received regular field (not a pseudo-header), or undefined if nothing. */
export function fieldProblem(name: string, value: string): string | undefined {
  if (name.length === 0) return "empty header name";
  // RFC 9113 §8.2.1: "A field name MUST NOT contain characters in the ranges 0x00-0x20,
  // 0x41-0x5a, or 0x7f-0xff (all ranges inclusive)" — no controls, spaces or uppercase — and a
  // regular field's name has no ':'.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || c === 0x3a) {
      return c >= 0x41 && c <= 0x5a
        ? `uppercase header name "${name}"`
        : `invalid header name "${name}"`;
    }
  }
  // "A field value MUST NOT contain the zero value (ASCII NUL, 0x00), line feed (ASCII LF, 0x0a),
  // or carriage return (ASCII CR, 0x0d) at any position" nor start or end with whitespace.
  if (/[\0\r\n]|^[ \t]|[ \t]$/.test(value)) return `invalid value of header "${name}"`;
  // RFC 9113 §8.2.2: "Any message containing connection-specific header fields MUST be treated as
  // malformed"; TE is allowed only as "trailers".
  if (CONNECTION_SPECIFIC.has(name) || (name === "te" && value !== "trailers")) {
    return `connection-specific header "${name}"`;
  }
  return undefined;
}

/**
 * The content-length of a message's regular fields, -1 if it has none. Repeats must agree; a value
 * that is not a decimal number, or a disagreeing repeat, is reported through `malformed`.
 */
export function contentLength(
  fields: Array<[string, string]>,
  malformed: (what: string) => Error,
): number {
  let length = -1;
  for (const [name, value] of fields) {
    if (name !== "content-length") continue;
    const n = /^[0-9]{1,15}$/.test(value) ? Number(value) : NaN;
    if (Number.isNaN(n) || (length >= 0 && n !== length)) {
      throw malformed(`invalid content-length "${value}"`);
    }
    length = n;
  }
  return length;
}
