import assert from "node:assert/strict";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { ID, testProblemCases } from "../support/config_samples.ts";

const vnext0 = "outbounds[0].settings.vnext[0]";

testProblemCases([
  ["a port that is a string", (c) => c.outbounds[0].settings.vnext[0].port = "abc", [
    `${vnext0}.port: must be an integer 1-65535, got "abc"`,
  ]],
  ["port 0", (c) => c.outbounds[0].settings.vnext[0].port = 0, [
    `${vnext0}.port: must be an integer 1-65535, got 0`,
  ]],
  ["port 70000", (c) => c.outbounds[0].settings.vnext[0].port = 70000, [
    `${vnext0}.port: must be an integer 1-65535, got 70000`,
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
  ["an unknown outbound protocol", (c) => c.outbounds.push({ protocol: "teleport" }), [
    'outbounds[1].protocol: unknown protocol "teleport" (supported: vless, freedom, blackhole)',
  ]],
  ["vmess", (c) => c.outbounds.push({ protocol: "vmess" }), [
    'outbounds[1].protocol: "vmess" is not supported by dray (supported: vless, freedom, blackhole)',
  ]],
  ["a missing protocol", (c) => delete c.outbounds[0].protocol, [
    "outbounds[0].protocol: is required",
  ]],
  ["mux enabled", (c) => c.outbounds[0].mux = { enabled: true }, [
    "outbounds[0].mux.enabled: mux is not supported by dray",
  ]],
  ["an unknown key in a user", (c) => c.outbounds[0].settings.vnext[0].users[0].alterId = 0, [
    `${vnext0}.users[0].alterId: unknown field`,
  ]],
  ["an outbound that is not an object", (c) => c.outbounds.push("freedom"), [
    'outbounds[1]: must be an object, got "freedom"',
  ]],
]);

testProblemCases([
  ["a freedom userLevel and timeout (no outbound-side idle timer)", (c) => {
    c.outbounds.push({ protocol: "freedom", settings: { userLevel: 1, timeout: 30 } });
  }, [
    "outbounds[1].settings.userLevel: a policy level for freedom (the inbound's applies) is not supported by dray",
    "outbounds[1].settings.timeout: freedom's own idle timeout (set policy.levels.N.connIdle for the inbound's level) is not supported by dray",
  ]],
  ["a freedom redirect without a port separator", (c) => {
    c.outbounds.push({ protocol: "freedom", settings: { redirect: "example.com" } });
  }, [
    'outbounds[1].settings.redirect: must be "host:port" (either may be empty), got "example.com"',
  ]],
]);

Deno.test("parseConfigObject() reads freedom's redirect as v2ray does: 0.0.0.0 and an empty part keep the original", () => {
  const redirects = ["0.0.0.0:8080", ":53", "[::1]:", "10.0.0.1:80"].map((redirect) => {
    const ob = parseConfigObject({
      inbounds: [{ protocol: "socks", port: 1080 }],
      outbounds: [{ protocol: "freedom", settings: { redirect, userLevel: 0, timeout: 0 } }],
    }).outbounds[0];
    assert.ok(ob.protocol === "freedom");
    return ob.settings.redirect;
  });
  assert.deepEqual(redirects, [
    { address: "", port: 8080 },
    { address: "", port: 53 },
    { address: "::1", port: 0 },
    { address: "10.0.0.1", port: 80 },
  ]);
});
