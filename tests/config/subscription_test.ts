import assert from "node:assert/strict";
import { parseSubscription, SUBSCRIPTION_MAX_BYTES } from "../../lib/config/subscription.ts";

const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
const A = `vless://${ID}@a.example.com:443?type=http&security=tls&path=%2Fray#A`;
const B = `vless://${ID}@[2001:db8::1]:8443?security=tls#B%20two`;
const PLAIN = `${A}\n${B}\n`;
const enc = new TextEncoder();

function base64(text: string): string {
  return btoa(String.fromCharCode(...enc.encode(text)));
}

function names(text: string): string[] {
  return parseSubscription(enc.encode(text)).links.map((l) => l.link.name);
}

Deno.test("parseSubscription() reads plain text, one link per line", () => {
  const sub = parseSubscription(enc.encode(PLAIN));
  assert.equal(sub.encoding, "text");
  assert.deepEqual(sub.links.map((l) => [l.line, l.link.name, l.link.address, l.link.port]), [
    [1, "A", "a.example.com", 443],
    [2, "B two", "2001:db8::1", 8443],
  ]);
  assert.deepEqual(sub.skipped, []);
});

Deno.test("parseSubscription() decodes base64 in every common spelling", () => {
  // A body whose base64 has "+", "/" and padding, so each spelling differs from the others.
  const text = `${A}\n${B}?\n`.replace("?\n", "\n# é>>?\n");
  const std = base64(text);
  assert.match(std, /[+/]/);
  assert.match(std, /=$/);
  const urlSafe = std.replaceAll("+", "-").replaceAll("/", "_");
  const spellings = {
    "standard, padded": std,
    "standard, unpadded": std.replace(/=+$/, ""),
    "URL-safe, padded": urlSafe,
    "URL-safe, unpadded": urlSafe.replace(/=+$/, ""),
    "wrapped at 76 with CRLF": std.match(/.{1,76}/g)!.join("\r\n") + "\r\n",
  };
  for (const [what, body] of Object.entries(spellings)) {
    const sub = parseSubscription(enc.encode(body));
    assert.equal(sub.encoding, "base64", what);
    assert.deepEqual(sub.links.map((l) => l.link.name), ["A", "B two"], what);
  }
});

Deno.test("parseSubscription() skips other lines once each, naming the line and why", () => {
  const text = [
    "# my servers", //                                   1: comment
    A, //                                                2
    "", //                                               3: blank
    "vmess://eyJhZGQiOiJ4In0=", //                       4
    `vless://${ID}@c.example.com:443?type=grpc#C`, //    5: bad link
    "trojan://pw@d.example.com:443", //                  6
    "hello there", //                                    7
    `  ${B}  `, //                                       8: trimmed
    `vless://${ID}@e.example.com#E`, //                  9: no port
  ].join("\n");
  const sub = parseSubscription(enc.encode(text));
  assert.deepEqual(sub.links.map((l) => [l.line, l.link.name]), [[2, "A"], [8, "B two"]]);
  assert.deepEqual(sub.skipped, [
    { line: 4, reason: 'unsupported scheme "vmess://" (dray speaks VLESS only)' },
    {
      line: 5,
      reason:
        'Cannot parse share link: type: "grpc" is not supported by dray (supported: tcp, http, h2, ws)',
    },
    { line: 6, reason: 'unsupported scheme "trojan://" (dray speaks VLESS only)' },
    { line: 7, reason: 'not a share link: "hello there"' },
    { line: 9, reason: "Cannot parse share link: port: is required (vless://<id>@<host>:<port>)" },
  ]);
  // The same lines through base64 keep their numbers.
  const b64 = parseSubscription(enc.encode(base64(text)));
  assert.deepEqual(b64.skipped.map((s) => s.line), [4, 5, 6, 7, 9]);
});

Deno.test("parseSubscription() throws when nothing is usable: empty, only comments, only bad lines", () => {
  for (const body of ["", "  \n\n", "# nothing yet\n"]) {
    assert.throws(() => parseSubscription(enc.encode(body)), {
      name: "SyntaxError",
      message: "Cannot use subscription: no usable vless:// link, it is empty",
    });
  }
  assert.throws(() => parseSubscription(enc.encode("vmess://x\n\nss://y\n")), {
    name: "SyntaxError",
    message: "Cannot use subscription: no usable vless:// link, every line was skipped (2):\n" +
      '  line 1: unsupported scheme "vmess://" (dray speaks VLESS only)\n' +
      '  line 3: unsupported scheme "ss://" (dray speaks VLESS only)',
  });
  assert.throws(() => parseSubscription(enc.encode(base64("trojan://a@b:1"))), {
    message: /every line was skipped \(1\):\n {2}line 1: unsupported scheme "trojan:\/\/"/,
  });
  // A long list of bad lines is cut short in the message.
  const many = Array.from({ length: 25 }, (_, i) => `x ${i}`).join("\n");
  assert.throws(() => parseSubscription(enc.encode(many)), (e: Error) => {
    assert.equal(e.message.split("\n").length, 12);
    assert.match(e.message, /\n {2}line 10: not a share link: "x 9"\n {2}… and 15 more$/);
    return true;
  });
});

Deno.test("parseSubscription() refuses a body over 5 MiB, and bytes that are not text", () => {
  const big = new Uint8Array(SUBSCRIPTION_MAX_BYTES + 1).fill(0x41);
  assert.throws(() => parseSubscription(big), {
    name: "RangeError",
    message: `Cannot use subscription: ${
      SUBSCRIPTION_MAX_BYTES + 1
    } bytes is over the limit of ${SUBSCRIPTION_MAX_BYTES} bytes`,
  });
  assert.throws(() => parseSubscription(new Uint8Array([0x76, 0xff, 0xfe, 0x0a])), {
    name: "SyntaxError",
    message: "Cannot use subscription: it is not UTF-8 text",
  });
  // Base64 characters only, but of binary bytes.
  assert.throws(() => parseSubscription(enc.encode(btoa("\xff\xfe\xfd"))), {
    message: "Cannot use subscription: its base64 does not decode to UTF-8 text",
  });
  assert.throws(() => parseSubscription(enc.encode("abcde")), {
    message:
      /looks like base64, but 5 characters \(without padding\) is not a length base64 can have/,
  });
});

Deno.test("parseSubscription() ignores a UTF-8 byte order mark and CR line ends", () => {
  assert.deepEqual(names(`\uFEFF${A}\r\n${B}\r\n`), ["A", "B two"]);
  assert.deepEqual(names(`${A}\r${B}`), ["A", "B two"]);
});
