import assert from "node:assert/strict";
import { parseJsonc, positionAt, stripComments } from "../../lib/config/jsonc.ts";

Deno.test("stripComments() blanks //, # and /* */ comments but keeps every offset", () => {
  const text = '{ // one\n  "a": 1, # two\n  /* three\n  four */ "b": 2 }';
  const out = stripComments(text);
  assert.equal(out.length, text.length);
  assert.equal(out.indexOf('"b"'), text.indexOf('"b"'));
  assert.equal(out.split("\n").length, text.split("\n").length);
  assert.doesNotMatch(out, /one|two|three|four/);
});

Deno.test("stripComments() leaves comment markers inside strings alone", () => {
  const text = '{"path": "/a//b", "u": "http://x/*y*/", "h": "#tag", "q": "\\"//"}';
  assert.equal(stripComments(text), text);
});

Deno.test("parseJsonc() parses JSON with comments like JSON.parse", () => {
  const text = `// v2ray config
{
  "log": { "loglevel": "info" }, /* inline */
  "inbounds": [ { "port": 1080, "listen": "127.0.0.1" } ], # hash comment
  "n": [-1.5e3, 0, true, false, null, "\\u00e9\\n"]
}`;
  assert.deepEqual(parseJsonc(text), {
    log: { loglevel: "info" },
    inbounds: [{ port: 1080, listen: "127.0.0.1" }],
    n: [-1500, 0, true, false, null, "é\n"],
  });
});

Deno.test("parseJsonc() reports truncated input at the line and column of the end", () => {
  assert.throws(
    () => parseJsonc('{\n  "a": [1,\n  2'),
    { name: "SyntaxError", message: "unexpected end of input at line 3 column 4" },
  );
  assert.throws(() => parseJsonc(""), { message: "unexpected end of input at line 1 column 1" });
  assert.throws(
    () => parseJsonc('{"a": "b'),
    { message: "unexpected end of input at line 1 column 9" },
  );
});

Deno.test("parseJsonc() counts lines and columns in the original text, comments included", () => {
  const text = '/* a\n comment */ {\n  // note\n  "a": 1,,\n}';
  assert.throws(() => parseJsonc(text), {
    message: 'unexpected character "," at line 4 column 10',
  });
});

Deno.test("parseJsonc() refuses trailing commas, single quotes and bare words", () => {
  assert.throws(() => parseJsonc('{"a": 1,}'), {
    message: 'unexpected character "}" at line 1 column 9',
  });
  assert.throws(() => parseJsonc("{'a': 1}"), {
    message: 'unexpected character "\'" at line 1 column 2',
  });
  assert.throws(() => parseJsonc('{"a": tru}'), {
    message: 'unexpected character "}" at line 1 column 10',
  });
  assert.throws(() => parseJsonc("[01]"), {
    message: 'unexpected character "1" at line 1 column 3',
  });
  assert.throws(() => parseJsonc("{} {}"), {
    message: 'unexpected character "{" at line 1 column 4',
  });
});

Deno.test("parseJsonc() refuses duplicate keys, naming the key and where", () => {
  assert.throws(() => parseJsonc('{\n  "port": 1,\n  "port": 2\n}'), {
    message: 'duplicate key "port" at line 3 column 3',
  });
});

Deno.test("parseJsonc() refuses an unterminated block comment and a bad escape", () => {
  assert.throws(() => parseJsonc('{"a": 1}\n  /* open'), {
    message: "unterminated /* comment at line 2 column 3",
  });
  assert.throws(() => parseJsonc('"\\x"'), { message: 'bad escape "\\x" at line 1 column 2' });
});

Deno.test("parseJsonc() keeps a __proto__ key as plain data", () => {
  const v = parseJsonc('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v), ["__proto__"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("parseJsonc() bounds nesting depth", () => {
  assert.throws(() => parseJsonc("[".repeat(300)), /nesting too deep at line 1 column 258/);
});

Deno.test("positionAt() is 1-based and counts newlines", () => {
  assert.deepEqual(positionAt("ab\ncd", 0), { line: 1, column: 1 });
  assert.deepEqual(positionAt("ab\ncd", 4), { line: 2, column: 2 });
  assert.deepEqual(positionAt("ab\n", 3), { line: 2, column: 1 });
});
