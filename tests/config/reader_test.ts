import assert from "node:assert/strict";
import {
  describe,
  isIp,
  join,
  Reader,
  readProtocol,
  stripBrackets,
} from "../../lib/config/reader.ts";

Deno.test("Reader.keys() refuses unknown keys and unsupported features by their path", () => {
  const r = new Reader({});
  r.keys({ a: 1, b: 2, mux: {} }, "outbounds[0]", ["a"], { mux: "mux is" });
  assert.deepEqual(r.problems, [
    "outbounds[0].b: unknown field",
    "outbounds[0].mux: mux is not supported by dray",
  ]);
});

Deno.test("Reader.choice() compares without case and returns the canonical spelling", () => {
  const r = new Reader({});
  const values = ["AsIs", "UseIPv4"] as const;
  assert.equal(r.choice({ s: "useipv4" }, "s", "x", values, "AsIs"), "UseIPv4");
  assert.equal(r.choice({}, "s", "x", values, "AsIs"), "AsIs");
  assert.equal(r.choice({ s: "fast" }, "s", "x", values, "AsIs"), undefined);
  assert.deepEqual(r.problems, ['x.s: must be one of "AsIs", "UseIPv4", got "fast"']);
});

Deno.test("Reader.port() takes digit strings only where v2ray does and refuses ranges by name", () => {
  const r = new Reader({});
  assert.equal(r.port({ port: "1080" }, "port", "in", true), 1080);
  assert.equal(r.port({ port: "1080" }, "port", "out"), undefined);
  assert.equal(r.port({ port: "1-2" }, "port", "in", true), undefined);
  assert.deepEqual(r.problems, [
    'out.port: must be an integer 1-65535, got "1080"',
    'in.port: port ranges ("1-2") are not supported by dray',
  ]);
});

Deno.test("Reader.stringList() takes an array or one string split at commas", () => {
  const r = new Reader({});
  assert.deepEqual(r.stringList({ a: "h2,http/1.1" }, "a", ""), ["h2", "http/1.1"]);
  assert.deepEqual(r.stringList({ a: ["x"] }, "a", ""), ["x"]);
  assert.deepEqual(r.stringList({ a: "" }, "a", ""), []);
  assert.equal(r.stringList({ a: [1] }, "a", "t"), undefined);
  assert.deepEqual(r.problems, ["t.a: must be a string or an array of strings, got an array"]);
});

Deno.test("Reader.file() resolves relative names against baseDir and names the path on failure", () => {
  const seen: string[] = [];
  const r = new Reader({
    baseDir: "/etc/dray",
    readFile: (p) => {
      seen.push(p);
      throw new Error("gone");
    },
  });
  assert.equal(r.file("a.pem", "x.certificateFile"), undefined);
  assert.deepEqual(seen, ["/etc/dray/a.pem"]);
  assert.deepEqual(r.problems, ['x.certificateFile: cannot read "/etc/dray/a.pem": gone']);
});

Deno.test("readProtocol() tells v2ray-only protocols from unknown ones", () => {
  const r = new Reader({});
  const known = ["vless", "freedom"] as const;
  assert.equal(readProtocol(r, { protocol: "vless" }, "o", known, ["vmess"]), "vless");
  readProtocol(r, { protocol: "vmess" }, "o", known, ["vmess"]);
  readProtocol(r, { protocol: "pigeon" }, "o", known, ["vmess"]);
  assert.deepEqual(r.problems, [
    'o.protocol: "vmess" is not supported by dray (supported: vless, freedom)',
    'o.protocol: unknown protocol "pigeon" (supported: vless, freedom)',
  ]);
});

Deno.test("describe(), join(), isIp() and stripBrackets() format and classify values", () => {
  assert.equal(describe("x".repeat(70)), JSON.stringify("x".repeat(57) + "..."));
  assert.equal(describe([1]), "an array");
  assert.equal(join("", "log"), "log");
  assert.equal(join("log", "access"), "log.access");
  assert.ok(isIp("127.0.0.1") && isIp("::1") && !isIp("example.com") && !isIp("1:x"));
  assert.equal(stripBrackets("[::1]"), "::1");
});
