import assert from "node:assert/strict";
import { client, ID, problems, server, testProblemCases } from "../support/config_samples.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";

testProblemCases([
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
    'outbounds[0].streamSettings.network: unknown network "carrier-pigeon" (supported: tcp, http, h2, ws)',
  ]],
  ["an unknown wsSettings key", (c) =>
    c.outbounds[0].streamSettings = {
      network: "ws",
      wsSettings: { path: "/", host: "a.test", useBrowserForwarding: true },
    }, [
    "outbounds[0].streamSettings.wsSettings.host: unknown field",
    "outbounds[0].streamSettings.wsSettings.useBrowserForwarding: the browser dialer is not supported by dray",
  ]],
  [
    "ws early data that is not a number",
    (c) => c.outbounds[0].streamSettings = { network: "ws", wsSettings: { path: "/ray?ed=lots" } },
    [
      'outbounds[0].streamSettings.wsSettings.path: ed must be a number of bytes, got "lots"',
    ],
  ],
  [
    "ws early data set twice, a PROXY protocol, handshake headers",
    (c) =>
      c.outbounds[0].streamSettings = {
        network: "ws",
        wsSettings: {
          path: "/ray?ed=2048",
          maxEarlyData: 10,
          acceptProxyProtocol: true,
          headers: { Upgrade: "h2c", "Bad Name": "x" },
        },
      },
    [
      "outbounds[0].streamSettings.wsSettings.acceptProxyProtocol: is a server setting (inbounds only)",
      "outbounds[0].streamSettings.wsSettings.headers.Upgrade: is set by the WebSocket handshake itself",
      "outbounds[0].streamSettings.wsSettings.headers.Bad Name: is not a valid header name",
      "outbounds[0].streamSettings.wsSettings.path: ed and maxEarlyData both set early data; keep one",
    ],
  ],
  ["kcp, quic, domainsocket and grpc", (c) => {
    c.outbounds.push(
      ...["kcp", "quic", "domainsocket", "grpc"].map((network) => ({
        ...client().outbounds[0],
        tag: network,
        streamSettings: { network },
      })),
    );
  }, [
    'outbounds[1].streamSettings.network: "kcp" is not supported by dray (supported: tcp, http, h2, ws)',
    'outbounds[2].streamSettings.network: "quic" is not supported by dray (supported: tcp, http, h2, ws)',
    'outbounds[3].streamSettings.network: "domainsocket" is not supported by dray (supported: tcp, http, h2, ws)',
    'outbounds[4].streamSettings.network: "grpc" is not supported by dray (supported: tcp, http, h2, ws)',
  ]],
  ["xtls security", (c) => c.outbounds[0].streamSettings.security = "xtls", [
    'outbounds[0].streamSettings.security: "xtls" is not supported by dray (supported: none, tls)',
  ]],
  ["an unknown security", (c) => c.outbounds[0].streamSettings.security = "ssl", [
    'outbounds[0].streamSettings.security: unknown security "ssl" (supported: none, tls)',
  ]],
  [
    "wsSettings without network ws",
    (c) => c.outbounds[0].streamSettings.wsSettings = { path: "/" },
    [
      'outbounds[0].streamSettings.wsSettings: is for network "ws", not "http"',
    ],
  ],
  ["sockopt", (c) => c.outbounds[0].streamSettings.sockopt = { mark: 255 }, [
    "outbounds[0].streamSettings.sockopt: sockopt is not supported by dray",
  ]],
  ["an unknown key in streamSettings.dray", (c) => {
    c.outbounds[0].streamSettings.dray = { connectTimeout: 3, dialTimeout: 1 };
  }, ["outbounds[0].streamSettings.dray.dialTimeout: unknown field"]],
  ["a negative connectTimeout", (c) => {
    c.outbounds[0].streamSettings.dray = { connectTimeout: -1 };
  }, ["outbounds[0].streamSettings.dray.connectTimeout: must be an integer 0-3600, got -1"]],
  ["streamTimeout on the tcp transport", (c) => {
    c.outbounds[0].streamSettings = { network: "tcp", security: "tls", dray: { streamTimeout: 1 } };
  }, [
    'outbounds[0].streamSettings.dray.streamTimeout: applies to the http transport only (streams on a shared connection); network is "tcp"',
  ]],
  ["TCP header obfuscation", (c) => {
    c.outbounds[0].streamSettings = { network: "tcp", tcpSettings: { header: { type: "http" } } };
  }, [
    'outbounds[0].streamSettings.tcpSettings.header.type: TCP header obfuscation ("http") is not supported by dray',
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
]);

Deno.test("parseConfigObject() defaults tcp+tls alpn to v2ray's h2, http/1.1", () => {
  const c = client();
  c.outbounds[0].streamSettings = { network: "tcp", security: "tls" };
  const ob = parseConfigObject(c).outbounds[0];
  assert.ok(ob.protocol === "vless" && ob.stream.security === "tls");
  assert.deepEqual(ob.stream.tls.alpn, ["h2", "http/1.1"]);
  c.outbounds[0].streamSettings = undefined;
  const plain = parseConfigObject(c).outbounds[0];
  assert.ok(plain.protocol === "vless");
  assert.deepEqual(plain.stream, {
    network: "tcp",
    security: "none",
    timeouts: { connectTimeout: 4, streamTimeout: 2 },
  });
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

Deno.test("parseConfigObject() allows a vless inbound over h2c (http without TLS)", () => {
  const c = server();
  c.inbounds[0].streamSettings = { network: "h2", httpSettings: { host: "a.test,b.test" } };
  const ib = parseConfigObject(c).inbounds[0];
  assert.ok(ib.protocol === "vless");
  assert.deepEqual(ib.stream, {
    network: "http",
    security: "none",
    http: { host: ["a.test", "b.test"], path: "/" },
    acceptProxyProtocol: false,
  });
});

Deno.test("parseConfigObject() reads dray's connect and stream deadlines from streamSettings.dray", () => {
  const c = client();
  c.outbounds[0].streamSettings.dray = { connectTimeout: 3, streamTimeout: 0 };
  const ob = parseConfigObject(c).outbounds[0];
  assert.ok(ob.protocol === "vless");
  assert.deepEqual(ob.stream.timeouts, { connectTimeout: 3, streamTimeout: 0 });
});

Deno.test("parseConfigObject() refuses streamSettings.dray on an inbound", () => {
  const c = server();
  c.inbounds[0].streamSettings.dray = { connectTimeout: 3 };
  assert.deepEqual(problems(c), [
    "inbounds[0].streamSettings.dray: streamSettings.dray (outbound deadlines) on an inbound is not supported by dray",
  ]);
});

Deno.test("parseConfigObject() reads a 4.34 ws config, Xray's ?ed=N and v2fly's early data", () => {
  const c = client();
  c.outbounds[0].streamSettings = {
    network: "ws",
    security: "tls",
    wsSettings: { path: "ray?x=1&ed=2048", headers: { Host: "cdn.test", "User-Agent": "u" } },
  };
  const ob = parseConfigObject(c).outbounds[0];
  assert.ok(ob.protocol === "vless" && ob.stream.network === "ws" && ob.stream.security === "tls");
  assert.deepEqual(ob.stream.ws, {
    path: "/ray?x=1",
    headers: { Host: "cdn.test", "User-Agent": "u" },
    maxEarlyData: 2048,
    earlyDataHeaderName: "Sec-WebSocket-Protocol",
  });
  // v2ray's ws dialer offers ALPN http/1.1 when none is configured.
  assert.deepEqual(ob.stream.tls.alpn, ["http/1.1"]);

  const s = server();
  s.inbounds[0].streamSettings = {
    network: "ws",
    wsSettings: { Path: "/old", maxEarlyData: 1024, earlyDataHeaderName: "X-Early" },
  };
  const ib = parseConfigObject(s).inbounds[0];
  assert.ok(ib.protocol === "vless");
  assert.deepEqual(ib.stream, {
    network: "ws",
    security: "none",
    ws: { path: "/old", headers: {}, maxEarlyData: 1024, earlyDataHeaderName: "X-Early" },
    acceptProxyProtocol: false,
  });
});

Deno.test("parseConfigObject() reads acceptProxyProtocol from the settings of an inbound's network", () => {
  const stream = (streamSettings: Record<string, unknown>) => {
    const c = server();
    c.inbounds[0].streamSettings = streamSettings;
    const ib = parseConfigObject(c).inbounds[0];
    assert.ok(ib.protocol === "vless");
    return ib.stream;
  };
  assert.equal(
    stream({ network: "tcp", tcpSettings: { acceptProxyProtocol: true } }).acceptProxyProtocol,
    true,
  );
  assert.equal(
    stream({ network: "ws", wsSettings: { acceptProxyProtocol: true } }).acceptProxyProtocol,
    true,
  );
  assert.equal(stream({ network: "ws" }).acceptProxyProtocol, false);
});

Deno.test("parseConfigObject() refuses acceptProxyProtocol where v2ray would ignore it, and a non-boolean", () => {
  const c = server();
  c.inbounds[0].streamSettings = { network: "ws", tcpSettings: { acceptProxyProtocol: true } };
  assert.deepEqual(problems(c), [
    'inbounds[0].streamSettings.tcpSettings.acceptProxyProtocol: is for network "tcp", not "ws" (the ws one is wsSettings.acceptProxyProtocol)',
  ]);
  const h = server();
  h.inbounds[0].streamSettings = {
    network: "h2",
    httpSettings: {},
    tcpSettings: { acceptProxyProtocol: true },
  };
  assert.deepEqual(problems(h), [
    'inbounds[0].streamSettings.tcpSettings.acceptProxyProtocol: is for network "tcp", not "http"',
  ]);
  const b = server();
  b.inbounds[0].streamSettings = { network: "tcp", tcpSettings: { acceptProxyProtocol: "yes" } };
  assert.deepEqual(problems(b), [
    'inbounds[0].streamSettings.tcpSettings.acceptProxyProtocol: must be true or false, got "yes"',
  ]);
  const o = client();
  o.outbounds[0].streamSettings = { network: "tcp", tcpSettings: { acceptProxyProtocol: true } };
  assert.deepEqual(problems(o), [
    "outbounds[0].streamSettings.tcpSettings.acceptProxyProtocol: is a server setting (inbounds only)",
  ]);
});
