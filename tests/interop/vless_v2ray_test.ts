/**
 * VlessOutbound against the real v2ray 4.34 VLESS server (vless inbound → freedom → our target),
 * over each transport. Bytes are verified by sha256 both ways.
 */
import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Duplex } from "../../lib/net/duplex.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import { TlsTransport, usesNodeTls } from "../../lib/transport/tls.ts";
import { V2rayHttpTransport } from "../../lib/transport/v2ray_http.ts";
import type { Transport } from "../../lib/transport/transport.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import {
  patternChunks,
  sha256OfPattern,
  startTarget,
  type TargetServer,
} from "../support/target.ts";
import { startCountingForwarder } from "../support/counting_forwarder.ts";
import { CA_PEM, uuidBytes, V2rayServer, type V2rayServerOptions } from "../support/v2ray.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const MIB = 1024 * 1024;

type Kind = "tcp" | "tls" | "http";

const HTTP_PATH = "/vless";
const HTTP_HOST = "dray.test";

function transportFor(kind: Kind): Transport {
  switch (kind) {
    case "tcp":
      return new TcpTransport();
    case "tls":
      return new TlsTransport({ serverName: "localhost", caCerts: [CA_PEM] });
    case "http":
      return new V2rayHttpTransport({
        tls: { serverName: "localhost", caCerts: [CA_PEM] },
        host: [HTTP_HOST],
        path: HTTP_PATH.slice(1), // normalized back to "/vless"
      });
  }
}

function serverOptions(kind: Kind, clients: string[]): V2rayServerOptions {
  if (kind === "http") {
    return {
      clients,
      network: "http",
      security: "tls",
      httpPath: HTTP_PATH,
      httpHost: [HTTP_HOST],
    };
  }
  return { clients, network: "tcp", security: kind === "tls" ? "tls" : "none" };
}

interface Setup extends AsyncDisposable {
  v2ray: V2rayServer;
  target: TargetServer;
  outbound: VlessOutbound;
  tcpDest: { network: "tcp"; host: string; port: number };
}

async function setup(
  kind: Kind,
  opts: { userId?: string; transport?: Transport } = {},
): Promise<Setup> {
  const id = crypto.randomUUID();
  const target = startTarget();
  let v2ray: V2rayServer;
  try {
    v2ray = await V2rayServer.start(serverOptions(kind, [id]));
  } catch (err) {
    await target.close();
    throw err;
  }
  const outbound = new VlessOutbound({
    tag: "proxy",
    servers: [{
      address: "127.0.0.1",
      port: v2ray.port,
      users: [{ id: uuidBytes(opts.userId ?? id) }],
    }],
    transport: opts.transport ?? transportFor(kind),
    sleep: () => Promise.resolve(),
  });
  return {
    v2ray,
    target,
    outbound,
    tcpDest: { network: "tcp", host: "127.0.0.1", port: target.tcpPort },
    async [Symbol.asyncDispose]() {
      await outbound.close();
      await v2ray.stop();
      await target.close();
    },
  };
}

/** Reads exactly `n` bytes (hashing them), failing on an early EOF. */
async function readHashed(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<string> {
  const h = createHash("sha256");
  let have = 0;
  while (have < n) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`EOF after ${have} of ${n} bytes`);
    h.update(value);
    have += value.byteLength;
  }
  equal(have, n, "no bytes beyond the expected end");
  return h.digest("hex");
}

async function readText(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<string> {
  let text = "";
  while (text.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  return text;
}

async function download(conn: Duplex, n: number): Promise<void> {
  const w = conn.writable.getWriter();
  await w.write(enc.encode(`download ${n}\n`));
  const reader = conn.readable.getReader();
  equal(await readHashed(reader, n), sha256OfPattern(n));
  reader.releaseLock();
  w.releaseLock();
}

async function upload(conn: Duplex, n: number): Promise<void> {
  const reader = conn.readable.getReader();
  const reply = readText(reader, 65);
  const w = conn.writable.getWriter();
  await w.write(enc.encode(`upload ${n}\n`));
  for (const chunk of patternChunks(n)) await w.write(chunk);
  equal(await reply, sha256OfPattern(n) + "\n");
  reader.releaseLock();
  w.releaseLock();
}

async function echo(conn: Duplex, payload: Uint8Array): Promise<void> {
  const reader = conn.readable.getReader();
  const back = readHashed(reader, payload.byteLength);
  const w = conn.writable.getWriter();
  const first = new Uint8Array(5 + payload.byteLength);
  first.set(enc.encode("echo\n"));
  first.set(payload, 5);
  await w.write(first);
  equal(await back, createHash("sha256").update(payload).digest("hex"));
  reader.releaseLock();
  w.releaseLock();
}

for (const kind of ["tcp", "tls", "http"] as const) {
  Deno.test(`interop ${kind}: 64 MiB download and 64 MiB upload, sha256-verified`, async () => {
    await using s = await setup(kind);
    const a = await s.outbound.open(s.tcpDest);
    const b = await s.outbound.open(s.tcpDest);
    try {
      await Promise.all([download(a, 64 * MIB), upload(b, 64 * MIB)]);
    } finally {
      a.close();
      b.close();
    }
  });

  Deno.test(`interop ${kind}: 200 concurrent connections, every one verified`, async () => {
    await using s = await setup(kind);
    const conns: Duplex[] = [];
    try {
      await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const conn = await s.outbound.open(s.tcpDest);
        conns.push(conn);
        const payload = new Uint8Array(1000 + i * 37).map((_, j) => (i * 7 + j) & 0xff);
        await echo(conn, payload);
      }));
      equal(conns.length, 200);
      equal(s.target.accepted, 200);
    } finally {
      for (const c of conns) c.close();
    }
  });

  Deno.test(`interop ${kind}: half-close goes up, the target's EOF comes back`, async () => {
    await using s = await setup(kind);
    const conn = await s.outbound.open(s.tcpDest);
    try {
      const w = conn.writable.getWriter();
      await w.write(enc.encode("download 1000\n"));
      // Our half-close reaches v2ray, which then ends the connection as soon as the target does
      // (without it, 4.34 keeps the downlink open for its 1 s uplinkOnly timeout).
      await w.close();
      let got = 0;
      for await (const c of conn.readable) got += c.byteLength;
      equal(got, 1000);
    } finally {
      conn.close();
    }
  });

  Deno.test(`interop ${kind}: UDP echo through the UDP command; a 4000-byte datagram crosses whole`, async () => {
    await using s = await setup(kind);
    const conn = await s.outbound.open({
      network: "udp",
      host: "127.0.0.1",
      port: s.target.udpPort,
    });
    try {
      const w = conn.writable.getWriter();
      const reader = conn.readable.getReader();
      const datagram = (size: number) => new Uint8Array(size).map((_, j) => (size + j) & 0xff);
      // v2ray 4.34's largest echo: its 2048-byte buffer minus the 2-byte length.
      for (const size of [1, 512, 1400, 2046]) {
        await w.write(datagram(size));
        assertEquals((await reader.read()).value, datagram(size), `datagram of ${size} bytes`);
      }
      // 4000 bytes: our frame reaches v2ray whole — it reads all 4000 bytes (then, being 4.34, sends
      // them to the target as 2048 + 1952 and drops the 2048-byte echo). The stream stays in step:
      // the next datagram after it comes back intact.
      await w.write(datagram(4000));
      await w.write(datagram(10));
      const seen: number[] = [];
      for (;;) {
        const { value } = await reader.read();
        seen.push(value!.byteLength);
        if (value!.byteLength === 10) {
          assertEquals(value, datagram(10));
          break;
        }
      }
      assertEquals(s.target.udpReceived, [1, 512, 1400, 2046, 2048, 1952, 10]);
      assertEquals(seen, [1952, 10]);
    } finally {
      conn.close();
    }
  });

  Deno.test(`interop ${kind}: a wrong user id fails with a clear error`, async () => {
    await using s = await setup(kind, { userId: crypto.randomUUID() });
    const conn = await s.outbound.open(s.tcpDest);
    try {
      const w = conn.writable.getWriter();
      await w.write(enc.encode("download 10\n"));
      await rejects(
        (async () => {
          for await (const _ of conn.readable) { /* drain */ }
        })(),
        /before sending the VLESS response header \(wrong user id/,
      );
    } finally {
      conn.close();
    }
  });

  Deno.test(`interop ${kind}: a killed server fails its connections within 1 s; the next one works after restart`, async () => {
    await using s = await setup(kind);
    const conns = await Promise.all([1, 2, 3].map(() => s.outbound.open(s.tcpDest)));
    let restarted: V2rayServer | undefined;
    try {
      const flowing = conns.map(() => Promise.withResolvers<void>());
      const transfers = Promise.allSettled(conns.map(async (conn, i) => {
        await conn.writable.getWriter().write(enc.encode(`download ${1024 * MIB}\n`));
        const reader = conn.readable.getReader();
        let got = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return { ended: performance.now(), got };
          got += value.byteLength;
          flowing[i].resolve();
        }
      }));
      // Kill the server once bytes flow on every connection.
      await Promise.all(flowing.map((f) => f.promise));
      await s.v2ray.kill();
      const killedAt = performance.now();
      const results = await transfers;
      for (const r of results) {
        const ended = r.status === "fulfilled" ? r.value.ended : performance.now();
        ok(ended - killedAt < 1000, `ended ${ended - killedAt} ms after the kill`);
        if (r.status === "fulfilled") {
          ok(r.value.got < 1024 * MIB, "a cut transfer is not complete");
        }
      }
      restarted = await V2rayServer.start({ ...s.v2ray.options, port: s.v2ray.port });
      const conn = await s.outbound.open(s.tcpDest);
      try {
        await download(conn, 100_000);
      } finally {
        conn.close();
      }
    } finally {
      for (const c of conns) c.close();
      await restarted?.stop();
    }
  });
}

for (const kind of ["tls", "http"] as const) {
  Deno.test(`interop ${kind} on node:tls (disableSystemRoot, client certificate): 64 MiB each way, 50 echoes`, async () => {
    // v2ray 4.34 cannot require a client certificate (its tlsSettings has no such field): this
    // proves the node:tls session carries VLESS to it; tests/transport/tls_test.ts proves the
    // certificate is presented to a server that demands one.
    const certs = new URL("../support/certs/", import.meta.url);
    const tls = {
      serverName: "localhost",
      caCerts: [CA_PEM],
      disableSystemRoot: true,
      clientCertificate: {
        cert: Deno.readTextFileSync(new URL("client.pem", certs)),
        key: Deno.readTextFileSync(new URL("client.key", certs)),
      },
    };
    ok(usesNodeTls(tls));
    const transport = kind === "tls"
      ? new TlsTransport(tls)
      : new V2rayHttpTransport({ tls, host: [HTTP_HOST], path: HTTP_PATH });
    await using s = await setup(kind, { transport });
    const a = await s.outbound.open(s.tcpDest);
    const b = await s.outbound.open(s.tcpDest);
    try {
      await Promise.all([download(a, 64 * MIB), upload(b, 64 * MIB)]);
    } finally {
      a.close();
      b.close();
    }
    for (let i = 0; i < 50; i++) {
      const c = await s.outbound.open(s.tcpDest);
      try {
        await echo(c, new Uint8Array(100 + i).fill(i));
      } finally {
        c.close();
      }
    }
  });
}

Deno.test("interop tls: a plain TCP VLESS server gives a clear TLS error", async () => {
  await using s = await setup("tcp", { transport: transportFor("tls") });
  await rejects(
    s.outbound.open(s.tcpDest),
    (err: Error) =>
      err.message.startsWith("failed to reach a VLESS server for tcp:127.0.0.1:") &&
      err.message.includes(
        `#1 127.0.0.1:${s.v2ray.port}: TLS handshake with 127.0.0.1:${s.v2ray.port} failed: `,
      ),
  );
});

Deno.test("interop tls: an untrusted certificate gives a clear error", async () => {
  await using s = await setup("tls", { transport: new TlsTransport({ serverName: "localhost" }) });
  await rejects(
    s.outbound.open(s.tcpDest),
    (err: Error) => err.message.includes("invalid peer certificate: UnknownIssuer"),
  );
});

Deno.test('interop http: a wrong host gets "unexpected status 404"; the pooled connection stays usable', async () => {
  const hosts = ["wrong.example", HTTP_HOST];
  let pick = 0;
  const id = crypto.randomUUID();
  await using target = startTarget();
  await using v2ray = await V2rayServer.start(serverOptions("http", [id]));
  await using forwarder = startCountingForwarder({ hostname: "127.0.0.1", port: v2ray.port });
  const outbound = new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port: forwarder.port, users: [{ id: uuidBytes(id) }] }],
    transport: new V2rayHttpTransport({
      tls: { serverName: "localhost", caCerts: [CA_PEM] },
      host: hosts,
      path: HTTP_PATH,
      random: () => (pick++ % 2) / 2, // wrong host first, then the right one
    }),
  });
  const dest = { network: "tcp", host: "127.0.0.1", port: target.tcpPort } as const;
  try {
    const bad = await outbound.open(dest);
    await bad.writable.getWriter().write(enc.encode("download 10\n"));
    await rejects(bad.readable.getReader().read(), /^Error: unexpected status 404$/);
    bad.close();
    const good = await outbound.open(dest);
    try {
      await download(good, 100_000);
    } finally {
      good.close();
    }
    equal(forwarder.accepted, 1);
  } finally {
    await outbound.close();
  }
});

Deno.test('interop http: a wrong path gets "unexpected status 404"', async () => {
  await using s = await setup("http", {
    transport: new V2rayHttpTransport({
      tls: { serverName: "localhost", caCerts: [CA_PEM] },
      host: [HTTP_HOST],
      path: "/elsewhere",
    }),
  });
  const conn = await s.outbound.open(s.tcpDest);
  try {
    await conn.writable.getWriter().write(enc.encode("download 10\n"));
    await rejects(conn.readable.getReader().read(), /^Error: unexpected status 404$/);
  } finally {
    conn.close();
  }
});

Deno.test("interop http: 200 sequential connections share exactly one TLS connection", async () => {
  const id = crypto.randomUUID();
  await using target = startTarget();
  await using v2ray = await V2rayServer.start(serverOptions("http", [id]));
  await using forwarder = startCountingForwarder({ hostname: "127.0.0.1", port: v2ray.port });
  const outbound = new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port: forwarder.port, users: [{ id: uuidBytes(id) }] }],
    transport: transportFor("http"),
  });
  try {
    for (let i = 0; i < 200; i++) {
      const conn = await outbound.open({ network: "tcp", host: "127.0.0.1", port: target.tcpPort });
      try {
        await echo(conn, new Uint8Array(100 + i).fill(i & 0xff));
      } finally {
        conn.close();
      }
    }
    equal(target.accepted, 200);
    equal(forwarder.accepted, 1);
  } finally {
    await outbound.close();
  }
});

Deno.test("interop http: a server without ALPN h2 is refused clearly", async () => {
  const id = crypto.randomUUID();
  await using v2ray = await V2rayServer.start({
    clients: [id],
    network: "tcp",
    security: "tls",
    alpn: ["http/1.1"],
  });
  await using forwarder = startCountingForwarder({ hostname: "127.0.0.1", port: v2ray.port });
  const outbound = new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port: forwarder.port, users: [{ id: uuidBytes(id) }] }],
    transport: transportFor("http"),
    sleep: () => Promise.resolve(),
  });
  try {
    await rejects(
      outbound.open({ network: "tcp", host: "127.0.0.1", port: 9 }),
      (err: Error) =>
        err.message.includes(
          `received fatal alert: NoApplicationProtocol (the server does not offer ALPN "h2")`,
        ) &&
        err.message.includes("#5 "),
    );
    // Nothing was pooled: every attempt dialed again.
    equal(forwarder.accepted, 5);
  } finally {
    await outbound.close();
  }
});
