import assert from "node:assert/strict";
import { client, problems, server, testProblemCases } from "../support/config_samples.ts";

testProblemCases([
  ["a fractional inbound port", (c) => c.inbounds[0].port = 1080.5, [
    "inbounds[0].port: must be an integer 1-65535, got 1080.5",
  ]],
  ["a missing inbound port", (c) => delete c.inbounds[0].port, [
    "inbounds[0].port: is required",
  ]],
  ["an inbound port range", (c) => c.inbounds[0].port = "1000-2000", [
    'inbounds[0].port: port ranges ("1000-2000") are not supported by dray',
  ]],
  ["trojan and shadowsocks inbounds", (c) => {
    c.inbounds.push({ protocol: "trojan", port: 1 }, { protocol: "shadowsocks", port: 2 });
  }, [
    'inbounds[1].protocol: "trojan" is not supported by dray (supported: socks, http, mixed, dokodemo-door, tunnel, vless)',
    'inbounds[2].protocol: "shadowsocks" is not supported by dray (supported: socks, http, mixed, dokodemo-door, tunnel, vless)',
  ]],
  ["duplicate inbound ports", (c) => c.inbounds.push({ protocol: "http", port: 1080 }), [
    "inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)",
  ]],
  ["a port taken by a wildcard listener", (c) => {
    c.inbounds.push({ protocol: "http", listen: "0.0.0.0", port: 1080 });
  }, ["inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)"]],
  ["sniffing keys 4.34 lacks and an unknown destOverride", (c) => {
    c.inbounds[0].sniffing = { enabled: true, destOverride: ["tls", "fakedns"], routeOnly: true };
  }, [
    "inbounds[0].sniffing.routeOnly: routeOnly is not supported by dray",
    'inbounds[0].sniffing.destOverride[1]: must be "http" or "tls", got "fakedns"',
  ]],
  ["a listen address that is a name", (c) => c.inbounds[0].listen = "my.host", [
    'inbounds[0].listen: must be an IP address, got "my.host"',
  ]],
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
]);

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

Deno.test("parseConfigObject() refuses streamSettings on a socks inbound", () => {
  const c = client();
  c.inbounds[0].streamSettings = { security: "tls" };
  assert.deepEqual(problems(c), [
    "inbounds[0].streamSettings: streamSettings on a socks inbound are not supported by dray",
  ]);
});

testProblemCases([
  ["socks and dokodemo-door timeouts, and http allowTransparent", (c) => {
    c.inbounds[0].settings = { timeout: 30 };
    c.inbounds.push(
      {
        protocol: "dokodemo-door",
        port: 5353,
        settings: { address: "1.1.1.1", port: 53, timeout: 5 },
      },
      { protocol: "http", port: 8080, settings: { allowTransparent: true } },
    );
  }, [
    "inbounds[0].settings.timeout: the deprecated timeout (use policy.levels.0.connIdle) is not supported by dray",
    "inbounds[1].settings.timeout: the deprecated timeout (use policy.levels.0.connIdle) is not supported by dray",
    "inbounds[2].settings.allowTransparent: transparent requests (origin-form, without a proxy's absolute URL) are not supported by dray",
  ]],
  ["an http timeout at a userLevel other than 0 (v2ray 4.34 ignores it there)", (c) => {
    c.inbounds.push({ protocol: "http", port: 8080, settings: { timeout: 30, userLevel: 2 } });
  }, [
    "inbounds[1].settings.timeout: sets connIdle at userLevel 0 only (as in v2ray 4.34); use policy.levels.2.connIdle for level 2",
  ]],
]);
