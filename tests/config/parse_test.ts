import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  insecureHosts,
  parseConfig,
  parseConfigObject,
  type ParseConfigOptions,
} from "../../lib/config/parse.ts";
import { DEFAULT_LEVEL_POLICY, levelPolicy } from "../../lib/config/types.ts";

const CERTS = fileURLToPath(new URL("../support/certs/", import.meta.url));
const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";

// deno-lint-ignore no-explicit-any
type Json = any;

/** A valid client config: SOCKS in, VLESS over h2+TLS out. */
function client(): Json {
  return {
    inbounds: [{ protocol: "socks", port: 1080 }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: [{ address: "example.com", port: 443, users: [{ id: ID, encryption: "none" }] }],
      },
      streamSettings: { network: "h2", security: "tls" },
    }],
  };
}

/** A valid server config: VLESS over h2+TLS in, freedom out. */
function server(): Json {
  return {
    inbounds: [{
      protocol: "vless",
      listen: "127.0.0.1",
      port: 8443,
      settings: { clients: [{ id: ID }], decryption: "none" },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: { certificates: [{ certificateFile: "server.pem", keyFile: "server.key" }] },
        httpSettings: { path: "/ray" },
      },
    }],
    outbounds: [{ protocol: "freedom" }],
  };
}

function problems(config: Json, opts: ParseConfigOptions = { baseDir: CERTS }): string[] {
  try {
    parseConfigObject(config, opts);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail("expected a ConfigError");
}

const vnext0 = "outbounds[0].settings.vnext[0]";

/** [what, change to a valid config, the exact problems]. */
const CASES: Array<[string, (c: Json) => void, string[]]> = [
  ["a port that is a string", (c) => c.outbounds[0].settings.vnext[0].port = "abc", [
    `${vnext0}.port: must be an integer 1-65535, got "abc"`,
  ]],
  ["port 0", (c) => c.outbounds[0].settings.vnext[0].port = 0, [
    `${vnext0}.port: must be an integer 1-65535, got 0`,
  ]],
  ["port 70000", (c) => c.outbounds[0].settings.vnext[0].port = 70000, [
    `${vnext0}.port: must be an integer 1-65535, got 70000`,
  ]],
  ["a fractional inbound port", (c) => c.inbounds[0].port = 1080.5, [
    "inbounds[0].port: must be an integer 1-65535, got 1080.5",
  ]],
  ["a missing inbound port", (c) => delete c.inbounds[0].port, [
    "inbounds[0].port: is required",
  ]],
  ["an inbound port range", (c) => c.inbounds[0].port = "1000-2000", [
    'inbounds[0].port: port ranges ("1000-2000") are not supported by dray',
  ]],
  ["a bad UUID", (c) => c.outbounds[0].settings.vnext[0].users[0].id = "b831381d-6324-4d53-ad4f", [
    `${vnext0}.users[0].id: looks like a UUID but is not one (8-4-4-4-12 hex digits), ` +
    'got "b831381d-6324-4d53-ad4f"',
  ]],
  ["an id that is not a string", (c) => c.outbounds[0].settings.vnext[0].users[0].id = 42, [
    `${vnext0}.users[0].id: must be a UUID (8-4-4-4-12 or 32 hex digits) or a string of ` +
    "1-30 bytes, got 42",
  ]],
  ["a missing id", (c) => delete c.outbounds[0].settings.vnext[0].users[0].id, [
    `${vnext0}.users[0].id: is required`,
  ]],
  ["missing vnext", (c) => delete c.outbounds[0].settings.vnext, [
    "outbounds[0].settings.vnext: is required",
  ]],
  ["empty vnext", (c) => c.outbounds[0].settings.vnext = [], [
    "outbounds[0].settings.vnext: must not be empty",
  ]],
  ["missing settings on a vless outbound", (c) => delete c.outbounds[0].settings, [
    "outbounds[0].settings.vnext: is required",
  ]],
  ["a missing address", (c) => delete c.outbounds[0].settings.vnext[0].address, [
    `${vnext0}.address: is required`,
  ]],
  ["missing users", (c) => delete c.outbounds[0].settings.vnext[0].users, [
    `${vnext0}.users: is required`,
  ]],
  ["empty users", (c) => c.outbounds[0].settings.vnext[0].users = [], [
    `${vnext0}.users: must not be empty`,
  ]],
  ["users that is not an array", (c) => c.outbounds[0].settings.vnext[0].users = { id: ID }, [
    `${vnext0}.users: must be an array, got an object`,
  ]],
  ["vnext that is a string", (c) => c.outbounds[0].settings.vnext = "example.com", [
    'outbounds[0].settings.vnext: must be an array, got "example.com"',
  ]],
  [
    "encryption other than none",
    (c) => c.outbounds[0].settings.vnext[0].users[0].encryption = "auto",
    [
      `${vnext0}.users[0].encryption: must be "none", got "auto"`,
    ],
  ],
  ["missing encryption", (c) => delete c.outbounds[0].settings.vnext[0].users[0].encryption, [
    `${vnext0}.users[0].encryption: is required and must be "none", as in v2ray`,
  ]],
  ["an XTLS flow", (c) => c.outbounds[0].settings.vnext[0].users[0].flow = "xtls-rprx-direct", [
    `${vnext0}.users[0].flow: flow "xtls-rprx-direct" (XTLS) is not supported by dray`,
  ]],
  ["h2 without TLS", (c) => delete c.outbounds[0].streamSettings.security, [
    'outbounds[0].streamSettings.security: the http transport requires TLS ("security": "tls"), as in v2ray',
  ]],
  [
    "http with security none",
    (c) => c.outbounds[0].streamSettings = { network: "http", security: "none" },
    [
      'outbounds[0].streamSettings.security: the http transport requires TLS ("security": "tls"), as in v2ray',
    ],
  ],
  ["an unknown network", (c) => c.outbounds[0].streamSettings.network = "carrier-pigeon", [
    'outbounds[0].streamSettings.network: unknown network "carrier-pigeon" (supported: tcp, http, h2)',
  ]],
  ["the ws network", (c) => c.outbounds[0].streamSettings.network = "ws", [
    'outbounds[0].streamSettings.network: "ws" is not supported by dray (supported: tcp, http, h2)',
  ]],
  ["kcp, quic, domainsocket and grpc", (c) => {
    c.outbounds.push(
      ...["kcp", "quic", "domainsocket", "grpc"].map((network) => ({
        ...client().outbounds[0],
        tag: network,
        streamSettings: { network },
      })),
    );
  }, [
    'outbounds[1].streamSettings.network: "kcp" is not supported by dray (supported: tcp, http, h2)',
    'outbounds[2].streamSettings.network: "quic" is not supported by dray (supported: tcp, http, h2)',
    'outbounds[3].streamSettings.network: "domainsocket" is not supported by dray (supported: tcp, http, h2)',
    'outbounds[4].streamSettings.network: "grpc" is not supported by dray (supported: tcp, http, h2)',
  ]],
  ["xtls security", (c) => c.outbounds[0].streamSettings.security = "xtls", [
    'outbounds[0].streamSettings.security: "xtls" is not supported by dray (supported: none, tls)',
  ]],
  ["an unknown security", (c) => c.outbounds[0].streamSettings.security = "ssl", [
    'outbounds[0].streamSettings.security: unknown security "ssl" (supported: none, tls)',
  ]],
  ["wsSettings", (c) => c.outbounds[0].streamSettings.wsSettings = { path: "/" }, [
    "outbounds[0].streamSettings.wsSettings: the ws transport is not supported by dray",
  ]],
  ["sockopt", (c) => c.outbounds[0].streamSettings.sockopt = { mark: 255 }, [
    "outbounds[0].streamSettings.sockopt: sockopt is not supported by dray",
  ]],
  ["TCP header obfuscation", (c) => {
    c.outbounds[0].streamSettings = { network: "tcp", tcpSettings: { header: { type: "http" } } };
  }, [
    'outbounds[0].streamSettings.tcpSettings.header.type: TCP header obfuscation ("http") is not supported by dray',
  ]],
  ["an unknown outbound protocol", (c) => c.outbounds.push({ protocol: "teleport" }), [
    'outbounds[1].protocol: unknown protocol "teleport" (supported: vless, freedom, blackhole)',
  ]],
  ["vmess", (c) => c.outbounds.push({ protocol: "vmess" }), [
    'outbounds[1].protocol: "vmess" is not supported by dray (supported: vless, freedom, blackhole)',
  ]],
  ["trojan and shadowsocks inbounds", (c) => {
    c.inbounds.push({ protocol: "trojan", port: 1 }, { protocol: "shadowsocks", port: 2 });
  }, [
    'inbounds[1].protocol: "trojan" is not supported by dray (supported: socks, http, mixed, dokodemo-door, tunnel, vless)',
    'inbounds[2].protocol: "shadowsocks" is not supported by dray (supported: socks, http, mixed, dokodemo-door, tunnel, vless)',
  ]],
  ["a missing protocol", (c) => delete c.outbounds[0].protocol, [
    "outbounds[0].protocol: is required",
  ]],
  ["duplicate inbound ports", (c) => c.inbounds.push({ protocol: "http", port: 1080 }), [
    "inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)",
  ]],
  ["a port taken by a wildcard listener", (c) => {
    c.inbounds.push({ protocol: "http", listen: "0.0.0.0", port: 1080 });
  }, ["inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)"]],
  ["duplicate tags", (c) => {
    c.outbounds[0].tag = "proxy";
    c.outbounds.push({ protocol: "freedom", tag: "proxy" });
  }, ['outbounds[1].tag: "proxy" is already used by outbounds[0]']],
  ["routing rules", (c) => c.routing = { rules: [{ type: "field", outboundTag: "direct" }] }, [
    "routing.rules: routing rules are not supported by dray yet (everything goes to the first outbound)",
  ]],
  ["mux enabled", (c) => c.outbounds[0].mux = { enabled: true }, [
    "outbounds[0].mux.enabled: mux is not supported by dray",
  ]],
  ["sniffing enabled", (c) => c.inbounds[0].sniffing = { enabled: true }, [
    "inbounds[0].sniffing.enabled: sniffing is not supported by dray",
  ]],
  ["top-level dns and an unknown key", (c) => {
    c.dns = { servers: ["1.1.1.1"] };
    c.outbound = {};
    c.inbonds = [];
  }, [
    "dns: the built-in DNS server (dns) is not supported by dray",
    "outbound: the pre-4.0 outbound block (use outbounds[]) is not supported by dray",
    "inbonds: unknown field",
  ]],
  ["an unknown key in a user", (c) => c.outbounds[0].settings.vnext[0].users[0].alterId = 0, [
    `${vnext0}.users[0].alterId: unknown field`,
  ]],
  ["no outbounds", (c) => c.outbounds = [], [
    "outbounds: must have at least one outbound (the first is the default route)",
  ]],
  ["no inbounds", (c) => delete c.inbounds, ["inbounds: is required"]],
  ["wrong types everywhere", (c) => {
    c.log = { loglevel: "loud", access: 5 };
    c.inbounds[0].settings = { udp: "yes", auth: "password", accounts: [] };
    c.outbounds[0].streamSettings.tlsSettings = { allowInsecure: 1, alpn: 7 };
  }, [
    'log.loglevel: must be one of "debug", "info", "warning", "error", "none", got "loud"',
    "log.access: must be a string, got 5",
    'inbounds[0].settings.udp: must be true or false, got "yes"',
    'inbounds[0].settings.accounts: must not be empty when "auth" is "password"',
    "outbounds[0].streamSettings.tlsSettings.alpn: must be a string or an array of strings, got 7",
    "outbounds[0].streamSettings.tlsSettings.allowInsecure: must be true or false, got 1",
  ]],
  ["an outbound that is not an object", (c) => c.outbounds.push("freedom"), [
    'outbounds[1]: must be an object, got "freedom"',
  ]],
  ["a listen address that is a name", (c) => c.inbounds[0].listen = "my.host", [
    'inbounds[0].listen: must be an IP address, got "my.host"',
  ]],
  ["alpn without h2 on the http transport", (c) => {
    c.outbounds[0].streamSettings.tlsSettings = { alpn: ["http/1.1"] };
  }, [
    'outbounds[0].streamSettings.tlsSettings.alpn: the http transport needs "h2" in alpn, got ["http/1.1"]',
  ]],
  ["connection-specific and Host headers", (c) => {
    c.outbounds[0].streamSettings.httpSettings = {
      headers: { Connection: ["close"], Host: ["x"], "X-Ok": "yes" },
    };
  }, [
    "outbounds[0].streamSettings.httpSettings.headers.Connection: connection-specific headers are not allowed in HTTP/2 (RFC 9113 §8.2.2)",
    'outbounds[0].streamSettings.httpSettings.headers.Host: set the Host with "host", not in headers',
  ]],
  [
    "a policy level with a negative timeout",
    (c) => c.policy = { levels: { "0": { handshake: -1 } } },
    [
      "policy.levels.0.handshake: must be an integer 0-4294967295, got -1",
    ],
  ],
  ["dokodemo-door without address and with followRedirect", (c) => {
    c.inbounds.push({
      protocol: "dokodemo-door",
      port: 5353,
      settings: { port: 53, network: "tcp,icmp", followRedirect: true },
    });
  }, [
    "inbounds[1].settings.followRedirect: transparent proxying (followRedirect) is not supported by dray",
    "inbounds[1].settings.address: is required",
    'inbounds[1].settings.network: must be "tcp", "udp" or "tcp,udp", got "tcp,icmp"',
  ]],
];

for (const [what, change, expected] of CASES) {
  Deno.test(`parseConfigObject() reports ${what}`, () => {
    const c = client();
    change(c);
    assert.deepEqual(problems(c), expected);
  });
}

Deno.test("parseConfigObject() collects every problem of a config in one ConfigError", () => {
  const c = client();
  c.outbounds[0].settings.vnext[0].port = "abc";
  c.outbounds[0].settings.vnext[0].users[0].encryption = "auto";
  delete c.outbounds[0].streamSettings.security;
  c.inbounds.push({ protocol: "http", port: 1080 });
  assert.throws(() => parseConfigObject(c, { baseDir: CERTS }), ConfigError);
  assert.deepEqual(problems(c), [
    "inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)",
    `${vnext0}.port: must be an integer 1-65535, got "abc"`,
    `${vnext0}.users[0].encryption: must be "none", got "auto"`,
    'outbounds[0].streamSettings.security: the http transport requires TLS ("security": "tls"), as in v2ray',
  ]);
});

Deno.test("ConfigError carries the problems and joins them into its message", () => {
  const e = new ConfigError(["a: x", "b: y"]);
  assert.equal(e.name, "ConfigError");
  assert.equal(e.message, "a: x\nb: y");
  assert.deepEqual(e.problems, ["a: x", "b: y"]);
  assert.ok(e instanceof Error);
});

Deno.test("parseConfig() reports truncated JSON with its line and column", () => {
  const text = '{\n  "inbounds": [\n    { "port": 1080 }\n';
  assert.throws(() => parseConfig(text), {
    name: "ConfigError",
    message: "Cannot parse config: unexpected end of input at line 4 column 1",
    problems: ["Cannot parse config: unexpected end of input at line 4 column 1"],
  });
});

Deno.test("parseConfig() accepts comments and fills every default", () => {
  const config = parseConfig(
    `// a client
{
  "inbounds": [{ "protocol": "socks", "port": 1080 }], # v2ray also takes hash comments
  /* the server */
  "outbounds": [{
    "protocol": "vless",
    "settings": { "vnext": [{ "address": "example.com", "port": 443,
      "users": [{ "id": "${ID}", "encryption": "none" }] }] },
    "streamSettings": { "network": "h2", "security": "tls" }
  }]
}`,
  );
  assert.deepEqual(config.log, { loglevel: "warning", access: "", error: "" });
  assert.deepEqual(config.policy.levels, { 0: { ...DEFAULT_LEVEL_POLICY } });
  assert.deepEqual(DEFAULT_LEVEL_POLICY, {
    handshake: 60,
    connIdle: 300,
    uplinkOnly: 1,
    downlinkOnly: 1,
  });
  const ib = config.inbounds[0];
  assert.equal(ib.protocol, "socks");
  if (ib.protocol !== "socks") return;
  assert.equal(ib.listen, "127.0.0.1");
  assert.equal(ib.tag, "socks");
  assert.deepEqual(ib.settings, { auth: "noauth", accounts: [], udp: false, ip: "", userLevel: 0 });
  const ob = config.outbounds[0];
  assert.equal(ob.protocol, "vless");
  if (ob.protocol !== "vless") return;
  assert.equal(ob.tag, "vless");
  assert.equal(ob.servers[0].users[0].id, ID);
  assert.equal(ob.servers[0].users[0].idBytes.length, 16);
  assert.equal(ob.servers[0].users[0].idBytes[0], 0xb8);
  assert.deepEqual(ob.stream, {
    network: "http",
    security: "tls",
    tls: {
      serverName: "example.com",
      allowInsecure: false,
      alpn: ["h2"],
      caCerts: [],
      certificates: [],
      disableSystemRoot: false,
    },
    http: {
      host: ["example.com"],
      path: "/",
      method: "PUT",
      headers: {},
      readIdleTimeout: 0,
      healthCheckTimeout: 15,
    },
  });
});

Deno.test("parseConfigObject() reads every supported client option", () => {
  const c = client();
  c.log = { loglevel: "debug", access: "/tmp/a.log", error: "none" };
  c.inbounds = [
    {
      protocol: "socks",
      tag: "in-socks",
      listen: "::1",
      port: "1080",
      settings: { auth: "password", accounts: [{ user: "u", pass: "p" }], udp: true, ip: "::1" },
    },
    { protocol: "http", port: 8080, settings: { timeout: 30, allowTransparent: false } },
    { protocol: "mixed", port: 1081 },
    {
      protocol: "tunnel",
      port: 5353,
      settings: { address: "1.1.1.1", port: 53, network: "tcp,udp" },
    },
  ];
  c.outbounds[0].tag = "proxy";
  c.outbounds[0].settings.vnext[0].users[0].id = "example";
  c.outbounds[0].streamSettings = {
    network: "http",
    security: "tls",
    tlsSettings: {
      serverName: "www.example.com",
      allowInsecure: true,
      alpn: "h2,http/1.1",
      certificates: [{ usage: "verify", certificateFile: "ca.pem" }],
    },
    httpSettings: {
      host: ["a.example.com", "b.example.com"],
      path: "ray",
      method: "POST",
      headers: { "User-Agent": ["dray"], "X-Two": "2" },
      read_idle_timeout: 10,
      health_check_timeout: 5,
    },
  };
  c.outbounds.push(
    {
      protocol: "freedom",
      tag: "direct",
      settings: { domainStrategy: "useipv4", redirect: "[::1]:80" },
    },
    { protocol: "blackhole", settings: { response: { type: "http" } } },
  );
  c.policy = { levels: { "1": { connIdle: 10 } } };
  c.routing = { domainStrategy: "AsIs", rules: [] };
  const config = parseConfigObject(c, { baseDir: CERTS });
  assert.deepEqual(config.log, { loglevel: "debug", access: "/tmp/a.log", error: "none" });
  assert.deepEqual(config.inbounds.map((i) => [i.protocol, i.tag, i.listen, i.port]), [
    ["socks", "in-socks", "::1", 1080],
    ["http", "http", "127.0.0.1", 8080],
    ["mixed", "mixed", "127.0.0.1", 1081],
    ["dokodemo-door", "tunnel", "127.0.0.1", 5353],
  ]);
  const [socks, http, , tunnel] = config.inbounds;
  assert.ok(socks.protocol === "socks" && http.protocol === "http");
  assert.deepEqual(socks.settings.accounts, [{ user: "u", pass: "p" }]);
  assert.equal(socks.settings.udp, true);
  assert.equal(http.settings.timeout, 30);
  assert.ok(tunnel.protocol === "dokodemo-door");
  assert.deepEqual(tunnel.settings, {
    address: "1.1.1.1",
    port: 53,
    network: ["tcp", "udp"],
    userLevel: 0,
  });
  const [proxy, direct, block] = config.outbounds;
  assert.ok(proxy.protocol === "vless" && proxy.stream.network === "http");
  assert.equal(proxy.tag, "proxy");
  assert.equal(proxy.servers[0].users[0].id, "feb54431-301b-52bb-a6dd-e1e93e81bb9e");
  assert.equal(proxy.stream.tls.serverName, "www.example.com");
  assert.equal(proxy.stream.tls.allowInsecure, true);
  assert.deepEqual(proxy.stream.tls.alpn, ["h2", "http/1.1"]);
  assert.equal(proxy.stream.tls.caCerts.length, 1);
  assert.match(proxy.stream.tls.caCerts[0], /^-----BEGIN CERTIFICATE-----/);
  assert.deepEqual(proxy.stream.http, {
    host: ["a.example.com", "b.example.com"],
    path: "/ray",
    method: "POST",
    headers: { "user-agent": ["dray"], "x-two": ["2"] },
    readIdleTimeout: 10,
    healthCheckTimeout: 5,
  });
  assert.deepEqual(direct, {
    protocol: "freedom",
    tag: "direct",
    settings: { domainStrategy: "UseIPv4", redirect: { address: "::1", port: 80 }, userLevel: 0 },
  });
  assert.deepEqual(block, {
    protocol: "blackhole",
    tag: "blackhole",
    settings: { response: "http" },
  });
  assert.deepEqual(levelPolicy(config, 1), {
    handshake: 60,
    connIdle: 10,
    uplinkOnly: 1,
    downlinkOnly: 1,
  });
  assert.deepEqual(levelPolicy(config, 7), DEFAULT_LEVEL_POLICY);
  assert.deepEqual(insecureHosts(config), ["www.example.com"]);
});

Deno.test("parseConfigObject() defaults tcp+tls alpn to v2ray's h2, http/1.1", () => {
  const c = client();
  c.outbounds[0].streamSettings = { network: "tcp", security: "tls" };
  const ob = parseConfigObject(c).outbounds[0];
  assert.ok(ob.protocol === "vless" && ob.stream.security === "tls");
  assert.deepEqual(ob.stream.tls.alpn, ["h2", "http/1.1"]);
  c.outbounds[0].streamSettings = undefined;
  const plain = parseConfigObject(c).outbounds[0];
  assert.ok(plain.protocol === "vless");
  assert.deepEqual(plain.stream, { network: "tcp", security: "none" });
});

Deno.test("parseConfigObject() needs serverName and host when servers differ in address", () => {
  const c = client();
  c.outbounds[0].settings.vnext.push({
    address: "example.org",
    port: 443,
    users: [{ id: ID, encryption: "none" }],
  });
  assert.deepEqual(problems(c), [
    "outbounds[0].streamSettings.tlsSettings.serverName: is required when vnext lists servers with different addresses",
    "outbounds[0].streamSettings.httpSettings.host: is required when vnext lists servers with different addresses",
  ]);
});

Deno.test("parseConfigObject() reads a server config with certificates relative to baseDir", () => {
  const config = parseConfigObject(server(), { baseDir: CERTS });
  const ib = config.inbounds[0];
  assert.ok(ib.protocol === "vless");
  assert.equal(ib.settings.clients[0].id, ID);
  assert.deepEqual(ib.settings.clients[0].idBytes.length, 16);
  assert.ok(ib.stream.network === "http" && ib.stream.security === "tls");
  assert.deepEqual(ib.stream.http, { host: [], path: "/ray" });
  assert.deepEqual(ib.stream.tls.alpn, ["h2"]);
  assert.equal(ib.stream.tls.certificates.length, 1);
  assert.equal(
    ib.stream.tls.certificates[0].certificate,
    Deno.readTextFileSync(`${CERTS}server.pem`),
  );
  assert.match(ib.stream.tls.certificates[0].key, /PRIVATE KEY/);
  assert.equal(config.outbounds[0].tag, "freedom");
});

Deno.test("parseConfigObject() allows a vless inbound over h2c (http without TLS)", () => {
  const c = server();
  c.inbounds[0].streamSettings = { network: "h2", httpSettings: { host: "a.test,b.test" } };
  const ib = parseConfigObject(c).inbounds[0];
  assert.ok(ib.protocol === "vless");
  assert.deepEqual(ib.stream, {
    network: "http",
    security: "none",
    http: { host: ["a.test", "b.test"], path: "/" },
  });
});

Deno.test("parseConfigObject() takes inline PEM lines as v2ray does", () => {
  const c = server();
  const lines = (f: string) => Deno.readTextFileSync(`${CERTS}${f}`).trimEnd().split("\n");
  c.inbounds[0].streamSettings.tlsSettings.certificates = [{
    certificate: lines("server.pem"),
    key: lines("server.key"),
  }];
  const ib = parseConfigObject(c, { baseDir: "/nonexistent" }).inbounds[0];
  assert.ok(ib.protocol === "vless" && ib.stream.security === "tls");
  assert.equal(ib.stream.tls.certificates[0].certificate, lines("server.pem").join("\n"));
});

Deno.test("parseConfigObject() names the field and the path of an unreadable certificate", () => {
  const c = server();
  c.inbounds[0].streamSettings.tlsSettings.certificates[0].certificateFile = "missing.pem";
  const tp = "inbounds[0].streamSettings.tlsSettings.certificates[0]";
  assert.deepEqual(
    problems(c, {
      baseDir: "/etc/dray",
      readFile: (p) => {
        if (p === "/etc/dray/server.key") return "-----BEGIN PRIVATE KEY-----\n";
        throw new Deno.errors.NotFound(`No such file or directory (os error 2): ${p}`);
      },
    }),
    [
      `${tp}.certificateFile: cannot read "/etc/dray/missing.pem": No such file or directory ` +
      "(os error 2): /etc/dray/missing.pem",
    ],
  );
});

Deno.test("parseConfigObject() reports bad server settings", () => {
  const c = server();
  c.inbounds[0].settings = {
    clients: [{ id: "nope-".repeat(8), flow: "xtls-rprx-vision" }],
    decryption: "aes",
    fallbacks: [{ dest: 80 }],
  };
  c.inbounds[0].streamSettings.tlsSettings.certificates = [{
    certificate: ["not a cert"],
    key: [],
  }];
  const s = "inbounds[0].settings";
  const tp = "inbounds[0].streamSettings.tlsSettings.certificates[0]";
  assert.deepEqual(problems(c), [
    `${s}.fallbacks: fallbacks are not supported by dray`,
    `${s}.decryption: must be "none", got "aes"`,
    `${s}.clients[0].id: must be a UUID (8-4-4-4-12 or 32 hex digits) or a string of 1-30 bytes, ` +
    `got "${"nope-".repeat(8)}"`,
    `${s}.clients[0].flow: flow "xtls-rprx-vision" (XTLS) is not supported by dray`,
    `${tp}.certificate: does not contain a PEM certificate`,
    `${tp}.key: does not contain a PEM private key`,
  ]);
});

Deno.test("parseConfigObject() needs a certificate for a TLS inbound", () => {
  const c = server();
  c.inbounds[0].streamSettings.tlsSettings = {};
  delete c.inbounds[0].settings.decryption;
  assert.deepEqual(problems(c), [
    'inbounds[0].settings.decryption: is required and must be "none", as in v2ray',
    "inbounds[0].streamSettings.tlsSettings.certificates: needs a certificate and key " +
    "(certificateFile and keyFile) for a TLS inbound",
  ]);
});

Deno.test("parseConfigObject() refuses streamSettings on a socks inbound", () => {
  const c = client();
  c.inbounds[0].streamSettings = { security: "tls" };
  assert.deepEqual(problems(c), [
    "inbounds[0].streamSettings: streamSettings on a socks inbound are not supported by dray",
  ]);
});

Deno.test("insecureHosts() lists only TLS servers with allowInsecure", () => {
  const c = client();
  assert.deepEqual(insecureHosts(parseConfigObject(c)), []);
  c.outbounds[0].streamSettings.tlsSettings = { allowInsecure: true };
  c.outbounds.push({
    ...client().outbounds[0],
    tag: "second",
    settings: {
      vnext: [{ address: "10.0.0.1", port: 443, users: [{ id: ID, encryption: "none" }] }],
    },
    streamSettings: { security: "tls", tlsSettings: { allowInsecure: true } },
  });
  assert.deepEqual(insecureHosts(parseConfigObject(c)), ["example.com", "10.0.0.1"]);
});
