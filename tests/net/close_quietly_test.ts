import assert from "node:assert/strict";
import { closeQuietly } from "../../lib/net/close_quietly.ts";

Deno.test("closeQuietly() closes once and swallows the second close's BadResource", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closeQuietly(listener);
  assert.throws(() => listener.close(), Deno.errors.BadResource);
  closeQuietly(listener);
  closeQuietly(undefined);
});
