/**
 * probeServer()/probeAll() against real v2ray 4.34 servers on loopback: each way a server can be
 * unusable is reported with the stage that failed.
 */
import assert from "node:assert/strict";
import { createTransport } from "../../lib/app.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { probeAll, type ProbeOptions, type ProbeResult } from "../../lib/probe/probe.ts";
import { probeTargets } from "../../lib/probe/probe_targets.ts";
import { CA_PEM, freePort, V2rayServer } from "../support/v2ray.ts";
import { certPath } from "../support/client_app.ts";

const ID = "5783a3e7-e373-51cd-8642-c83782b807c5";
const OTHER_ID = "0b3e4f8c-1d2a-4c5b-9e6f-7a8b9c0d1e2f";

interface ServerSpec {
  tag: string;
  port: number;
  network: "tcp" | "http";
  security: "none" | "tls";
  id?: string;
  path?: string;
  serverName?: string;
}

function outbound(s: ServerSpec): unknown {
  const stream: Record<string, unknown> = { network: s.network, security: s.security };
  if (s.security === "tls") {
    stream.tlsSettings = {
      serverName: s.serverName ?? "localhost",
      certificates: [{ certificateFile: certPath("ca.pem"), usage: "verify" }],
    };
  }
  if (s.network === "http") stream.httpSettings = { path: s.path ?? "/ray", host: ["localhost"] };
  return {
    tag: s.tag,
    protocol: "vless",
    settings: {
      vnext: [{
        address: "127.0.0.1",
        port: s.port,
        users: [{ id: s.id ?? ID, encryption: "none" }],
      }],
    },
    streamSettings: stream,
  };
}

function targetsOf(specs: ServerSpec[]) {
  // A config needs an inbound; the probe never starts it.
  const inbounds = [{ protocol: "socks", port: 1080 }];
  return probeTargets(parseConfigObject({ inbounds, outbounds: specs.map(outbound) }));
}

/** A local web server: 204 on /generate_204, 404 elsewhere; http or https (test CA). */
function webTarget(tls: boolean) {
  const ac = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
      onListen() {},
      ...(tls
        ? {
          cert: Deno.readTextFileSync(certPath("server.pem")),
          key: Deno.readTextFileSync(certPath("server.key")),
        }
        : {}),
    },
    (req) =>
      new Response(null, { status: new URL(req.url).pathname === "/generate_204" ? 204 : 404 }),
  );
  return {
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

/** A TCP listener that accepts and never answers: a server that black-holes everything. */
function silentListener() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const loop = (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      for (const c of held) c.close();
    },
  };
}

function options(url: string, extra: Partial<ProbeOptions> = {}): ProbeOptions {
  return {
    url: new URL(url),
    createTransport: (t) => createTransport(t.outbound.stream),
    targetCaCerts: [CA_PEM],
    connectTimeoutMs: 1_500,
    timeoutMs: 4_000,
    ...extra,
  };
}

function brief(r: ProbeResult) {
  return { name: r.name, ok: r.ok, status: r.status, stage: r.stage };
}

Deno.test("probeAll() reports good servers and names the failing stage of bad ones (v2ray 4.34)", async () => {
  await using web = webTarget(false);
  await using tcp = await V2rayServer.start({ clients: [ID], network: "tcp", security: "none" });
  await using h2 = await V2rayServer.start({
    clients: [ID],
    network: "http",
    security: "tls",
    httpPath: "/ray",
    httpHost: ["localhost"],
  });
  await using tls = await V2rayServer.start({ clients: [ID], network: "tcp", security: "tls" });
  await using silent = silentListener();
  const specs: ServerSpec[] = [
    { tag: "tcp-good", port: tcp.port, network: "tcp", security: "none" },
    { tag: "h2-good", port: h2.port, network: "http", security: "tls" },
    { tag: "tls-good", port: tls.port, network: "tcp", security: "tls" },
    { tag: "dead-port", port: freePort(), network: "tcp", security: "none" },
    { tag: "wrong-id", port: tcp.port, network: "tcp", security: "none", id: OTHER_ID },
    { tag: "h2-wrong-id", port: h2.port, network: "http", security: "tls", id: OTHER_ID },
    { tag: "wrong-path", port: h2.port, network: "http", security: "tls", path: "/nope" },
    {
      tag: "name-mismatch",
      port: tls.port,
      network: "tcp",
      security: "tls",
      serverName: "wrong.invalid",
    },
    { tag: "blackholed-tls", port: silent.port, network: "http", security: "tls" },
    { tag: "blackholed-tcp", port: silent.port, network: "tcp", security: "none" },
  ];
  const seen: number[] = [];
  const results = await probeAll(targetsOf(specs), {
    ...options(`http://127.0.0.1:${web.port}/generate_204`),
    concurrency: 4,
    onResult: (_r, i) => seen.push(i),
  });
  assert.deepEqual(seen.toSorted((a, b) => a - b), specs.map((_, i) => i));
  const byName = Object.fromEntries(results.map((r) => [r.name, r]));
  assert.deepEqual(results.map(brief), [
    { name: "tcp-good", ok: true, status: 204, stage: null },
    { name: "h2-good", ok: true, status: 204, stage: null },
    { name: "tls-good", ok: true, status: 204, stage: null },
    { name: "dead-port", ok: false, status: null, stage: "tcp" },
    { name: "wrong-id", ok: false, status: null, stage: "vless" },
    { name: "h2-wrong-id", ok: false, status: null, stage: "vless" },
    { name: "wrong-path", ok: false, status: null, stage: "transport" },
    { name: "name-mismatch", ok: false, status: null, stage: "tls" },
    { name: "blackholed-tls", ok: false, status: null, stage: "tls" },
    { name: "blackholed-tcp", ok: false, status: null, stage: "vless" },
  ]);
  for (const name of ["tcp-good", "h2-good", "tls-good"]) {
    const r = byName[name];
    assert.equal(r.error, null);
    assert.equal(r.tries, 2);
    assert.ok(r.ms !== null && r.ms > 0, `${name} ms`);
    assert.ok(r.timings.tcp !== null && r.timings.connect !== null && r.timings.firstByte !== null);
    assert.ok(r.timings.firstByte! <= r.ms!, `${name}: first byte before the status`);
  }
  assert.match(byName["dead-port"].error!, /^TCP connect to 127\.0\.0\.1:\d+ failed: /);
  assert.match(byName["wrong-id"].error!, /VLESS response/);
  assert.match(byName["wrong-path"].error!, /status 404/);
  assert.match(byName["name-mismatch"].error!, /^TLS handshake with 127\.0\.0\.1:\d+ failed: /);
  assert.match(byName["blackholed-tls"].error!, /^timed out after 1500 ms \(tls stage\)$/);
  assert.match(byName["blackholed-tcp"].error!, /^timed out after 4000 ms \(vless stage\)$/);
  for (const r of results) {
    assert.equal(r.server, `127.0.0.1:${specs.find((s) => s.tag === r.name)!.port}`);
    if (!r.ok) assert.equal(r.ms, null);
  }
});

Deno.test("probeAll() fails a non-2xx answer at the http stage, and reaches https targets through TLS in the tunnel", async () => {
  await using web = webTarget(false);
  await using secure = webTarget(true);
  await using h2 = await V2rayServer.start({
    clients: [ID],
    network: "http",
    security: "tls",
    httpPath: "/ray",
    httpHost: ["localhost"],
  });
  const targets = targetsOf([{ tag: "h2", port: h2.port, network: "http", security: "tls" }]);
  const [missing] = await probeAll(targets, options(`http://127.0.0.1:${web.port}/missing`));
  assert.deepEqual(brief(missing), { name: "h2", ok: false, status: 404, stage: "http" });
  assert.equal(missing.error, `HTTP status 404 from 127.0.0.1:${web.port}`);

  const [https] = await probeAll(targets, options(`https://localhost:${secure.port}/generate_204`));
  assert.deepEqual(brief(https), { name: "h2", ok: true, status: 204, stage: null });

  // Without the test CA the target's certificate is refused: an http-stage failure, since the
  // server did answer.
  const [untrusted] = await probeAll(
    targets,
    options(`https://localhost:${secure.port}/generate_204`, { targetCaCerts: undefined }),
  );
  assert.equal(untrusted.stage, "http");
  assert.match(untrusted.error!, /^localhost:\d+ \(TLS or HTTP\): .*certificate/);
});
