import assert from "node:assert/strict";
import {
  configFromLink,
  formatVlessLink,
  linkFromConfig,
  linkToV2rayJson,
  parseVlessLink,
} from "../../lib/config/share_link.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";

const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";

Deno.test("parseVlessLink() reads every field, percent-decoding values and the name", () => {
  const link = parseVlessLink(
    `vless://${ID}@example.com:443?type=http&security=tls&sni=www.example.com` +
      "&alpn=h2%2Chttp%2F1.1&host=a.example.com,b.example.com&path=%2Fray%3Fed%3D1" +
      "&encryption=none&allowInsecure=1#My%20Server%20%E2%9C%93",
  );
  assert.deepEqual(link, {
    id: ID,
    address: "example.com",
    port: 443,
    type: "http",
    security: "tls",
    sni: "www.example.com",
    alpn: ["h2", "http/1.1"],
    host: ["a.example.com", "b.example.com"],
    path: "/ray?ed=1",
    flow: "",
    encryption: "none",
    allowInsecure: true,
    name: "My Server ✓",
  });
});

Deno.test("parseVlessLink() fills the standard's defaults", () => {
  assert.deepEqual(parseVlessLink(`vless://${ID}@1.2.3.4:8443`), {
    id: ID,
    address: "1.2.3.4",
    port: 8443,
    type: "tcp",
    security: "none",
    sni: "",
    alpn: [],
    host: [],
    path: "/",
    flow: "",
    encryption: "none",
    allowInsecure: false,
    name: "",
  });
});

Deno.test("parseVlessLink() takes an IPv6 host in brackets, type=h2 and insecure=1", () => {
  const link = parseVlessLink(`vless://${ID}@[2001:db8::1]:443/?type=h2&security=tls&insecure=1`);
  assert.equal(link.address, "2001:db8::1");
  assert.equal(link.type, "h2");
  assert.equal(link.allowInsecure, true);
});

const ERRORS: Array<[string, string, string]> = [
  [
    "a missing port",
    `vless://${ID}@example.com?security=tls`,
    "port: is required (vless://<id>@<host>:<port>)",
  ],
  ["an empty port", `vless://${ID}@example.com:`, "port: is required (vless://<id>@<host>:<port>)"],
  [
    "a port out of range",
    `vless://${ID}@example.com:70000`,
    'port: must be an integer 1-65535, got "70000"',
  ],
  [
    "a port that is not a number",
    `vless://${ID}@example.com:https`,
    'port: must be an integer 1-65535, got "https"',
  ],
  [
    "a bad UUID",
    "vless://b831381d-6324-4d53-ad4f-8cda48b3081z@example.com:443",
    'id: must be a UUID (8-4-4-4-12 or 32 hex digits) or a string of 1-30 bytes, got "b831381d-6324-4d53-ad4f-8cda48b3081z"',
  ],
  ["a missing id", "vless://@example.com:443", "id: is required (vless://<id>@<host>:<port>)"],
  ["no id at all", "vless://example.com:443", "id: is required (vless://<id>@<host>:<port>)"],
  [
    "an unknown type",
    `vless://${ID}@example.com:443?type=smoke`,
    'type: unknown type "smoke" (supported: tcp, http, h2, ws)',
  ],
  [
    "the grpc type",
    `vless://${ID}@example.com:443?type=grpc`,
    'type: "grpc" is not supported by dray (supported: tcp, http, h2, ws)',
  ],
  [
    "ws early data that is not a number",
    `vless://${ID}@example.com:443?type=ws&ed=many`,
    'ed: must be a number of bytes, got "many"',
  ],
  [
    "an unbracketed IPv6 host",
    `vless://${ID}@2001:db8::1:443`,
    'host: an IPv6 address must be in brackets, as in vless://<id>@[::1]:443, got "2001:db8::1:443"',
  ],
  [
    "a bracketed non-IPv6 host",
    `vless://${ID}@[example.com]:443`,
    'host: "example.com" is not an IPv6 address',
  ],
  [
    "an empty encryption",
    `vless://${ID}@example.com:443?encryption=`,
    'encryption: must not be empty (use "encryption=none")',
  ],
  [
    "another encryption",
    `vless://${ID}@example.com:443?encryption=aes-128-gcm`,
    'encryption: must be "none", got "aes-128-gcm"',
  ],
  [
    "reality",
    `vless://${ID}@example.com:443?security=reality`,
    'security: "reality" is not supported by dray (supported: none, tls)',
  ],
  [
    "an XTLS flow",
    `vless://${ID}@example.com:443?security=tls&flow=xtls-rprx-vision`,
    'flow: flow "xtls-rprx-vision" (XTLS) is not supported by dray',
  ],
  [
    "http without TLS",
    `vless://${ID}@example.com:443?type=http`,
    'security: the http transport requires TLS ("security=tls"), as in v2ray',
  ],
  [
    "a uTLS fingerprint",
    `vless://${ID}@example.com:443?security=tls&fp=chrome`,
    "fp: uTLS fingerprints are not supported by dray",
  ],
  ["a repeated field", `vless://${ID}@example.com:443?sni=a&sni=b`, "sni: appears more than once"],
  [
    "an unknown parameter",
    `vless://${ID}@example.com:443?colour=blue`,
    "colour: unknown parameter",
  ],
  ["another scheme", `vmess://${ID}@example.com:443`, 'scheme: must be "vless://", got "vmess://"'],
  ["bad percent-encoding", `vless://${ID}@example.com:443#%E2%9C`, "name: bad percent-encoding"],
];

for (const [what, text, message] of ERRORS) {
  Deno.test(`parseVlessLink() names the field for ${what}`, () => {
    assert.throws(() => parseVlessLink(text), {
      name: "SyntaxError",
      message: `Cannot parse share link: ${message}`,
    });
  });
}

Deno.test("linkToV2rayJson() builds a config with SOCKS and HTTP on loopback by default", () => {
  const json = linkToV2rayJson(
    parseVlessLink(`vless://${ID}@example.com:443?type=http&security=tls&path=%2Fray#edge`),
  );
  assert.deepEqual(json, {
    log: { loglevel: "warning" },
    inbounds: [
      { tag: "socks", protocol: "socks", listen: "127.0.0.1", port: 1080, settings: { udp: true } },
      { tag: "http", protocol: "http", listen: "127.0.0.1", port: 8080 },
    ],
    outbounds: [{
      tag: "edge",
      protocol: "vless",
      settings: {
        vnext: [{ address: "example.com", port: 443, users: [{ id: ID, encryption: "none" }] }],
      },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: {},
        httpSettings: { path: "/ray" },
      },
    }],
  });
});

Deno.test("configFromLink() honours --socks/--http addresses and leaving one out", () => {
  const config = configFromLink(`vless://${ID}@example.com:443?security=tls`, {
    socks: { host: "::1", port: 11080 },
    http: null,
  });
  assert.deepEqual(config.inbounds.map((i) => [i.protocol, i.listen, i.port]), [
    ["socks", "::1", 11080],
  ]);
  const ob = config.outbounds[0];
  assert.ok(ob.protocol === "vless" && ob.stream.security === "tls");
  assert.equal(ob.tag, "proxy");
  assert.equal(ob.stream.tls.serverName, "example.com");
});

Deno.test("link → config → link preserves every field of a canonical link", () => {
  const links = [
    `vless://${ID}@example.com:443?type=http&security=tls&sni=www.example.com` +
    "&alpn=h2%2Chttp%2F1.1&host=a.example.com%2Cb.example.com&path=%2Fray" +
    "&allowInsecure=1&encryption=none#My%20Server",
    `vless://${ID}@[2001:db8::1]:8443?type=tcp&security=tls&encryption=none#v6`,
    `vless://${ID}@10.0.0.1:80?type=tcp&security=none&encryption=none`,
  ];
  for (const link of links) {
    assert.equal(linkFromConfig(configFromLink(link)), link);
  }
});

Deno.test("link → config → link keeps the meaning of a non-canonical link", () => {
  const link =
    `vless://example@example.com:443/?security=tls&type=h2&sni=example.com&alpn=h2&insecure=1`;
  const again = linkFromConfig(configFromLink(link));
  assert.equal(
    again,
    "vless://feb54431-301b-52bb-a6dd-e1e93e81bb9e@example.com:443?type=http&security=tls" +
      "&allowInsecure=1&encryption=none",
  );
  const strip = (c: ReturnType<typeof configFromLink>) =>
    JSON.stringify(c, (_k, v) => v instanceof Uint8Array ? Array.from(v) : v);
  assert.equal(strip(configFromLink(again)), strip(configFromLink(link)));
});

Deno.test("formatVlessLink() and parseVlessLink() are inverses", () => {
  const link = parseVlessLink(
    "vless://my%20pass@example.com:443?type=http&security=tls&host=h.example.com" +
      "&path=%2Fa%20b&encryption=none#%23hash%26amp",
  );
  assert.equal(link.id, "my pass");
  assert.equal(link.name, "#hash&amp");
  assert.deepEqual(parseVlessLink(formatVlessLink(link)), link);
});

Deno.test("linkFromConfig() reports what a link cannot carry", () => {
  const config = parseConfigObject({
    inbounds: [{ protocol: "socks", port: 1080 }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: [{ address: "example.com", port: 443, users: [{ id: ID, encryption: "none" }] }],
      },
      streamSettings: {
        network: "h2",
        security: "tls",
        httpSettings: { method: "POST", headers: { "x-a": ["1"] } },
      },
    }],
  });
  const lost: string[] = [];
  const link = linkFromConfig(config, { onLoss: (w) => lost.push(w) });
  assert.equal(link, `vless://${ID}@example.com:443?type=http&security=tls&encryption=none#vless`);
  assert.deepEqual(lost, ["httpSettings.method", "httpSettings.headers"]);
});

Deno.test("linkFromConfig() refuses a config without a vless outbound", () => {
  const config = parseConfigObject({
    inbounds: [{ protocol: "socks", port: 1080 }],
    outbounds: [{ protocol: "freedom" }],
  });
  assert.throws(() => linkFromConfig(config), {
    name: "RangeError",
    message: "Cannot make a share link: the config has no vless outbound",
  });
});

Deno.test("configFromLink() and linkFromConfig() carry ws host, path and Xray's ed", () => {
  const link =
    `vless://${ID}@example.com:443?type=ws&security=tls&host=cdn.test&path=%2Fray&ed=2048`;
  const config = configFromLink(link);
  const ob = config.outbounds[0];
  assert.ok(ob.protocol === "vless" && ob.stream.network === "ws");
  assert.deepEqual(ob.stream.ws, {
    path: "/ray",
    headers: { Host: "cdn.test" },
    maxEarlyData: 2048,
    earlyDataHeaderName: "Sec-WebSocket-Protocol",
  });
  assert.equal(
    linkFromConfig(config),
    `vless://${ID}@example.com:443?type=ws&security=tls&host=cdn.test&path=%2Fray%3Fed%3D2048&encryption=none`,
  );
  // ws without TLS is allowed (behind a TLS-terminating CDN or on a LAN).
  const plain = configFromLink(`vless://${ID}@example.com:80?type=ws`).outbounds[0];
  assert.ok(plain.protocol === "vless" && plain.stream.network === "ws");
  assert.equal(plain.stream.security, "none");
});
