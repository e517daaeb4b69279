import assert from "node:assert/strict";
import { CertificateSelector } from "../../lib/net/certificate_selector.ts";

const CERTS = new URL("../support/certs/", import.meta.url);
const pem = (name: string) => Deno.readTextFileSync(new URL(name, CERTS));
/** localhost, example.com, www.example.com, dray.test, *.dray.test (+ IPs). */
const SERVER = { cert: pem("server.pem"), key: pem("server.key") };
/** other.test, *.other.test. */
const OTHER = { cert: pem("other.pem"), key: pem("other.key") };
/** No subjectAltName: known by its CN, "dray test client". */
const CN_ONLY = { cert: pem("client.pem"), key: pem("client.key") };

Deno.test("CertificateSelector.indexFor() picks by exact DNS name, then by wildcard", () => {
  const s = new CertificateSelector([SERVER, OTHER]);
  assert.equal(s.indexFor("other.test"), 1);
  assert.equal(s.indexFor("a.other.test"), 1, "*.other.test");
  assert.equal(s.indexFor("www.example.com"), 0);
  assert.equal(s.indexFor("x.dray.test"), 0, "*.dray.test");
});

Deno.test("CertificateSelector.indexFor() falls back to the first for no SNI or an unknown name", () => {
  const s = new CertificateSelector([OTHER, SERVER]);
  assert.equal(s.indexFor(""), 0);
  assert.equal(s.indexFor(null), 0);
  assert.equal(s.indexFor("unknown.test"), 0);
  // A wildcard covers one label only, as Go's lookup replaces just the first.
  assert.equal(s.indexFor("a.b.dray.test"), 0);
  assert.equal(s.indexFor("localhost"), 1);
});

Deno.test("CertificateSelector.indexFor() lowercases the SNI", () => {
  const s = new CertificateSelector([SERVER, OTHER]);
  assert.equal(s.indexFor("OTHER.Test"), 1);
  assert.equal(s.indexFor("A.OTHER.TEST"), 1);
});

Deno.test("CertificateSelector: a later certificate takes a name an earlier one has", () => {
  const s = new CertificateSelector([SERVER, OTHER, SERVER]);
  assert.equal(s.indexFor("localhost"), 2);
  assert.deepEqual(s.namesOf(0), []);
  assert.deepEqual(s.namesOf(1).sort(), ["*.other.test", "other.test"]);
});

Deno.test("CertificateSelector knows a certificate without DNS names by its CN, not its IPs", () => {
  const s = new CertificateSelector([SERVER, CN_ONLY]);
  assert.equal(s.indexFor("dray test client"), 1);
  assert.deepEqual(s.namesOf(1), ["dray test client"]);
  assert.ok(!s.namesOf(0).includes("127.0.0.1"));
});

Deno.test("new CertificateSelector() names a certificate it cannot parse, and needs one", () => {
  assert.throws(
    () => new CertificateSelector([SERVER, { cert: "-----BEGIN CERTIFICATE-----\nxx", key: "" }]),
    /certificate 1: cannot parse its PEM/,
  );
  assert.throws(() => new CertificateSelector([]), RangeError);
});
