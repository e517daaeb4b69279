import assert from "node:assert/strict";
import { CERTS, client, ID, problems, server } from "../support/config_samples.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { insecureHosts } from "../../lib/config/tls_settings.ts";

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

Deno.test("parseConfigObject() reads disableSystemRoot and a client certificate on an outbound", () => {
  const c = client();
  c.outbounds[0].streamSettings.tlsSettings = {
    disableSystemRoot: true,
    certificates: [
      { usage: "verify", certificateFile: "ca.pem" },
      { certificateFile: "client.pem", keyFile: "client.key" },
    ],
  };
  const o = parseConfigObject(c, { baseDir: CERTS }).outbounds[0];
  assert.ok(o.protocol === "vless" && o.stream.security === "tls");
  const read = (n: string) => Deno.readTextFileSync(`${CERTS}${n}`);
  assert.deepEqual(o.stream.tls.caCerts, [read("ca.pem")]);
  assert.equal(o.stream.tls.disableSystemRoot, true);
  assert.deepEqual(o.stream.tls.clientCertificate, {
    certificate: read("client.pem"),
    key: read("client.key"),
  });
});

Deno.test("parseConfigObject() refuses disableSystemRoot with no CA, and a second client certificate", () => {
  const c = client();
  c.outbounds[0].streamSettings.tlsSettings = { disableSystemRoot: true };
  c.outbounds.push({
    ...client().outbounds[0],
    tag: "mtls",
    streamSettings: {
      security: "tls",
      tlsSettings: {
        certificates: [
          { certificateFile: "client.pem", keyFile: "client.key" },
          { usage: "verify", certificateFile: "ca.pem" },
          { certificateFile: "server.pem", keyFile: "server.key" },
        ],
      },
    },
  });
  const tp = (side: string) => `${side}.streamSettings.tlsSettings`;
  assert.deepEqual(problems(c), [
    `${
      tp("outbounds[0]")
    }.disableSystemRoot: needs a certificate with usage "verify" to trust (nothing else would be)`,
    `${
      tp("outbounds[1]")
    }.certificates[2]: more than one client certificate (usage "encipherment") is not supported by dray`,
  ]);
  const s = server();
  s.inbounds[0].streamSettings.tlsSettings.alpn = ["h2", "http/1.1"];
  assert.deepEqual(problems(s), [
    `${tp("inbounds[0]")}.alpn: the http transport serves only "h2", got ["h2","http/1.1"]`,
  ]);
});

Deno.test("parseConfigObject() keeps every server certificate of an inbound, in order (one per SNI)", () => {
  const s = server();
  s.inbounds[0].streamSettings.tlsSettings.certificates.push({
    certificateFile: "other.pem",
    keyFile: "other.key",
  });
  const inbound = parseConfigObject(s, { baseDir: CERTS }).inbounds[0];
  assert.ok(inbound.protocol === "vless" && inbound.stream.security === "tls");
  assert.deepEqual(
    inbound.stream.tls.certificates.map((c) => [c.certificate, c.key]),
    ["server", "other"].map((n) => [
      Deno.readTextFileSync(`${CERTS}${n}.pem`),
      Deno.readTextFileSync(`${CERTS}${n}.key`),
    ]),
  );
});
