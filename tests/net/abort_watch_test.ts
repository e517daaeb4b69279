import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { unwatchAbort, watchAbort } from "../../lib/net/abort_watch.ts";

Deno.test("watchAbort() calls each callback once on abort, except those unwatched", () => {
  const ac = new AbortController();
  const calls: string[] = [];
  const a = () => calls.push("a");
  const b = () => calls.push("b");
  const c = () => calls.push("c");
  watchAbort(ac.signal, a);
  watchAbort(ac.signal, b);
  watchAbort(ac.signal, c);
  unwatchAbort(ac.signal, b);
  ac.abort();
  ac.abort();
  assertEquals(calls, ["a", "c"]);
  // Unwatching after the abort (a relay ending on its own afterwards) is harmless.
  unwatchAbort(ac.signal, a);
  assertEquals(calls, ["a", "c"]);
});

Deno.test("watchAbort() keeps signals apart, and a throwing callback does not stop the others", () => {
  const one = new AbortController();
  const two = new AbortController();
  const calls: string[] = [];
  const reported: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    reported.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    watchAbort(one.signal, () => {
      throw new Error("bad callback");
    });
    watchAbort(one.signal, () => calls.push("one"));
    watchAbort(two.signal, () => calls.push("two"));
    one.abort();
    assertEquals(calls, ["one"]);
    assertEquals(reported.map((e) => (e as Error).message), ["bad callback"]);
    two.abort();
    assertEquals(calls, ["one", "two"]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
