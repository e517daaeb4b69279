import assert from "node:assert/strict";
import { shouldOverride, sniff, sniffBittorrent } from "../../lib/routing/sniffer.ts";
import { sniffHttp } from "../../lib/routing/http_sniffer.ts";
import { sniffTls } from "../../lib/routing/tls_sniffer.ts";
import { clientHello } from "../support/client_hello.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("sniffHttp() takes the last Host, lowercased, without its port", () => {
  const req = "GET / HTTP/1.1\r\nHost: first.test\r\nhOsT:  Http.Test:8080 \r\n\r\n";
  assert.deepEqual(sniffHttp(ascii(req)), { protocol: "http1", domain: "http.test" });
  assert.deepEqual(sniffHttp(ascii("post /x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")), {
    protocol: "http1",
    domain: "::1",
  });
});

Deno.test("sniffHttp() waits for a method or a Host and refuses other protocols", () => {
  assert.equal(sniffHttp(ascii("GE")), "wait");
  assert.equal(sniffHttp(ascii("GET / HTTP/1.1\r\nAccept: */*\r\n")), "wait");
  assert.equal(sniffHttp(ascii("GET / HTTP/1.1\n\nHost: late.test\n")), "wait");
  assert.equal(sniffHttp(ascii("SSH-2.0-OpenSSH\r\n")), "no");
  assert.equal(sniffHttp(ascii("GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n")), "no");
});

Deno.test("sniffHttp() reads past a bare \\r line as 4.34 does", () => {
  const req = "GET / HTTP/1.1\r\n\r\nbody\nHost: body.test\n\n";
  assert.deepEqual(sniffHttp(ascii(req)), { protocol: "http1", domain: "body.test" });
});

Deno.test("sniffTls() returns the SNI as sent, and waits for the whole first record", () => {
  const hello = clientHello({ sni: "SNI.Test" });
  assert.deepEqual(sniffTls(hello), { protocol: "tls", domain: "SNI.Test" });
  for (const cut of [1, 4, 5, 40, hello.length - 1]) {
    assert.equal(sniffTls(hello.subarray(0, cut)), "wait", `cut ${cut}`);
  }
});

Deno.test("sniffTls() refuses a trailing dot, a missing SNI and non-handshake records", () => {
  assert.equal(sniffTls(clientHello({ sni: "sni.test." })), "no");
  assert.equal(sniffTls(clientHello()), "no");
  const appData = clientHello({ sni: "a.test" });
  appData[0] = 0x17;
  assert.equal(sniffTls(appData), "no");
});

Deno.test("sniff() finds SNI in a 1973-byte hello but not in a 2063-byte one (the 2048 buffer)", () => {
  assert.deepEqual(sniff(clientHello({ sni: "big.test", recordSize: 1973 })), {
    protocol: "tls",
    domain: "big.test",
  });
  assert.equal(sniff(clientHello({ sni: "big.test", recordSize: 2063 })), "no");
});

Deno.test("sniff() recognises BitTorrent and gives up on unknown bytes", () => {
  const bt = ascii("\x13BitTorrent protocol\0\0\0\0\0\0\0\0");
  assert.deepEqual(sniff(bt), { protocol: "bittorrent", domain: "" });
  assert.equal(sniffBittorrent(bt.subarray(0, 10)), "wait");
  assert.equal(
    sniff(
      ascii("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"),
    ),
    "no",
  );
});

Deno.test("shouldOverride() matches destOverride entries as protocol prefixes", () => {
  assert.equal(shouldOverride({ protocol: "http1", domain: "a" }, ["http"]), true);
  assert.equal(shouldOverride({ protocol: "tls", domain: "a" }, ["http"]), false);
  assert.equal(shouldOverride({ protocol: "bittorrent", domain: "" }, ["http", "tls"]), false);
});
