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
