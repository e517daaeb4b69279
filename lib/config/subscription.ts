/**
 * Subscriptions: the link lists that panels and collectors serve, one share link per line, either
 * as plain text or base64 of that text (standard or URL-safe alphabet, padded or not, possibly
 * wrapped over several lines).
 *
 * `vless://` lines are used. Every other line is skipped and reported once with its line number
 * and why (another scheme, a bad link and its field, not a link at all); blank lines and `#`
 * comments are ignored. A subscription with no usable link is an error. Pure: bytes in, links out.
 */
import { parseVlessLink, type VlessLink } from "./share_link.ts";

/** The most a subscription may hold: collectors publish a few thousand links (~1 MiB). */
export const SUBSCRIPTION_MAX_BYTES = 5 * 1024 * 1024;

/** A line that was not used, and why. Line numbers count from 1 in the decoded text. */
export interface SkippedLine {
  line: number;
  reason: string;
}

/** One usable link and the line it came from. */
export interface SubscriptionLink {
  line: number;
  link: VlessLink;
}

export interface Subscription {
  /** How the body was written. */
  encoding: "base64" | "text";
  /** At least one. */
  links: SubscriptionLink[];
  skipped: SkippedLine[];
}

/** Everything a base64 body may contain once line breaks are removed. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** How many skipped lines an error lists. */
const MAX_LISTED = 10;

/**
 * Parses a subscription body. Throws RangeError when it is over {@link SUBSCRIPTION_MAX_BYTES},
 * SyntaxError when it is not text, not decodable, or holds no usable link.
 */
export function parseSubscription(body: Uint8Array): Subscription {
  if (body.byteLength > SUBSCRIPTION_MAX_BYTES) {
    throw new RangeError(
      `Cannot use subscription: ${body.byteLength} bytes is over the limit of ` +
        `${SUBSCRIPTION_MAX_BYTES} bytes`,
    );
  }
  let text = utf8(body, "it is not UTF-8 text");
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  // Line breaks may wrap base64 (at 76 columns, as MIME does); spaces inside a line mean text.
  const compact = text.split(/\r\n|\n|\r/).map((l) => l.trim()).join("");
  let encoding: Subscription["encoding"] = "text";
  // A link always has "://", so a body of base64 characters only cannot be plain text.
  if (compact !== "" && BASE64.test(compact)) {
    text = utf8(decodeBase64(compact), "its base64 does not decode to UTF-8 text");
    encoding = "base64";
  }

  const links: SubscriptionLink[] = [];
  const skipped: SkippedLine[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const scheme = SCHEME.exec(line)?.[1];
    if (scheme === undefined) {
      skipped.push({ line: i + 1, reason: `not a share link: ${preview(line)}` });
      continue;
    }
    if (scheme.toLowerCase() !== "vless") {
      skipped.push({
        line: i + 1,
        reason: `unsupported scheme "${scheme.toLowerCase()}://" (dray speaks VLESS only)`,
      });
      continue;
    }
    try {
      links.push({ line: i + 1, link: parseVlessLink(line) });
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      skipped.push({ line: i + 1, reason: err.message });
    }
  }
  if (links.length === 0) {
    if (skipped.length === 0) {
      throw new SyntaxError("Cannot use subscription: no usable vless:// link, it is empty");
    }
    // Nobody will see warnings for these lines: the error lists them (the first few).
    const shown = skipped.slice(0, MAX_LISTED).map((s) => `\n  line ${s.line}: ${s.reason}`);
    const more = skipped.length > MAX_LISTED ? `\n  … and ${skipped.length - MAX_LISTED} more` : "";
    throw new SyntaxError(
      `Cannot use subscription: no usable vless:// link, every line was skipped ` +
        `(${skipped.length}):${shown.join("")}${more}`,
    );
  }
  return { encoding, links, skipped };
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new SyntaxError(`Cannot use subscription: ${what}`, { cause: err });
  }
}

/** Standard or URL-safe base64, padded or not. */
function decodeBase64(text: string): Uint8Array {
  const std = text.replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/");
  // Four characters carry three bytes; a lone last character carries less than one.
  if (std.length % 4 === 1) {
    throw new SyntaxError(
      `Cannot use subscription: it looks like base64, but ${std.length} characters ` +
        "(without padding) is not a length base64 can have",
    );
  }
  const binary = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The start of a line for a message: enough to find it, never a whole secret-bearing line. */
function preview(line: string): string {
  return JSON.stringify(line.length > 24 ? line.slice(0, 24) + "…" : line);
}
