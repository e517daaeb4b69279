import assert from "node:assert/strict";
import { CERTS, client, ID, problems, testProblemCases } from "../support/config_samples.ts";
import { ConfigError, parseConfig, parseConfigObject } from "../../lib/config/parse.ts";
import { insecureHosts } from "../../lib/config/tls_settings.ts";
import { DEFAULT_LEVEL_POLICY, levelPolicy } from "../../lib/config/types.ts";

const vnext0 = "outbounds[0].settings.vnext[0]";

testProblemCases([
  ["duplicate tags", (c) => {
    c.outbounds[0].tag = "proxy";
    c.outbounds.push({ protocol: "freedom", tag: "proxy" });
  }, ['outbounds[1].tag: "proxy" is already used by outbounds[0]']],
  ["a routing rule without conditions", (c) => {
    c.routing = { rules: [{ type: "field", outboundTag: "vless" }] };
  }, [
    "routing.rules[0]: has no conditions (v2ray: this rule has no effective fields)",
  ]],
  ["top-level dns and an unknown key", (c) => {
    c.dns = { servers: ["1.1.1.1"] };
    c.outbound = {};
    c.inbonds = [];
  }, [
    "outbound: the pre-4.0 outbound block (use outbounds[]) is not supported by dray",
    "inbonds: unknown field",
    "dns.servers: DNS servers (dray resolves with dns.hosts and the system resolver) are not supported by dray",
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
  [
    "a policy level with a negative timeout",
    (c) => c.policy = { levels: { "0": { handshake: -1 } } },
    [
      "policy.levels.0.handshake: must be an integer 0-4294967295, got -1",
    ],
  ],
]);

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
    timeouts: { connectTimeout: 4, streamTimeout: 2 },
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
    settings: { domainStrategy: "UseIPv4", redirect: { address: "::1", port: 80 } },
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
