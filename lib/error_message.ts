/**
 * An error's own message, without its causes: for a message that wraps the error (and passes it
 * on as `{ cause }`). Anything thrown that is not an Error reads as `String(err)`.
 */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `err` itself when it is an Error, else an Error whose message is `String(err)`. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** An error's message with its causes, for logs: `dial tcp:x:1 failed: connection refused`. */
export function errorMessage(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 4; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ") || "error";
}

/** True when `err` or one of its causes is an instance of `cls`. */
export function hasCause(err: unknown, cls: abstract new (...args: never[]) => Error): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof cls) return true;
    e = (e as Error).cause;
  }
  return false;
}
