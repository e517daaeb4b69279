import assert from "node:assert/strict";
import {
  encodeAddress,
  encodeReply,
  encodeUdpDatagram,
  parseAddress,
  parseGreeting,
  parseRequest,
  parseUdpDatagram,
  parseUserPass,
  Reply,
  SocksError,
} from "../../lib/socks/socks5.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function domainRequest(cmd: number, host: string, port: number): Uint8Array {
  const name = enc.encode(host);
  return Uint8Array.of(5, cmd, 0, 3, name.byteLength, ...name, port >> 8, port & 0xff);
}

/** Asserts `parse` returns null for every strict prefix of `full`, and a result for `full`. */
function assertNeedsAll<T>(parse: (b: Uint8Array) => T | null, full: Uint8Array): T {
  for (let i = 0; i < full.byteLength; i++) {
    assert.equal(parse(full.subarray(0, i)), null, `prefix of ${i} bytes`);
  }
  const r = parse(full);
  assert.ok(r !== null);
  return r;
}

Deno.test("parseGreeting() needs every byte and returns the methods", () => {
  const g = assertNeedsAll(parseGreeting, Uint8Array.of(5, 2, 0, 2));
  assert.deepEqual([...g.methods], [0, 2]);
  assert.equal(g.next, 4);
});

Deno.test("parseGreeting() rejects version 4 and zero methods", () => {
  assert.throws(() => parseGreeting(Uint8Array.of(4, 1, 0)), SocksError);
  assert.throws(() => parseGreeting(Uint8Array.of(5, 0)), /NMETHODS is 0/);
});

Deno.test("parseUserPass() reads RFC 1929 credentials", () => {
  const msg = Uint8Array.of(1, 3, ...enc.encode("bob"), 4, ...enc.encode("pa55"));
  const r = assertNeedsAll(parseUserPass, msg);
  assert.deepEqual(r, { user: "bob", pass: "pa55", next: msg.byteLength });
  assert.throws(() => parseUserPass(Uint8Array.of(5, 0, 0)), /version 5, want 1/);
  // Empty user and password are well formed (and then simply wrong).
  assert.deepEqual(parseUserPass(Uint8Array.of(1, 0, 0)), { user: "", pass: "", next: 3 });
});

Deno.test("parseRequest() reads IPv4, IPv6 and domain CONNECTs", () => {
  const v4 = assertNeedsAll(parseRequest, Uint8Array.of(5, 1, 0, 1, 10, 0, 0, 1, 0x1f, 0x90));
  assert.deepEqual(v4, { command: 1, host: "10.0.0.1", port: 8080, next: 10 });
  const v6bytes = new Uint8Array(16);
  v6bytes[15] = 1;
  const v6 = assertNeedsAll(parseRequest, Uint8Array.of(5, 1, 0, 4, ...v6bytes, 0, 80));
  assert.deepEqual(v6, { command: 1, host: "::1", port: 80, next: 22 });
  const d = assertNeedsAll(parseRequest, domainRequest(3, "example.com", 53));
  assert.deepEqual(d, { command: 3, host: "example.com", port: 53, next: 18 });
});

Deno.test("parseRequest() maps bad requests to their REP codes", () => {
  const rep = (b: Uint8Array) => {
    try {
      parseRequest(b);
    } catch (err) {
      assert.ok(err instanceof SocksError);
      return err.reply;
    }
    assert.fail("no error");
  };
  assert.equal(rep(Uint8Array.of(5, 2, 0, 1, 1, 2, 3, 4, 0, 80)), Reply.commandNotSupported);
  assert.equal(rep(Uint8Array.of(5, 9, 0, 1, 1, 2, 3, 4, 0, 80)), Reply.commandNotSupported);
  assert.equal(rep(Uint8Array.of(5, 1, 0, 7)), Reply.addressTypeNotSupported);
  assert.equal(rep(Uint8Array.of(5, 1, 0, 3, 0, 0, 80)), Reply.generalFailure);
  assert.equal(rep(Uint8Array.of(4, 1)), undefined);
});

Deno.test("encodeAddress() and parseAddress() round-trip every address type", () => {
  for (
    const [host, port] of [["1.2.3.4", 1], ["2001:db8::7", 65535], ["a.example", 443]] as const
  ) {
    const b = encodeAddress(host, port);
    assert.deepEqual(parseAddress(b, 0), { host, port, next: b.byteLength });
  }
  assert.deepEqual([...encodeReply(Reply.succeeded)], [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeReply(7, "127.0.0.1", 258)], [5, 7, 0, 1, 127, 0, 0, 1, 1, 2]);
});

Deno.test("parseUdpDatagram() drops short headers and reads FRAG, address and payload", () => {
  const full = encodeUdpDatagram("example.com", 53, enc.encode("q"));
  for (let i = 0; i < full.byteLength - 1; i++) {
    assert.equal(parseUdpDatagram(full.subarray(0, i)), null, `prefix ${i}`);
  }
  const d = parseUdpDatagram(full)!;
  assert.equal(d.frag, 0);
  assert.equal(d.host, "example.com");
  assert.equal(d.port, 53);
  assert.equal(dec.decode(d.payload), "q");
  const fragged = full.slice();
  fragged[2] = 1;
  assert.equal(parseUdpDatagram(fragged)!.frag, 1);
});
