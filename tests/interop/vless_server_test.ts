import { dispatcherFor } from "../support/fake_outbound.ts";
/**
 * dray's VLESS server (VlessInbound behind InboundServer for tcp / tcp+tls, behind V2rayHttpServer
 * for http+tls and h2c) → freedom → our target, driven by:
 * - the real v2ray 4.34 client (SOCKS5 inbound → vless outbound), through its SOCKS port;
 * - dray's own client (VlessOutbound over TcpTransport / TlsTransport / V2rayHttpTransport);
 * - raw sockets and HTTP/2 streams for the misbehaving clients.
 * Bytes are verified by sha256 both ways.
 */
import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { H2Connection } from "../../lib/h2/connection.ts";
import { DEFAULT_POLICY, type Policy } from "../../lib/dispatch/policy.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { encodeUdpDatagram, parseUdpDatagram } from "../../lib/socks/socks5.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { Logger } from "../../lib/log.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import { TlsTransport } from "../../lib/transport/tls.ts";
import type { Transport } from "../../lib/transport/transport.ts";
import { V2rayHttpTransport } from "../../lib/transport/v2ray_http.ts";
import { encodeRequestHeader } from "../../lib/vless/header.ts";
import { VlessOutbound } from "../../lib/outbound/vless.ts";
import { socksConnect } from "../support/socks_client.ts";
import {
  patternChunks,
  sha256OfPattern,
  startTarget,
  type TargetServer,
} from "../support/target.ts";
import { CA_PEM, uuidBytes } from "../support/v2ray.ts";
import { V2rayClient } from "../support/v2ray_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const MIB = 1024 * 1024;
const CERTS = new URL("../support/certs/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("server.pem", CERTS));
const KEY = Deno.readTextFileSync(new URL("server.key", CERTS));
/** A second certificate, for other.test and *.other.test only: served by SNI. */
const OTHER = {
  cert: Deno.readTextFileSync(new URL("other.pem", CERTS)),
  key: Deno.readTextFileSync(new URL("other.key", CERTS)),
};
const TLS = { cert: CERT, key: KEY, sniCertificates: [OTHER] };
const HTTP_PATH = "/vless";
const HTTP_HOST = "dray.test";

type Kind = "tcp" | "tls" | "http" | "h2c";

interface DrayServer {
  port: number;
  close(): Promise<void>;
}

/** Starts the server the way lib/app.ts does: listen(), whose TLS path has TCP_NODELAY. */
function startDray(
  kind: Kind,
  ids: string[],
  policy: Partial<Policy> = {},
): Promise<DrayServer> {
  const common = {
    tag: `vless-${kind}`,
    port: 0,
    handler: new VlessInbound({ clients: ids.map((id) => ({ id: uuidBytes(id) })) }),
    dispatcher: dispatcherFor(new FreedomOutbound(), Logger.silent()),
    policy: { ...DEFAULT_POLICY, ...policy },
    logger: Logger.silent(),
  };
  if (kind === "http" || kind === "h2c") {
    return InboundServer.listen({
      ...common,
      ...(kind === "http" ? { tls: TLS } : {}),
      http: { host: [HTTP_HOST], path: HTTP_PATH },
    });
  }
  return InboundServer.listen({
    ...common,
    ...(kind === "tls" ? { tls: TLS } : {}),
  });
}

function transportFor(kind: "tcp" | "tls" | "http"): Transport {
  switch (kind) {
    case "tcp":
      return new TcpTransport();
    case "tls":
      return new TlsTransport({ serverName: "localhost", caCerts: [CA_PEM] });
    case "http":
      return new V2rayHttpTransport({
        tls: { serverName: "localhost", caCerts: [CA_PEM] },
        host: [HTTP_HOST],
        path: HTTP_PATH,
      });
  }
}

interface Setup extends AsyncDisposable {
  id: string;
  server: DrayServer;
  target: TargetServer;
  tcpDest: { network: "tcp"; host: string; port: number };
}

async function setup(kind: Kind, policy: Partial<Policy> = {}): Promise<Setup> {
  const id = crypto.randomUUID();
  const target = startTarget();
  const server = await startDray(kind, [id], policy);
  return {
    id,
    server,
    target,
    tcpDest: { network: "tcp", host: "127.0.0.1", port: target.tcpPort },
    async [Symbol.asyncDispose]() {
      await server.close();
      await target.close();
    },
  };
}

function drayClient(
  kind: "tcp" | "tls" | "http",
  port: number,
  id: string,
  transport = transportFor(kind),
): VlessOutbound {
  return new VlessOutbound({
    tag: "proxy",
    servers: [{ address: "127.0.0.1", port, users: [{ id: uuidBytes(id) }] }],
    transport,
    sleep: () => Promise.resolve(),
  });
}

async function readHashed(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
  first: Uint8Array = new Uint8Array(0),
): Promise<string> {
  const h = createHash("sha256").update(first);
  let have = first.byteLength;
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
  first: Uint8Array = new Uint8Array(0),
): Promise<string> {
  let text = dec.decode(first);
  while (text.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  return text;
}

/** A connection as the transfer helpers use it: streams plus bytes already read past a reply. */
interface Pipe {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  carry: Uint8Array;
}

function pipeOf(d: Duplex): Pipe {
  return {
    reader: d.readable.getReader(),
    writer: d.writable.getWriter(),
    carry: new Uint8Array(0),
  };
}

async function download(p: Pipe, n: number): Promise<void> {
  await p.writer.write(enc.encode(`download ${n}\n`));
  equal(await readHashed(p.reader, n, p.carry), sha256OfPattern(n));
}

async function upload(p: Pipe, n: number): Promise<void> {
  const reply = readText(p.reader, 65, p.carry);
  await p.writer.write(enc.encode(`upload ${n}\n`));
  for (const chunk of patternChunks(n)) await p.writer.write(chunk);
  equal(await reply, sha256OfPattern(n) + "\n");
}

async function echo(p: Pipe, payload: Uint8Array): Promise<void> {
  const back = readHashed(p.reader, payload.byteLength, p.carry);
  const first = new Uint8Array(5 + payload.byteLength);
  first.set(enc.encode("echo\n"));
  first.set(payload, 5);
  await p.writer.write(first);
  equal(await back, createHash("sha256").update(payload).digest("hex"));
}

function payloadOf(i: number): Uint8Array {
  return new Uint8Array(1000 + i * 37).map((_, j) => (i * 7 + j) & 0xff);
}

/** A SOCKS5 CONNECT through v2ray's socks inbound, as a Pipe. */
async function viaSocks(client: V2rayClient, port: number): Promise<Pipe & { close(): void }> {
  const s = await socksConnect(client.socksPort, 1, "127.0.0.1", port);
  return { reader: s.reader, writer: s.writer, carry: s.carry.buf, close: () => s.duplex.close() };
}

// ---------------------------------------------------------------------------------------------
// The real v2ray 4.34 client → dray server

for (const kind of ["tcp", "tls", "http"] as const) {
  const v2rayClient = (s: Setup) =>
    V2rayClient.start({
      serverPort: s.server.port,
      id: s.id,
      network: kind === "http" ? "http" : "tcp",
      security: kind === "tcp" ? "none" : "tls",
      ...(kind === "http" ? { httpHost: [HTTP_HOST], httpPath: HTTP_PATH } : {}),
    });

  Deno.test(`v2ray client → dray server (${kind}): 64 MiB download and 64 MiB upload, sha256-verified`, async () => {
    await using s = await setup(kind);
    await using client = await v2rayClient(s);
    const a = await viaSocks(client, s.target.tcpPort);
    const b = await viaSocks(client, s.target.tcpPort);
    try {
      await Promise.all([download(a, 64 * MIB), upload(b, 64 * MIB)]);
    } finally {
      a.close();
      b.close();
    }
  });

  Deno.test(`v2ray client → dray server (${kind}): 200 concurrent connections, every one verified`, async () => {
    await using s = await setup(kind);
    await using client = await v2rayClient(s);
    const conns: Array<{ close(): void }> = [];
    try {
      await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const p = await viaSocks(client, s.target.tcpPort);
        conns.push(p);
        await echo(p, payloadOf(i));
      }));
      equal(s.target.accepted, 200);
    } finally {
      for (const c of conns) c.close();
    }
  });

  Deno.test(`v2ray client → dray server (${kind}): UDP echo through SOCKS5 UDP ASSOCIATE`, async () => {
    await using s = await setup(kind);
    await using client = await v2rayClient(s);
    const control = await socksConnect(client.socksPort, 3, "0.0.0.0", 0);
    const udp = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      const relay: Deno.NetAddr = {
        transport: "udp",
        hostname: "127.0.0.1",
        port: control.bndPort,
      };
      for (const size of [1, 100, 1400, 2000]) {
        const payload = new Uint8Array(size).map((_, j) => (size + j) & 0xff);
        await udp.send(encodeUdpDatagram("127.0.0.1", s.target.udpPort, payload), relay);
        const [data] = await udp.receive();
        const dg = parseUdpDatagram(data);
        ok(dg, "a SOCKS5 UDP reply");
        assertEquals(dg.payload, payload, `datagram of ${size} bytes`);
        equal(dg.port, s.target.udpPort);
      }
      assertEquals(s.target.udpReceived, [1, 100, 1400, 2000]);
    } finally {
      udp.close();
      control.duplex.close();
    }
  });
}

for (const kind of ["tls", "http"] as const) {
  Deno.test(`v2ray client → dray server (${kind}): SNI a.other.test gets the second certificate`, async () => {
    await using s = await setup(kind);
    // v2ray trusts only the test CA and verifies a.other.test, which only other.pem names: the
    // download works only if dray picked that certificate by SNI.
    await using client = await V2rayClient.start({
      serverPort: s.server.port,
      id: s.id,
      network: kind === "http" ? "http" : "tcp",
      security: "tls",
      serverName: "a.other.test",
      ...(kind === "http" ? { httpHost: [HTTP_HOST], httpPath: HTTP_PATH } : {}),
    });
    const p = await viaSocks(client, s.target.tcpPort);
    try {
      await download(p, MIB);
    } finally {
      p.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// dray client → dray server

for (const kind of ["tcp", "tls", "http"] as const) {
  Deno.test(`dray client → dray server (${kind}): 64 MiB download and 64 MiB upload, sha256-verified`, async () => {
    await using s = await setup(kind);
    const outbound = drayClient(kind, s.server.port, s.id);
    const a = await outbound.open(s.tcpDest);
    const b = await outbound.open(s.tcpDest);
    try {
      await Promise.all([download(pipeOf(a), 64 * MIB), upload(pipeOf(b), 64 * MIB)]);
    } finally {
      a.close();
      b.close();
      await outbound.close();
    }
  });

  Deno.test(`dray client → dray server (${kind}): 200 concurrent connections, every one verified`, async () => {
    await using s = await setup(kind);
    const outbound = drayClient(kind, s.server.port, s.id);
    const conns: Duplex[] = [];
    try {
      await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const conn = await outbound.open(s.tcpDest);
        conns.push(conn);
        await echo(pipeOf(conn), payloadOf(i));
      }));
      equal(s.target.accepted, 200);
    } finally {
      for (const c of conns) c.close();
      await outbound.close();
    }
  });

  Deno.test(`dray client → dray server (${kind}): UDP echo, datagrams up to 8000 bytes cross whole`, async () => {
    await using s = await setup(kind);
    const outbound = drayClient(kind, s.server.port, s.id);
    const conn = await outbound.open({ network: "udp", host: "127.0.0.1", port: s.target.udpPort });
    try {
      const w = conn.writable.getWriter();
      const reader = conn.readable.getReader();
      for (const size of [1, 512, 1400, 2046, 8000]) {
        const payload = new Uint8Array(size).map((_, j) => (size * 3 + j) & 0xff);
        await w.write(payload);
        assertEquals((await reader.read()).value, payload, `datagram of ${size} bytes`);
      }
      assertEquals(s.target.udpReceived, [1, 512, 1400, 2046, 8000]);
    } finally {
      conn.close();
      await outbound.close();
    }
  });

  Deno.test(`dray client → dray server (${kind}): the target's EOF reaches the client right after its last byte`, async () => {
    await using s = await setup(kind);
    const outbound = drayClient(kind, s.server.port, s.id);
    const conn = await outbound.open(s.tcpDest);
    try {
      const w = conn.writable.getWriter();
      await w.write(enc.encode("download 100000\n"));
      let got = 0;
      let lastByteAt = 0;
      const reader = conn.readable.getReader();
      for (let i = 0; i < 100_000; i++) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.byteLength;
        lastByteAt = performance.now();
      }
      const gap = performance.now() - lastByteAt;
      equal(got, 100_000);
      // v2ray's http server holds a finished stream for ~1 s; ours passes the end on at once.
      // Generous bound (the figure is ~1 ms on loopback): this catches a hold, not a slow machine.
      ok(gap < 500, `EOF ${gap.toFixed(1)} ms after the last byte`);
      // Our uplink is still open: the connection is half-closed, not torn down.
      await w.write(enc.encode("still writable"));
    } finally {
      conn.close();
      await outbound.close();
    }
  });

  Deno.test(`dray client → dray server (${kind}): a wrong user id gets no response; the server serves the next client`, async () => {
    await using s = await setup(kind);
    const wrong = drayClient(kind, s.server.port, crypto.randomUUID());
    const right = drayClient(kind, s.server.port, s.id);
    try {
      const conn = await wrong.open(s.tcpDest);
      await conn.writable.getWriter().write(enc.encode("download 10\n"));
      await rejects(
        (async () => {
          for await (const _ of conn.readable) { /* drain */ }
        })(),
        /before sending the VLESS response header/,
      );
      conn.close();
      equal(s.target.accepted, 0);
      const good = await right.open(s.tcpDest);
      try {
        await download(pipeOf(good), 100_000);
      } finally {
        good.close();
      }
    } finally {
      await wrong.close();
      await right.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Misbehaving clients, over raw sockets

/** Opens a raw TCP or TLS socket to the server, as a Pipe over a ConnDuplex. */
async function rawConnect(kind: "tcp" | "tls", port: number): Promise<ConnDuplex> {
  const conn = kind === "tls"
    ? await Deno.connectTls({ hostname: "localhost", port, caCerts: [CA_PEM] })
    : await Deno.connect({ hostname: "127.0.0.1", port });
  return new ConnDuplex(conn);
}

/** Everything the server sends until it closes (a reset counts as a close). */
async function drain(d: Duplex): Promise<number> {
  let n = 0;
  try {
    for await (const c of d.readable) n += c.byteLength;
  } catch {
    // Closed with unread input: a reset.
  }
  return n;
}

for (const kind of ["tcp", "tls"] as const) {
  Deno.test(`dray server (${kind}): garbage instead of a VLESS header is closed without a reply`, async () => {
    await using s = await setup(kind);
    const raw = await rawConnect(kind, s.server.port);
    try {
      await raw.writable.getWriter().write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      equal(await drain(raw), 0);
      equal(s.target.accepted, 0);
    } finally {
      raw.close();
    }
  });

  Deno.test(`dray server (${kind}): half a header then silence is closed at the handshake deadline, others keep flowing`, async () => {
    await using s = await setup(kind, { handshake: 300 });
    const raw = await rawConnect(kind, s.server.port);
    const outbound = drayClient(kind, s.server.port, s.id);
    try {
      const header = encodeRequestHeader({
        userId: uuidBytes(s.id),
        command: "tcp",
        dest: s.tcpDest,
      });
      await raw.writable.getWriter().write(header.subarray(0, 10));
      const started = performance.now();
      const closed = drain(raw);
      // Meanwhile a well-behaved client is served.
      const good = await outbound.open(s.tcpDest);
      try {
        await download(pipeOf(good), 1 * MIB);
      } finally {
        good.close();
      }
      equal(await closed, 0);
      ok(performance.now() - started >= 250, "closed by the deadline, not before");
    } finally {
      raw.close();
      await outbound.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The http transport: hosts, paths, h2c, raw streams

/** An HTTP/2 connection to the server, TLS (ALPN h2) or h2c. */
async function h2Connect(kind: "http" | "h2c", port: number): Promise<H2Connection> {
  if (kind === "h2c") {
    return await H2Connection.connect(
      new ConnDuplex(await Deno.connect({ hostname: "127.0.0.1", port })),
    );
  }
  const tls = await Deno.connectTls({
    hostname: "localhost",
    port,
    caCerts: [CA_PEM],
    alpnProtocols: ["h2"],
  });
  return await H2Connection.connect(new ConnDuplex(tls));
}

for (const kind of ["http", "h2c"] as const) {
  const scheme = kind === "http" ? "https" : "http";

  Deno.test(`dray server (${kind}): wrong host and wrong path get 404; the right ones 200 with cache-control: no-store before any body`, async () => {
    await using s = await setup(kind);
    const h2 = await h2Connect(kind, s.server.port);
    try {
      const status = async (authority: string, path: string) => {
        const stream = h2.request({ method: "PUT", scheme, authority, path });
        const r = await stream.response;
        stream.close();
        return r;
      };
      equal((await status("wrong.example", HTTP_PATH)).status, 404);
      equal((await status(HTTP_HOST, "/other")).status, 404);
      equal((await status(HTTP_HOST, "/vles")).status, 404);
      // The response comes while the request body is still empty: nothing waits for the client.
      const ok200 = await status(HTTP_HOST, HTTP_PATH + "/sub?x=1");
      equal(ok200.status, 200);
      ok(ok200.headers.some(([k, v]) => k === "cache-control" && v === "no-store"));
      equal(h2.activeStreams, 0);
    } finally {
      h2.close();
    }
  });

  Deno.test(`dray server (${kind}): a VLESS download and echo over raw HTTP/2 streams, 100 at once on one connection`, async () => {
    await using s = await setup(kind);
    const h2 = await h2Connect(kind, s.server.port);
    const header = encodeRequestHeader({
      userId: uuidBytes(s.id),
      command: "tcp",
      dest: s.tcpDest,
    });
    try {
      await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const stream = h2.request({ method: "PUT", scheme, authority: HTTP_HOST, path: HTTP_PATH });
        try {
          equal((await stream.response).status, 200);
          const payload = payloadOf(i);
          const w = stream.writable.getWriter();
          const first = new Uint8Array(header.byteLength + 5 + payload.byteLength);
          first.set(header);
          first.set(enc.encode("echo\n"), header.byteLength);
          first.set(payload, header.byteLength + 5);
          await w.write(first);
          await w.close();
          let body = new Uint8Array(0);
          for await (const c of stream.readable) {
            const next = new Uint8Array(body.byteLength + c.byteLength);
            next.set(body);
            next.set(c, body.byteLength);
            body = next;
          }
          // Response header (version 0, no addons), then the echo, then END_STREAM after ours.
          assertEquals([...body.subarray(0, 2)], [0, 0]);
          assertEquals(body.subarray(2), payload);
        } finally {
          stream.close();
        }
      }));
      equal(s.target.accepted, 100);
    } finally {
      h2.close();
    }
  });

  Deno.test(`dray server (${kind}): a stream with garbage or a wrong id ends without a byte; the connection keeps serving`, async () => {
    await using s = await setup(kind);
    const h2 = await h2Connect(kind, s.server.port);
    try {
      const send = async (bytes: Uint8Array) => {
        const stream = h2.request({ method: "PUT", scheme, authority: HTTP_HOST, path: HTTP_PATH });
        try {
          equal((await stream.response).status, 200);
          await stream.writable.getWriter().write(bytes);
          return await drain(stream);
        } finally {
          stream.close();
        }
      };
      equal(await send(enc.encode("GET / HTTP/1.1\r\n\r\n")), 0);
      const wrongId = encodeRequestHeader({
        userId: uuidBytes(crypto.randomUUID()),
        command: "tcp",
        dest: s.tcpDest,
      });
      equal(await send(wrongId), 0);
      equal(s.target.accepted, 0);
      const good = encodeRequestHeader({
        userId: uuidBytes(s.id),
        command: "tcp",
        dest: s.tcpDest,
      });
      const n = 5000;
      const reply = await send(concatBytes(good, enc.encode(`download ${n}\n`)));
      equal(reply, 2 + n);
    } finally {
      h2.close();
    }
  });
}

for (const kind of ["http", "h2c"] as const) {
  const scheme = kind === "http" ? "https" : "http";

  Deno.test(`dray server (${kind}): a stream with half a header then silence ends at the handshake deadline, other streams keep flowing`, async () => {
    await using s = await setup(kind, { handshake: 300 });
    const h2 = await h2Connect(kind, s.server.port);
    const open = () => h2.request({ method: "PUT", scheme, authority: HTTP_HOST, path: HTTP_PATH });
    const header = encodeRequestHeader({
      userId: uuidBytes(s.id),
      command: "tcp",
      dest: s.tcpDest,
    });
    const stalled = open();
    try {
      await stalled.writable.getWriter().write(header.subarray(0, 10));
      const started = performance.now();
      const ended = drain(stalled);
      const good = open();
      try {
        await good.writable.getWriter().write(
          concatBytes(header, enc.encode("download 1000000\n")),
        );
        equal(await drain(good), 2 + 1_000_000);
      } finally {
        good.close();
      }
      equal(await ended, 0);
      ok(performance.now() - started >= 250, "ended by the deadline, not before");
    } finally {
      stalled.close();
      h2.close();
    }
  });
}

Deno.test('dray client → dray server (http): a wrong host or path gets "unexpected status 404" and never reaches the target', async () => {
  await using s = await setup("http");
  for (const [host, path] of [["wrong.example", HTTP_PATH], [HTTP_HOST, "/elsewhere"]]) {
    const outbound = drayClient(
      "http",
      s.server.port,
      s.id,
      new V2rayHttpTransport({
        tls: { serverName: "localhost", caCerts: [CA_PEM] },
        host: [host],
        path,
      }),
    );
    try {
      const conn = await outbound.open(s.tcpDest);
      await conn.writable.getWriter().write(enc.encode("download 10\n"));
      await rejects(drain404(conn), /unexpected status 404/);
      conn.close();
    } finally {
      await outbound.close();
    }
  }
  equal(s.target.accepted, 0);
});

/** Reads a stream to its end, letting its error through. */
async function drain404(d: Duplex): Promise<void> {
  for await (const _ of d.readable) { /* drain */ }
}

Deno.test("dray server (h2c): curl --http2-prior-knowledge gets the 404 for a wrong path and 200 for the right one", async () => {
  await using s = await setup("h2c");
  const run = async (path: string) => {
    const out = await new Deno.Command("curl", {
      args: [
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--http2-prior-knowledge",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_version} %{http_code}",
        "-H",
        `Host: ${HTTP_HOST}`,
        "--data-binary",
        "x",
        `http://127.0.0.1:${s.server.port}${path}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = dec.decode(out.stdout);
    return out.code === 0 ? text : `${text} (curl exit ${out.code}: ${dec.decode(out.stderr)})`;
  };
  equal(await run("/nope"), "2 404");
  // One byte of garbage then END_STREAM: 200 at once, then the stream ends without a body.
  equal(await run(HTTP_PATH), "2 200");
});

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
