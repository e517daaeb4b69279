/**
 * Reads a subscription's bytes from where `--sub` says: a file, `-` (stdin) or an http(s) URL,
 * fetched directly (not through any dray server) with `User-Agent: dray/VERSION` and a deadline.
 * At most {@link SUBSCRIPTION_MAX_BYTES} are read from any of them.
 *
 * Errors say which it was: RangeError for a body over the limit (the input is unusable),
 * `SubscriptionFetchError` for a URL that failed or timed out (maybe only for now), plain Error
 * with the path for a file that cannot be read.
 */
import { SUBSCRIPTION_MAX_BYTES } from "./subscription.ts";
import { errorMessage, messageOf } from "../error_message.ts";

/** How long a subscription URL may take, body included, unless told otherwise. */
export const SUBSCRIPTION_TIMEOUT_MS = 20_000;

export interface ReadSubscriptionOptions {
  /** Sent as `User-Agent: dray/<version>`. */
  version: string;
  /** Default {@link SUBSCRIPTION_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Default {@link SUBSCRIPTION_MAX_BYTES}. */
  maxBytes?: number;
  /** What `-` reads; default Deno.stdin.readable. */
  stdin?: ReadableStream<Uint8Array>;
}

/** A subscription URL that could not be fetched: a network failure, a timeout, a non-2xx. */
export class SubscriptionFetchError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SubscriptionFetchError";
  }
}

/** True when `source` names a URL rather than a file. */
export function isSubscriptionUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

export async function readSubscriptionSource(
  source: string,
  opts: ReadSubscriptionOptions,
): Promise<Uint8Array> {
  const maxBytes = opts.maxBytes ?? SUBSCRIPTION_MAX_BYTES;
  if (isSubscriptionUrl(source)) return await fetchSubscription(source, opts, maxBytes);
  if (source === "-") {
    return await readLimited(opts.stdin ?? Deno.stdin.readable, maxBytes, "stdin");
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(source);
  } catch (err) {
    throw new Error(`Cannot read subscription file "${source}": ${messageOf(err)}`, {
      cause: err,
    });
  }
  // readLimited consumes the readable, which closes the file at its end or on cancel.
  return await readLimited(file.readable, maxBytes, `"${source}"`);
}

async function fetchSubscription(
  url: string,
  opts: ReadSubscriptionOptions,
  maxBytes: number,
): Promise<Uint8Array> {
  const timeoutMs = opts.timeoutMs ?? SUBSCRIPTION_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  const where = redact(url);
  try {
    const res = await fetch(url, {
      headers: { "user-agent": `dray/${opts.version}` },
      redirect: "follow",
      signal,
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new SubscriptionFetchError(
        `Cannot fetch subscription ${where}: HTTP status ${res.status}`,
      );
    }
    const length = Number(res.headers.get("content-length") ?? NaN);
    if (length > maxBytes) {
      await res.body?.cancel();
      throw tooBig(where, `${length} bytes (content-length)`, maxBytes);
    }
    if (res.body === null) return new Uint8Array(0);
    return await readLimited(res.body, maxBytes, where);
  } catch (err) {
    if (err instanceof RangeError || err instanceof SubscriptionFetchError) throw err;
    if (signal.aborted) {
      throw new SubscriptionFetchError(
        `Cannot fetch subscription ${where}: no complete answer within ${timeoutMs} ms`,
        { cause: err },
      );
    }
    // fetch() says only "fetch failed"; the reason is in its causes, next to the whole URL with
    // its token. Keep the reason, redact the URL, and do not attach the raw error.
    throw new SubscriptionFetchError(
      `Cannot fetch subscription ${where}: ${redactUrls(errorMessage(err), url)}`,
    );
  }
}

/** Reads a stream to its end, or fails as soon as it passes `maxBytes` (and cancels it). */
async function readLimited(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
  where: string,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooBig(where, `more than ${maxBytes} bytes`, maxBytes);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.byteLength;
  }
  return body;
}

function tooBig(where: string, got: string, maxBytes: number): RangeError {
  return new RangeError(
    `Cannot use subscription ${where}: ${got}, over the limit of ${maxBytes} bytes`,
  );
}

/** `text` with every URL in it redacted, and the subscription URL's path and query too. */
function redactUrls(text: string, url: string): string {
  let out = text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s()<>"']+/gi, (u) => redact(u));
  try {
    const u = new URL(url);
    const secret = u.pathname + u.search;
    if (secret.length > 1) out = out.replaceAll(secret, "/…");
  } catch {
    // Not a URL: fetch() failed before it could print one.
  }
  return out;
}

/** A URL for messages: subscription URLs carry their secret token in the path or query. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return "(bad URL)";
  }
}
