import assert from "node:assert/strict";
import { compileDomainRegExp, DomainMatcher } from "../../lib/routing/domain_matcher.ts";

function one(type: "plain" | "regexp" | "domain" | "full", value: string): DomainMatcher {
  const m = new DomainMatcher();
  m.add({ type, value });
  return m;
}

Deno.test("DomainMatcher.test() matches domain: on the name and label-boundary suffixes only", () => {
  const m = one("domain", "example.com");
  for (const d of ["example.com", "www.example.com", "a.b.example.com"]) {
    assert.equal(m.test(d), true, d);
  }
  for (const d of ["notexample.com", "example.com.cn", "example.com.", "com", ""]) {
    assert.equal(m.test(d), false, d);
  }
});

Deno.test("DomainMatcher.test() treats plain as a substring and full as equality", () => {
  const plain = one("plain", "goog");
  assert.equal(plain.test("www.google.com"), true);
  assert.equal(plain.test("gog.com"), false);
  const full = one("full", "x.full.test");
  assert.equal(full.test("x.full.test"), true);
  assert.equal(full.test("a.x.full.test"), false);
  assert.equal(full.test("x.full.test."), false);
});

Deno.test("DomainMatcher.test() runs regexps unanchored, with a leading (?i) as a flag", () => {
  assert.equal(one("regexp", "oo.le").test("www.google.com"), true);
  assert.equal(one("regexp", "^[^.]*$").test("intranet"), true);
  assert.equal(one("regexp", "^[^.]*$").test("a.b"), false);
  assert.equal(one("regexp", "(?i)^ab").test("abc"), true);
});

Deno.test("DomainMatcher.test() is case-insensitive (dray's deliberate difference from 4.34)", () => {
  assert.equal(one("domain", "Example.COM").test("WWW.example.com"), true);
  assert.equal(one("full", "full.test").test("FULL.test"), true);
  assert.equal(one("plain", "KW").test("kw.org"), true);
});

Deno.test("DomainMatcher.forEachMatch() reports every id that matches", () => {
  const m = new DomainMatcher();
  m.add({ type: "domain", value: "example.com" }, 3);
  m.add({ type: "domain", value: "www.example.com" }, 1);
  m.add({ type: "full", value: "www.example.com" }, 7);
  m.add({ type: "plain", value: "exam" }, 9);
  m.add({ type: "regexp", value: "com$" }, 2);
  m.add({ type: "full", value: "other.test" }, 5);
  const ids: number[] = [];
  m.forEachMatch("www.example.com", (id) => void ids.push(id));
  assert.deepEqual(ids.sort((a, b) => a - b), [1, 2, 3, 7, 9]);
  assert.equal(m.size, 6);
});

Deno.test("compileDomainRegExp() names the pattern when it does not compile", () => {
  assert.throws(() => compileDomainRegExp("a(b"), { name: "SyntaxError", message: /"a\(b"/ });
});
