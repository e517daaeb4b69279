import assert from "node:assert/strict";
import { parseAbsoluteTarget, parseAuthority } from "../../lib/http1/target.ts";

Deno.test("parseAbsoluteTarget() and parseAuthority() split host, port and path", () => {
  assert.deepEqual(parseAbsoluteTarget("http://Example.COM"), {
    host: "example.com",
    port: 80,
    path: "/",
  });
  assert.deepEqual(parseAbsoluteTarget("http://u:p@h:81?q=1"), {
    host: "h",
    port: 81,
    path: "/?q=1",
  });
  assert.deepEqual(parseAbsoluteTarget("HTTP://[::1]:8080/a/../b"), {
    host: "::1",
    port: 8080,
    path: "/a/../b",
  });
  assert.throws(() => parseAbsoluteTarget("/relative"));
  assert.throws(() => parseAbsoluteTarget("https://a/"));
  assert.deepEqual(parseAuthority("a.b:443"), { host: "a.b", port: 443 });
  assert.throws(() => parseAuthority("a.b"));
  assert.throws(() => parseAuthority("a.b:0"));
  assert.throws(() => parseAuthority("a.b:99999"));
});
