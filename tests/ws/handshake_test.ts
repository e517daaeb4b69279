import assert from "node:assert/strict";
import { HttpError, parseRequestHead, parseResponseHead } from "../../lib/http1/message.ts";
import {
  acceptKey,
  checkUpgradeResponse,
  encodeUpgradeRequest,
  encodeUpgradeResponse,
  newClientKey,
  parseUpgradeRequest,
} from "../../lib/ws/handshake.ts";

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

Deno.test("acceptKey() matches the RFC 6455 §1.3 example", () => {
  assert.equal(acceptKey(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.match(newClientKey(), /^[A-Za-z0-9+/]{22}==$/);
});

Deno.test("encodeUpgradeRequest() and parseUpgradeRequest() agree; configured headers cannot replace ours", () => {
  const wire = encodeUpgradeRequest({
    path: "/ray?x=1",
    host: "cdn.example.com",
    key: KEY,
    headers: [["User-Agent", "dray"], ["host", "ignored"], ["Sec-WebSocket-Protocol", "AAEC"]],
  });
  const text = new TextDecoder().decode(wire);
  assert.match(text, /^GET \/ray\?x=1 HTTP\/1\.1\r\nHost: cdn\.example\.com\r\n/);
  assert.equal(text.match(/host:/gi)?.length, 1);
  assert.ok(text.endsWith("\r\n\r\n"));
  const head = parseRequestHead(wire);
  assert.deepEqual(parseUpgradeRequest(head), { key: KEY, protocol: "AAEC" });
});

Deno.test("parseUpgradeRequest() refuses non-upgrades with 400 and other versions with 426", () => {
  const base = (lines: string[]) =>
    parseRequestHead(latin1(["GET / HTTP/1.1", ...lines, "", ""].join("\r\n")));
  const ok = [
    "Host: a",
    "Upgrade: websocket",
    "Connection: keep-alive, Upgrade",
    `Sec-WebSocket-Key: ${KEY}`,
    "Sec-WebSocket-Version: 13",
  ];
  assert.equal(parseUpgradeRequest(base(ok)).key, KEY);
  const cases: Array<[string[], number, RegExp]> = [
    [ok.filter((l) => !l.startsWith("Upgrade")), 400, /Upgrade: websocket/],
    [ok.filter((l) => !l.startsWith("Connection")), 400, /Connection: Upgrade/],
    [ok.filter((l) => !l.startsWith("Host")), 400, /no Host/],
    [ok.map((l) => l.startsWith("Sec-WebSocket-Key") ? "Sec-WebSocket-Key: abc" : l), 400, /Key/],
    [
      ok.map((l) => l.startsWith("Sec-WebSocket-Version") ? "Sec-WebSocket-Version: 8" : l),
      426,
      /8/,
    ],
  ];
  for (const [lines, status, re] of cases) {
    assert.throws(() => parseUpgradeRequest(base(lines)), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, status);
      assert.match(err.message, re);
      return true;
    });
  }
  const post = parseRequestHead(latin1(["POST / HTTP/1.1", ...ok, "", ""].join("\r\n")));
  assert.throws(() => parseUpgradeRequest(post), /POST/);
});

Deno.test("checkUpgradeResponse() accepts our 101 and names what is wrong in others", () => {
  const good = parseResponseHead(encodeUpgradeResponse(KEY, "AAEC"));
  checkUpgradeResponse(good, KEY, "AAEC");
  // A server (or CDN) that leaves out the subprotocol we offered is accepted.
  checkUpgradeResponse(parseResponseHead(encodeUpgradeResponse(KEY)), KEY, "AAEC");
  const res = (lines: string[]) => parseResponseHead(latin1([...lines, "", ""].join("\r\n")));
  assert.throws(
    () => checkUpgradeResponse(res(["HTTP/1.1 404 Not Found", "Content-Length: 0"]), KEY),
    /refused: HTTP 404 Not Found/,
  );
  assert.throws(() => checkUpgradeResponse(good, "AAAAAAAAAAAAAAAAAAAAAA=="), /Accept/);
  assert.throws(() => checkUpgradeResponse(good, KEY, "other"), /subprotocol "AAEC"/);
  assert.throws(() => checkUpgradeResponse(good, KEY), /subprotocol/);
  const ext = res([
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${acceptKey(KEY)}`,
    "Sec-WebSocket-Extensions: permessage-deflate",
  ]);
  assert.throws(() => checkUpgradeResponse(ext, KEY), /extensions/);
  const noUpgrade = res([
    "HTTP/1.1 101 Switching Protocols",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${acceptKey(KEY)}`,
  ]);
  assert.throws(() => checkUpgradeResponse(noUpgrade, KEY), /Upgrade: websocket/);
});
