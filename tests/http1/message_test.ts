import assert from "node:assert/strict";
import {
  endToEnd,
  findHeadEnd,
  parseRequestHead,
  parseResponseHead,
} from "../../lib/http1/message.ts";

const enc = new TextEncoder();

Deno.test("findHeadEnd() finds CRLF and bare-LF blank lines only when complete", () => {
  const head = enc.encode("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nBODY");
  for (let i = 0; i < head.byteLength - 4; i++) {
    assert.equal(findHeadEnd(head.subarray(0, i)), -1, `prefix ${i}`);
  }
  assert.equal(findHeadEnd(head), head.byteLength - 4);
  assert.equal(findHeadEnd(enc.encode("GET / HTTP/1.0\nA: b\n\nx")), 21);
});

Deno.test("parseRequestHead() reads the request line and headers", () => {
  const h = parseRequestHead(
    enc.encode("\r\nPOST http://x.test:8080/a?b=1 HTTP/1.1\r\nHost: x.test\r\nX-A:  v \r\n\r\n"),
  );
  assert.deepEqual(h, {
    method: "POST",
    target: "http://x.test:8080/a?b=1",
    version: "1.1",
    headers: [["Host", "x.test"], ["X-A", "v"]],
  });
});

Deno.test("parseRequestHead() rejects garbage with 400", () => {
  for (
    const bad of [
      "GARBAGE\r\n\r\n",
      "GET http://a/ HTTP/2.0\r\n\r\n",
      "GET  http://a/ HTTP/1.1\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    ]
  ) {
    assert.throws(
      () => parseRequestHead(enc.encode(bad)),
      (e: Error & { status?: number }) => e.status === 400,
      bad,
    );
  }
});

Deno.test("parseResponseHead() reads status and headers; garbage is a 502", () => {
  const r = parseResponseHead(enc.encode("HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n"));
  assert.equal(r.status, 204);
  assert.equal(r.reason, "No Content");
  assert.throws(
    () => parseResponseHead(enc.encode("SSH-2.0\r\n\r\n")),
    (e: Error & { status?: number }) => e.status === 502,
  );
});

Deno.test("endToEnd() drops hop-by-hop headers and those named by Connection", () => {
  const kept = endToEnd([
    ["Host", "a"],
    ["Connection", "keep-alive, X-Secret"],
    ["Keep-Alive", "timeout=5"],
    ["Proxy-Authorization", "Basic eA=="],
    ["Proxy-Connection", "keep-alive"],
    ["TE", "trailers"],
    ["Trailer", "X"],
    ["X-Secret", "s"],
    ["Transfer-Encoding", "chunked"],
    ["Accept", "*/*"],
  ]);
  assert.deepEqual(kept, [["Host", "a"], ["Transfer-Encoding", "chunked"], ["Accept", "*/*"]]);
});
