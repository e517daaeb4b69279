/**
 * The whole dray client, as a user runs it, against the real v2ray 4.34 server.
 *
 * dray is started from JSON text through parseConfig + startApp (what `dray run -c` does) with
 * socks, http and mixed inbounds and one vless outbound; v2ray runs a vless inbound with a freedom
 * outbound to local targets. Everything is checked over http (h2) + TLS and over tcp + TLS:
 * curl (SOCKS5, HTTP CONNECT, HTTP absolute-form) fetching 16 MiB from Deno.serve, a SOCKS5 UDP
 * ASSOCIATE DNS-style echo, 500 concurrent SOCKS connections, and 500 idle SOCKS connections
 * beside a 32 MiB transfer. Bytes are verified by sha256.
 */
import assert from "node:assert/strict";
import { encodeUdpDatagram, parseUdpDatagram } from "../../lib/socks/socks5.ts";
import {
  certPath,
  freePort,
  readHashed,
  startAppFromJson,
  type StartedApp,
  within,
} from "../support/client_app.ts";
import { readN } from "../support/fake_outbound.ts";
import { bodyOf, curl, sha256, startTarget as startHttpTarget } from "../support/proxy_e2e.ts";
import { type SocksConn, socksConnect } from "../support/socks_client.ts";
import { sha256OfPattern, startTarget, type TargetServer } from "../support/target.ts";
import { CA_PEM, V2rayServer } from "../support/v2ray.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const MIB = 1024 * 1024;
/** Safety net for one await that should settle in well under a second. */
const NET_MS = 10_000;
/** Safety net for a UDP answer on loopback (milliseconds when it comes at all). */
const UDP_MS = 3_000;
/** Safety net for a bulk step (hundreds of connections, tens of MiB). */
const BULK_MS = 30_000;

const HTTP_PATH = "/dray";
const HTTP_HOST = "dray.test";

type Kind = "http" | "tls";

interface Setup extends AsyncDisposable {
  v2ray: V2rayServer;
  /** download/upload/echo TCP target and UDP echo (what v2ray's freedom dials). */
  target: TargetServer;
  /** Deno.serve target for curl: GET /bytes/N. */
  web: Deno.HttpServer<Deno.NetAddr>;
  dray: StartedApp;
  socks: number;
  http: number;
  mixed: number;
}

/** The vless outbound of the client config, as a user would write it. */
function vlessOutbound(kind: Kind, port: number, id: string): unknown {
  const users = [{ id, encryption: "none" }];
  const settings = { vnext: [{ address: "127.0.0.1", port, users }] };
  if (kind === "http") {
    return {
      protocol: "vless",
      tag: "proxy",
      settings,
      streamSettings: {
        network: "h2",
        security: "tls",
        tlsSettings: {
          serverName: "localhost",
          certificates: [{ certificateFile: certPath("ca.pem"), usage: "verify" }],
        },
        httpSettings: { host: [HTTP_HOST], path: HTTP_PATH },
      },
    };
  }
  return {
    protocol: "vless",
    tag: "proxy",
    settings,
    streamSettings: {
      network: "tcp",
      security: "tls",
      tlsSettings: {
        serverName: "localhost",
        // The PEM inline, one array entry per line (v2ray's form).
        certificates: [{ certificate: CA_PEM.trim().split("\n"), usage: "verify" }],
      },
    },
  };
}

async function setup(kind: Kind): Promise<Setup> {
  const id = crypto.randomUUID();
  const target = startTarget();
  const web = startHttpTarget();
  let v2ray: V2rayServer | undefined;
  try {
    v2ray = await V2rayServer.start(
      kind === "http"
        ? {
          clients: [id],
          network: "http",
          security: "tls",
          httpPath: HTTP_PATH,
          httpHost: [HTTP_HOST],
        }
        : { clients: [id], network: "tcp", security: "tls" },
    );
    const v2rayPort = v2ray.port;
    const dray = await startAppFromJson(() => ({
      log: { loglevel: "warning", access: "none" },
      inbounds: [
        { protocol: "socks", tag: "socks", port: freePort(), settings: { udp: true } },
        { protocol: "http", tag: "http", port: freePort() },
        { protocol: "mixed", tag: "mixed", port: freePort() },
      ],
      outbounds: [vlessOutbound(kind, v2rayPort, id)],
    }));
    const started = v2ray;
    return {
      v2ray: started,
      target,
      web,
      dray,
      socks: dray.inbound("socks").port,
      http: dray.inbound("http").port,
      mixed: dray.inbound("mixed").port,
      async [Symbol.asyncDispose]() {
        await dray.app.close(0);
        await started.stop();
        await target.close();
        await web.shutdown();
      },
    };
  } catch (err) {
    await v2ray?.stop();
    await target.close();
    await web.shutdown();
    throw err;
  }
}

/** A 12-byte DNS header (id, RD, one question) and the question for `name` type A. */
function dnsQuery(id: number, name: string): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...enc.encode(l)]);
  return Uint8Array.of(
    id >> 8,
    id & 0xff,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...labels,
    0,
    0,
    1,
    0,
    1,
  );
}

/** Sends "echo" and `payload` on a SOCKS connection and checks the same bytes come back. */
async function echoThrough(c: SocksConn, payload: Uint8Array): Promise<void> {
  await c.writer.write(enc.encode("echo\n"));
  await c.writer.write(payload);
  const back = await readN(c.reader, payload.byteLength, c.carry);
  assert.deepEqual(back, payload);
}

/**
 * Sends DNS-style queries through a SOCKS5 UDP association to the target's UDP echo, `atOnce`
 * outstanding at a time (a resolver asks A and AAAA together), and matches the answers by id.
 */
async function dnsOverSocks(s: Setup, opts: { queries: number; atOnce: number }): Promise<void> {
  const control = await socksConnect(s.socks, 3, "0.0.0.0", 0);
  const app = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    const relay: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: control.bndPort };
    const ids = Array.from({ length: opts.queries }, (_, i) => 0x1200 + i);
    const queries = new Map(ids.map((id) => [id, dnsQuery(id, `host${id}.dray.test`)]));
    const seen = new Set<number>();
    for (let first = 0; first < ids.length; first += opts.atOnce) {
      const round = ids.slice(first, first + opts.atOnce);
      for (const id of round) {
        await app.send(encodeUdpDatagram("127.0.0.1", s.target.udpPort, queries.get(id)!), relay);
      }
      for (let i = 0; i < round.length; i++) {
        const [datagram, from] = await within(app.receive(), UDP_MS, `answer ${first + i}`);
        assert.equal((from as Deno.NetAddr).port, control.bndPort, "answers come from the relay");
        const d = parseUdpDatagram(datagram);
        assert.ok(d, "a SOCKS5 UDP header");
        assert.equal(d.host, "127.0.0.1");
        assert.equal(d.port, s.target.udpPort);
        const id = (d.payload[0] << 8) | d.payload[1];
        assert.ok(round.includes(id), `an answer to this round (id ${id})`);
        assert.deepEqual(d.payload, queries.get(id), `answer for id ${id}`);
        seen.add(id);
      }
    }
    assert.equal(seen.size, ids.length);
    assert.equal(s.target.udpReceived.length, ids.length);
  } finally {
    app.close();
    control.duplex.close();
  }
}

for (const kind of ["http", "tls"] as const) {
  const via = kind === "http" ? "h2+TLS" : "tcp+TLS";

  Deno.test(`client over ${via}: curl through SOCKS5, HTTP CONNECT, HTTP absolute-form and mixed fetches 16 MiB, sha256-verified`, async () => {
    await using s = await setup(kind);
    const size = 16 * MIB + 5;
    const url = `http://127.0.0.1:${s.web.addr.port}/bytes/${size}`;
    const expected = await sha256(bodyOf(size));
    const ways: [string, string[]][] = [
      ["socks", ["--socks5-hostname", `127.0.0.1:${s.socks}`]],
      ["http CONNECT", ["--proxy", `http://127.0.0.1:${s.http}`, "--proxytunnel"]],
      ["http plain", ["--proxy", `http://127.0.0.1:${s.http}`]],
      ["mixed socks", ["--socks5-hostname", `127.0.0.1:${s.mixed}`]],
      ["mixed http", ["--proxy", `http://127.0.0.1:${s.mixed}`]],
    ];
    for (const [name, args] of ways) {
      const r = await curl([...args, url]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}\n${s.v2ray.log}`);
      assert.equal(r.stdout.byteLength, size, name);
      assert.equal(await sha256(r.stdout), expected, name);
    }
    // An upload the other way, through the SOCKS port.
    const upload = bodyOf(4 * MIB + 1);
    const post = await curl([
      "--socks5-hostname",
      `127.0.0.1:${s.socks}`,
      "--data-binary",
      "@-",
      `http://127.0.0.1:${s.web.addr.port}/sha256`,
    ], upload);
    assert.equal(post.code, 0, post.stderr);
    assert.equal(dec.decode(post.stdout), await sha256(upload));
  });

  Deno.test(`client over ${via}: SOCKS5 UDP ASSOCIATE DNS-style queries are answered through v2ray`, async () => {
    await using s = await setup(kind);
    await dnsOverSocks(s, { queries: 8, atOnce: 1 });
  });

  Deno.test(`client over ${via}: a resolver's A and AAAA queries sent together are both answered`, async () => {
    await using s = await setup(kind);
    await dnsOverSocks(s, { queries: 8, atOnce: 2 });
  });

  Deno.test(`client over ${via}: 500 concurrent SOCKS connections each get their own bytes back`, async () => {
    await using s = await setup(kind);
    const conns: SocksConn[] = [];
    try {
      const results = await within(
        Promise.all(Array.from({ length: 500 }, async (_, i) => {
          const c = await socksConnect(s.socks, 1, "127.0.0.1", s.target.tcpPort);
          conns.push(c);
          await echoThrough(c, enc.encode(`connection ${i};`.repeat(40 + i % 50)));
          c.duplex.close();
          return true;
        })),
        BULK_MS,
        "500 concurrent connections",
      );
      assert.equal(results.length, 500);
      assert.equal(s.target.accepted, 500);
    } finally {
      for (const c of conns) c.duplex.close();
    }
  });

  Deno.test(`client over ${via}: 500 idle SOCKS connections do not disturb a 32 MiB transfer`, async () => {
    await using s = await setup(kind);
    const idle: SocksConn[] = [];
    try {
      await within(
        (async () => {
          // In batches, as browsers open them; each has its CONNECT answered, then goes silent.
          for (let batch = 0; batch < 10; batch++) {
            idle.push(
              ...await Promise.all(
                Array.from(
                  { length: 50 },
                  () => socksConnect(s.socks, 1, "127.0.0.1", s.target.tcpPort),
                ),
              ),
            );
          }
        })(),
        BULK_MS,
        "500 idle connections",
      );
      assert.equal(idle.length, 500);
      const c = await socksConnect(s.socks, 1, "127.0.0.1", s.target.tcpPort);
      try {
        const n = 32 * MIB;
        await c.writer.write(enc.encode(`download ${n}\n`));
        const got = await within(readHashed(c.reader, n, c.carry), BULK_MS, "32 MiB download");
        assert.equal(got, sha256OfPattern(n));
        assert.equal((await within(c.reader.read(), NET_MS, "EOF")).done, true);
      } finally {
        c.duplex.close();
      }
      // The idle ones are all still there and still work.
      assert.ok(s.dray.inbound("socks").active >= 500, `active ${s.dray.inbound("socks").active}`);
      for (const i of [0, 249, 499]) {
        await within(echoThrough(idle[i], enc.encode(`late ${i}`)), NET_MS, `idle ${i}`);
      }
    } finally {
      for (const c of idle) c.duplex.close();
    }
  });
}
