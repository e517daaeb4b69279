import assert from "node:assert/strict";
import { requestFraming, responseFraming } from "../../lib/http1/framing.ts";

Deno.test("requestFraming() and responseFraming() follow RFC 9112 §6.3", () => {
  assert.deepEqual(requestFraming([]), { kind: "none" });
  assert.deepEqual(requestFraming([["Content-Length", "12"]]), { kind: "length", length: 12 });
  assert.deepEqual(requestFraming([["Transfer-Encoding", "gzip, chunked"]]), { kind: "chunked" });
  assert.throws(() => requestFraming([["Content-Length", "1"], ["Transfer-Encoding", "chunked"]]));
  assert.throws(() => requestFraming([["Content-Length", "1, 2"]]));
  assert.throws(() => requestFraming([["Transfer-Encoding", "gzip"]]));
  const resp = (status: number, headers: [string, string][] = []) => ({
    version: "1.1",
    status,
    reason: "",
    headers,
  });
  assert.deepEqual(responseFraming("GET", resp(200)), { kind: "close" });
  assert.deepEqual(responseFraming("HEAD", resp(200, [["Content-Length", "9"]])), { kind: "none" });
  assert.deepEqual(responseFraming("GET", resp(304)), { kind: "none" });
  assert.deepEqual(responseFraming("GET", resp(200, [["Transfer-Encoding", "chunked"]])), {
    kind: "chunked",
  });
});
