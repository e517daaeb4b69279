/**
 * Config honesty: every field of the parsed Config (types.ts) either reaches the running app or
 * is fixed by the parser to the only value dray supports. A field added to types.ts without a row
 * here fails the first test; a row whose consumer stops reading it fails the second; the refused
 * fields are checked by name in the other tests of this folder.
 */
import assert from "node:assert/strict";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { CERTS, ID, type Json } from "../support/config_samples.ts";
import { freePort, startAppFromJson } from "../support/client_app.ts";

/** Where a field goes: a consumer that reads it, or why it needs none. */
type Fate =
  /** `file` contains `reads`: the expression that hands the field on. */
  | { file: string; reads: string }
  /** The parser allows only this value (anything else is refused with its JSON path). */
  | { fixed: string }
  /** Computed by the parser from another field, which is itself in the table. */
  | { derivedFrom: string }
  /** v2ray does nothing with it either, on this side. */
  | { inertAsInV2ray: string };

const APP = "lib/app.ts";
const MAIN = "main.ts";

const COMMON_INBOUND: Record<string, Fate> = {
  protocol: { file: APP, reads: "switch (inbound.protocol)" },
  tag: { file: APP, reads: "tag: inbound.tag" },
  listen: { file: APP, reads: "hostname: inbound.listen" },
  port: { file: APP, reads: "port: inbound.port" },
  "sniffing.enabled": { file: APP, reads: "filter((i) => i.sniffing.enabled)" },
  "sniffing.destOverride": { file: APP, reads: "[i.tag, i.sniffing.destOverride]" },
};

function inbound(protocol: string, fields: Record<string, Fate>): Record<string, Fate> {
  const out: Record<string, Fate> = {};
  for (const [k, v] of Object.entries({ ...COMMON_INBOUND, ...fields })) {
    out[`inbounds[${protocol}].${k}`] = v;
  }
  return out;
}

const SOCKS: Record<string, Fate> = {
  "settings.auth": { file: APP, reads: "auth: s.auth" },
  "settings.accounts[].user": { file: APP, reads: "accounts: s.accounts" },
  "settings.accounts[].pass": { file: APP, reads: "accounts: s.accounts" },
  "settings.udp": { file: APP, reads: "udp: s.udp" },
  "settings.ip": { file: APP, reads: "ip: s.ip" },
  "settings.userLevel": { file: APP, reads: "policyFor(config, s.userLevel)" },
};

const TABLE: Record<string, Fate> = {
  "log.loglevel": { file: MAIN, reads: "config.log.loglevel" },
  "log.access": { file: MAIN, reads: "config.log.access" },
  "log.error": { file: MAIN, reads: "config.log.error" },
  "policy.levels.N.handshake": { file: APP, reads: "p.handshake * 1000" },
  "policy.levels.N.connIdle": { file: APP, reads: "p.connIdle * 1000" },
  "policy.levels.N.uplinkOnly": { file: APP, reads: "p.uplinkOnly * 1000" },
  "policy.levels.N.downlinkOnly": { file: APP, reads: "p.downlinkOnly * 1000" },
  // The router is built from the whole section (lib/routing/build_router.ts reads each part).
  "routing.domainStrategy": { file: APP, reads: "routing: config.routing" },
  "routing.rules": { file: APP, reads: "routing: config.routing" },
  "routing.balancers": { file: APP, reads: "routing: config.routing" },
  "routing.configDir": { file: APP, reads: "configDir: config.routing.configDir" },
  "routing.warnings": { file: APP, reads: "config.routing.warnings" },
  "dns.hosts": { file: APP, reads: "hosts: config.dns.hosts" },
  ...inbound("socks", SOCKS),
  ...inbound("mixed", SOCKS),
  ...inbound("http", {
    "settings.accounts[].user": { file: APP, reads: "accounts: s.accounts" },
    "settings.accounts[].pass": { file: APP, reads: "accounts: s.accounts" },
    "settings.timeout": { file: APP, reads: "policy.connIdle = s.timeout * 1000" },
    "settings.userLevel": { file: APP, reads: "policyFor(config, s.userLevel)" },
  }),
  ...inbound("dokodemo-door", {
    "settings.address": { file: APP, reads: "address: s.address" },
    "settings.port": { file: APP, reads: "port: s.port" },
    "settings.network": { file: APP, reads: "s.network.includes(" },
    "settings.userLevel": { file: APP, reads: "policyFor(config, s.userLevel)" },
  }),
  ...inbound("vless", {
    "settings.clients[].id": { derivedFrom: "inbounds[vless].settings.clients[].idBytes" },
    "settings.clients[].idBytes": { file: APP, reads: "id: c.idBytes" },
    "settings.clients[].level": { file: APP, reads: "level: c.level" },
    "settings.clients[].email": { file: APP, reads: "email: c.email" },
    "settings.clients[].flow": { fixed: '"" (XTLS flows are refused)' },
    "settings.decryption": { fixed: '"none"' },
    "stream.network": { file: APP, reads: 'stream.network === "http"' },
    "stream.security": { file: APP, reads: 'stream.security === "tls"' },
    "stream.tls.certificates[].certificate": { file: APP, reads: "cert: c.certificate" },
    "stream.tls.certificates[].key": { file: APP, reads: "key: c.key" },
    // tcp: offered as given; http: the parser allows only ["h2"], which the server offers.
    "stream.tls.alpn": { file: APP, reads: "alpnProtocols: stream.tls.alpn" },
    "stream.tls.serverName": { inertAsInV2ray: "a server does not send SNI" },
    "stream.http.host": { file: APP, reads: "host: stream.http.host" },
    "stream.http.path": { file: APP, reads: "path: stream.http.path" },
    "stream.ws.path": { file: APP, reads: "path: stream.ws.path" },
    "stream.ws.headers": { inertAsInV2ray: "request headers are the client's to send" },
    "stream.ws.maxEarlyData": { file: APP, reads: "maxEarlyData: stream.ws.maxEarlyData" },
    "stream.ws.earlyDataHeaderName": {
      file: APP,
      reads: "earlyDataHeaderName: stream.ws.earlyDataHeaderName",
    },
    "stream.acceptProxyProtocol": {
      file: APP,
      reads: "acceptProxyProtocol: stream.acceptProxyProtocol",
    },
  }),
  "outbounds[vless].protocol": { file: APP, reads: "switch (o.protocol)" },
  "outbounds[vless].tag": { file: APP, reads: "tag: o.tag" },
  "outbounds[vless].servers[].address": { file: APP, reads: "address: s.address" },
  "outbounds[vless].servers[].port": { file: APP, reads: "port: s.port" },
  "outbounds[vless].servers[].users[].id": {
    derivedFrom: "outbounds[vless].servers[].users[].idBytes",
  },
  "outbounds[vless].servers[].users[].idBytes": { file: APP, reads: "id: u.idBytes" },
  "outbounds[vless].servers[].users[].flow": { file: APP, reads: "flow: u.flow" },
  "outbounds[vless].servers[].users[].encryption": { fixed: '"none"' },
  "outbounds[vless].stream.network": { file: APP, reads: 'stream.network === "http"' },
  "outbounds[vless].stream.security": { file: APP, reads: 'stream.security === "tls"' },
  "outbounds[vless].stream.tls.serverName": { file: APP, reads: "tls.serverName" },
  "outbounds[vless].stream.tls.allowInsecure": { file: APP, reads: "tls.allowInsecure" },
  "outbounds[vless].stream.tls.alpn": { file: APP, reads: "alpn: tls.alpn" },
  "outbounds[vless].stream.tls.caCerts": { file: APP, reads: "caCerts: tls.caCerts" },
  "outbounds[vless].stream.tls.disableSystemRoot": {
    file: APP,
    reads: "disableSystemRoot: tls.disableSystemRoot",
  },
  "outbounds[vless].stream.tls.clientCertificate.certificate": {
    file: APP,
    reads: "cert: tls.clientCertificate.certificate",
  },
  "outbounds[vless].stream.tls.clientCertificate.key": {
    file: APP,
    reads: "key: tls.clientCertificate.key",
  },
  "outbounds[vless].stream.http.host": { file: APP, reads: "host: stream.http.host" },
  "outbounds[vless].stream.http.path": { file: APP, reads: "path: stream.http.path" },
  "outbounds[vless].stream.http.method": { file: APP, reads: "method: stream.http.method" },
  "outbounds[vless].stream.http.headers": { file: APP, reads: "headers: stream.http.headers" },
  "outbounds[vless].stream.http.readIdleTimeout": {
    file: APP,
    reads: "stream.http.readIdleTimeout * 1000",
  },
  "outbounds[vless].stream.http.healthCheckTimeout": {
    file: APP,
    reads: "stream.http.healthCheckTimeout * 1000",
  },
  "outbounds[vless].stream.timeouts.connectTimeout": {
    file: APP,
    reads: "stream.timeouts?.connectTimeout",
  },
  "outbounds[vless].stream.timeouts.streamTimeout": {
    file: APP,
    reads: "stream.timeouts?.streamTimeout",
  },
  "outbounds[freedom].protocol": { file: APP, reads: "switch (o.protocol)" },
  "outbounds[freedom].tag": { file: APP, reads: "tag: o.tag" },
  "outbounds[freedom].settings.domainStrategy": {
    file: APP,
    reads: "domainStrategy: o.settings.domainStrategy",
  },
  "outbounds[freedom].settings.redirect.address": {
    file: APP,
    reads: "redirect: o.settings.redirect",
  },
  "outbounds[freedom].settings.redirect.port": {
    file: APP,
    reads: "redirect: o.settings.redirect",
  },
  "outbounds[blackhole].protocol": { file: APP, reads: "switch (o.protocol)" },
  "outbounds[blackhole].tag": { file: APP, reads: "tag: o.tag" },
  "outbounds[blackhole].settings.response": { file: APP, reads: "response: o.settings.response" },
};

/** A config that sets every field dray accepts, with every protocol and stream variant. */
function everything(port: () => number): Json {
  const users = [{ id: ID, encryption: "none", flow: "", level: 0, email: "o@x" }];
  const vnext = [{ address: "127.0.0.1", port: 9, users }];
  const serverTls = {
    serverName: "localhost",
    alpn: ["h2"],
    certificates: ["server", "other"].map((n) => ({
      certificateFile: `${CERTS}${n}.pem`,
      keyFile: `${CERTS}${n}.key`,
    })),
  };
  const clients = [{ id: ID, level: 1, email: "a@b", flow: "" }];
  return {
    log: { loglevel: "none", access: "none", error: "none" },
    policy: { levels: { "1": { handshake: 4, connIdle: 30, uplinkOnly: 2, downlinkOnly: 5 } } },
    inbounds: [
      {
        protocol: "socks",
        port: port(),
        tag: "s",
        settings: {
          auth: "password",
          accounts: [{ user: "u", pass: "p" }],
          udp: true,
          ip: "127.0.0.1",
          userLevel: 1,
        },
      },
      {
        protocol: "mixed",
        port: port(),
        settings: { auth: "password", accounts: [{ user: "u", pass: "p" }], userLevel: 0 },
      },
      {
        protocol: "http",
        port: port(),
        settings: { accounts: [{ user: "u", pass: "p" }], timeout: 9, userLevel: 0 },
      },
      {
        protocol: "dokodemo-door",
        port: port(),
        settings: { address: "127.0.0.1", port: 9, network: "tcp,udp", userLevel: 1 },
      },
      {
        protocol: "vless",
        port: port(),
        settings: { clients, decryption: "none" },
        streamSettings: {
          network: "tcp",
          security: "tls",
          tlsSettings: serverTls,
          tcpSettings: { acceptProxyProtocol: true },
        },
      },
      {
        protocol: "vless",
        port: port(),
        settings: { clients, decryption: "none" },
        streamSettings: {
          network: "ws",
          wsSettings: {
            path: "/w",
            headers: { "X-A": "1" },
            maxEarlyData: 2048,
            earlyDataHeaderName: "Sec-WebSocket-Protocol",
            acceptProxyProtocol: true,
          },
        },
      },
      {
        protocol: "vless",
        port: port(),
        settings: { clients, decryption: "none" },
        streamSettings: {
          network: "http",
          security: "tls",
          tlsSettings: serverTls,
          httpSettings: { host: ["localhost"], path: "/p" },
        },
      },
    ],
    outbounds: [
      {
        protocol: "vless",
        tag: "h2",
        settings: { vnext },
        streamSettings: {
          network: "h2",
          security: "tls",
          dray: { connectTimeout: 5, streamTimeout: 3 },
          tlsSettings: {
            serverName: "localhost",
            allowInsecure: false,
            alpn: ["h2"],
            disableSystemRoot: true,
            certificates: [
              { usage: "verify", certificateFile: `${CERTS}ca.pem` },
              { certificateFile: `${CERTS}client.pem`, keyFile: `${CERTS}client.key` },
            ],
          },
          httpSettings: {
            host: ["localhost"],
            path: "/p",
            method: "POST",
            headers: { "x-a": ["1"] },
            read_idle_timeout: 10,
            health_check_timeout: 5,
          },
        },
      },
      { protocol: "vless", tag: "tcp", settings: { vnext } },
      {
        protocol: "freedom",
        settings: { domainStrategy: "UseIPv4", redirect: "127.0.0.1:9", userLevel: 0, timeout: 0 },
      },
      { protocol: "blackhole", settings: { response: { type: "http" } } },
    ],
    routing: { domainStrategy: "AsIs" },
  };
}

/** Every leaf of a parsed value, protocols as discriminants, array items as [], levels as N. */
function leafPaths(v: unknown, path: string, out: Set<string>): void {
  if (
    v === null || typeof v !== "object" || v instanceof Uint8Array ||
    Array.isArray(v) && v.every((x) => typeof x === "string")
  ) {
    out.add(path);
    return;
  }
  if (Array.isArray(v)) {
    for (const item of v) {
      const p = (item as { protocol?: unknown }).protocol;
      leafPaths(
        item,
        typeof p === "string" && /^(in|out)bounds$/.test(path) ? `${path}[${p}]` : `${path}[]`,
        out,
      );
    }
    return;
  }
  const o = v as Record<string, unknown>;
  for (const [k, child] of Object.entries(o)) {
    const name = path === "policy.levels" ? "N" : k;
    // A map of names to values (headers) is one field.
    const p = path === "" ? name : `${path}.${name}`;
    if (p.endsWith(".headers")) out.add(p);
    else leafPaths(child, p, out);
  }
}

function parseEverything(): Json {
  let next = 20000;
  return parseConfigObject(everything(() => next++));
}

Deno.test("Config: every field the parser produces has a row saying where it goes, and every row is produced", () => {
  const seen = new Set<string>();
  leafPaths(parseEverything(), "", seen);
  const rows = new Set(Object.keys(TABLE));
  const unplaced = [...seen].filter((p) => !rows.has(p)).sort();
  const stale = [...rows].filter((p) => !seen.has(p)).sort();
  assert.deepEqual({ unplaced, stale }, { unplaced: [], stale: [] });
});

Deno.test("Config: every wired field is read where its row says, every derived one from a row", async () => {
  const sources = new Map<string, string>();
  const missing: string[] = [];
  for (const [path, fate] of Object.entries(TABLE)) {
    if (!("file" in fate)) continue;
    let text = sources.get(fate.file);
    if (text === undefined) {
      text = await Deno.readTextFile(new URL(`../../${fate.file}`, import.meta.url));
      sources.set(fate.file, text);
    }
    if (!text.includes(fate.reads)) {
      missing.push(`${path}: ${fate.file} no longer has ${fate.reads}`);
    }
  }
  for (const [path, fate] of Object.entries(TABLE)) {
    if ("derivedFrom" in fate && !(fate.derivedFrom in TABLE)) {
      missing.push(`${path}: derived from ${fate.derivedFrom}, which has no row`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("Config: the config that sets every field starts and stops", async () => {
  await using s = await startAppFromJson(() => everything(freePort));
  assert.equal(s.app.inbounds.length, 7);
  assert.deepEqual(s.app.outbounds.map((o) => o.tag), ["h2", "tcp", "freedom", "blackhole"]);
});
