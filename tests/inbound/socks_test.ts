import assert from "node:assert/strict";
import { MixedInbound } from "../../lib/inbound/mixed.ts";
import { replyFor, SocksInbound } from "../../lib/inbound/socks.ts";
import { encodeReply, encodeUdpDatagram, parseUdpDatagram, Reply } from "../../lib/socks/socks5.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { concat, FakeOutbound, readAll, readN, testContext } from "../support/fake_outbound.ts";
import { EchoServer } from "../support/echo_server.ts";
import { bodyOf, curl, sha256, startInbound, startTarget } from "../support/proxy_e2e.ts";
import { encodeSocks4Request, socksConnect } from "../support/socks_client.ts";
import { assertConnectAtEverySplit, exchangeAtSplit } from "../support/connect_split.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function domainRequest(cmd: number, host: string, port: number): Uint8Array {
  const name = enc.encode(host);
  return Uint8Array.of(5, cmd, 0, 3, name.byteLength, ...name, port >> 8, port & 0xff);
}

Deno.test("replyFor() maps refused to 05 and other failures to 01", () => {
  const refused = new Deno.errors.ConnectionRefused("x");
  assert.equal(replyFor(new Error("dial failed", { cause: refused })), Reply.connectionRefused);
  assert.equal(replyFor(new Error("boom")), Reply.generalFailure);
  assert.equal(replyFor(new Deno.errors.TimedOut("slow")), Reply.hostUnreachable);
});

Deno.test("SocksInbound answers malformed input correctly at every split point", async () => {
  const cases: { name: string; input: Uint8Array; reply: number[]; auth?: boolean }[] = [
    { name: "no acceptable method", input: Uint8Array.of(5, 1, 2), reply: [5, 0xff] },
    {
      name: "BIND",
      input: Uint8Array.of(5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80),
      reply: [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "unknown command",
      input: Uint8Array.of(5, 1, 0, 5, 0x7f, 0, 1, 1, 2, 3, 4, 0, 80),
      reply: [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "unknown ATYP",
      input: Uint8Array.of(5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80),
      reply: [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "empty domain",
      input: Uint8Array.of(5, 1, 0, 5, 1, 0, 3, 0, 0, 80),
      reply: [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "UDP ASSOCIATE disabled",
      input: Uint8Array.of(5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0),
      reply: [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
    },
    { name: "version 6", input: Uint8Array.of(6, 1, 0), reply: [] },
    {
      name: "SOCKS4 BIND",
      input: Uint8Array.of(4, 2, 0, 80, 1, 2, 3, 4, 0),
      reply: [0, 91, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "SOCKS4a with an empty host name",
      input: Uint8Array.of(4, 1, 0, 80, 0, 0, 0, 1, 0x75, 0, 0),
      reply: [0, 91, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "SOCKS4 where a password is required",
      input: Uint8Array.of(4, 1, 0, 80, 1, 2, 3, 4, 0),
      reply: [0, 91, 0, 0, 0, 0, 0, 0],
      auth: true,
    },
    { name: "truncated request", input: Uint8Array.of(5, 1, 0, 5, 1, 0, 1, 1, 2), reply: [5, 0] },
    {
      name: "wrong password",
      input: Uint8Array.of(5, 1, 2, 1, 1, 0x61, 1, 0x78),
      reply: [5, 2, 1, 1],
      auth: true,
    },
  ];
  for (const c of cases) {
    const inbound = new SocksInbound(
      c.auth ? { auth: "password", accounts: [{ user: "a", pass: "secret" }] } : {},
    );
    for (let split = 0; split <= c.input.byteLength; split++) {
      const { got, result } = await exchangeAtSplit(inbound, c.input, split);
      assert.deepEqual([...got], c.reply, `${c.name}, split at ${split}`);
      assert.notEqual(result.result, "ok", `${c.name}, split at ${split}`);
    }
  }
});

Deno.test("SocksInbound CONNECT relays to the outbound at every split of the request", async () => {
  await assertConnectAtEverySplit(
    () => new SocksInbound(),
    concat([Uint8Array.of(5, 1, 0), domainRequest(1, "example.com", 80)]),
    [[5, 0], [...encodeReply(Reply.succeeded)]],
    { network: "tcp", host: "example.com", port: 80 },
    "tcp:example.com:80",
  );
});

Deno.test("SocksInbound accepts the right password and relays", async () => {
  const outbound = new FakeOutbound();
  const inbound = new SocksInbound({ auth: "password", accounts: [{ user: "u", pass: "p" }] });
  const [client, server] = duplexPair();
  const handled = inbound.handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  await w.write(Uint8Array.of(5, 2, 0, 2, 1, 1, 0x75, 1, 0x70));
  await w.write(Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, 0, 22));
  const reader = client.readable.getReader();
  assert.deepEqual([...await readN(reader, 4)], [5, 2, 1, 0]);
  assert.deepEqual([...await readN(reader, 10)], [...encodeReply(0)]);
  const { dest, peer } = await outbound.next();
  assert.equal(dest.host, "127.0.0.1");
  assert.equal(dest.port, 22);
  await w.close();
  await peer.writable.close();
  assert.equal((await reader.read()).done, true);
  assert.equal((await readAll(peer.readable)).byteLength, 0);
  assert.equal((await handled).result, "ok");
  client.close();
  await outbound.close();
});

Deno.test("SocksInbound replies 05 when the outbound is refused and 01 on other failures", async () => {
  const request = Uint8Array.of(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 9);
  for (
    const [err, rep] of [
      [new Deno.errors.ConnectionRefused("refused"), 5],
      [new Error("no route"), 1],
    ] as const
  ) {
    const outbound = new FakeOutbound();
    outbound.fail = err;
    const { got, result } = await exchangeAtSplit(new SocksInbound(), request, 0, { outbound });
    assert.deepEqual([...got], [5, 0, ...encodeReply(rep)]);
    assert.match(result.result, new RegExp(err.message));
    assert.equal(result.destination, "tcp:127.0.0.1:9");
  }
});

Deno.test("SocksInbound closes a silent client at the handshake deadline", async () => {
  const [client, server] = duplexPair();
  const t0 = Date.now();
  const result = await new SocksInbound().handle(
    server,
    testContext(new FakeOutbound(), { policy: { handshake: 50 } }),
  );
  assert.equal(result.result, "handshake timeout");
  assert.ok(Date.now() - t0 >= 45);
  assert.equal((await readAll(client.readable)).byteLength, 0);
  client.close();
});

Deno.test("SocksInbound closes a client stuck mid-greeting at the handshake deadline", async () => {
  const [client, server] = duplexPair();
  const handled = new SocksInbound().handle(
    server,
    testContext(new FakeOutbound(), { policy: { handshake: 50 } }),
  );
  const w = client.writable.getWriter();
  await w.write(Uint8Array.of(5, 3, 0));
  assert.equal((await handled).result, "handshake timeout");
  client.close();
});

/** A UDP socket standing in for the application behind the SOCKS client. */
function udpSocket(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

/**
 * Runs a UDP ASSOCIATE (client port unknown: DST 0.0.0.0:0) on a fresh SocksInbound over an
 * in-memory connection; returns the control connection's writer and reader, the relay address
 * from the reply, and the handler's result.
 */
async function associate(outbound: FakeOutbound) {
  const [client, server] = duplexPair();
  const handled = new SocksInbound({ udp: true }).handle(
    server,
    testContext(outbound, {
      source: { host: "127.0.0.1", port: 50000 },
      localAddress: "127.0.0.1",
    }),
  );
  const w = client.writable.getWriter();
  await w.write(Uint8Array.of(5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
  const reader = client.readable.getReader();
  assert.deepEqual([...await readN(reader, 2)], [5, 0]);
  const reply = await readN(reader, 10);
  const relayAddr: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: (reply[8] << 8) | reply[9],
  };
  return { client, w, reply, relayAddr, handled };
}

Deno.test("SocksInbound UDP ASSOCIATE relays datagrams both ways per destination", async () => {
  const outbound = new FakeOutbound();
  const { client, w, reply, relayAddr, handled } = await associate(outbound);
  assert.deepEqual([...reply.subarray(0, 8)], [5, 0, 0, 1, 127, 0, 0, 1]);
  assert.ok(relayAddr.port > 0);
  const app = udpSocket();
  try {
    // Dropped: a fragment, and a datagram too short for its header.
    const fragment = encodeUdpDatagram("10.0.0.9", 53, enc.encode("frag"));
    fragment[2] = 1;
    await app.send(fragment, relayAddr);
    await app.send(Uint8Array.of(0, 0, 0, 1, 10), relayAddr);
    await app.send(encodeUdpDatagram("dns.example", 53, enc.encode("query-1")), relayAddr);
    const { dest, peer } = await outbound.next();
    assert.deepEqual(dest, { network: "udp", host: "dns.example", port: 53 });
    const pr = peer.readable.getReader();
    assert.equal(dec.decode((await pr.read()).value), "query-1");
    // A second datagram to the same destination reuses the same outbound stream.
    await app.send(encodeUdpDatagram("dns.example", 53, enc.encode("query-2")), relayAddr);
    assert.equal(dec.decode((await pr.read()).value), "query-2");
    const pw = peer.writable.getWriter();
    await pw.write(enc.encode("answer"));
    const [back] = await app.receive();
    assert.deepEqual(back, encodeUdpDatagram("dns.example", 53, enc.encode("answer")));
    // Another destination gets its own stream.
    await app.send(encodeUdpDatagram("::1", 5353, enc.encode("q6")), relayAddr);
    const second = await outbound.next();
    assert.deepEqual(second.dest, { network: "udp", host: "::1", port: 5353 });
    assert.equal(outbound.opened.length, 2);
    // Closing the control connection ends the association and its streams.
    await w.close();
    const result = await handled;
    assert.equal(result.result, "ok");
    assert.equal(result.up, "query-1".length + "query-2".length + "q6".length);
    assert.equal(result.down, "answer".length);
    await pr.read().then(() => {}, () => {});
  } finally {
    app.close();
    client.close();
    await outbound.close();
  }
});

Deno.test("SocksInbound UDP ASSOCIATE reopens a destination whose outbound ended", async () => {
  const outbound = new FakeOutbound();
  const { client, w, relayAddr, handled } = await associate(outbound);
  const app = udpSocket();
  try {
    await app.send(encodeUdpDatagram("dns.example", 53, enc.encode("q1")), relayAddr);
    const first = await outbound.next();
    const r1 = first.peer.readable.getReader();
    assert.equal(dec.decode((await r1.read()).value), "q1");
    r1.releaseLock();
    // The server ends that stream (its idle timeout): the next query must not vanish into it.
    first.peer.close();
    let second: Awaited<ReturnType<typeof outbound.next>> | undefined;
    const opened = outbound.next().then((o) => (second = o));
    // The flow's end is noticed asynchronously: resend (bounded) until a new stream opens.
    for (let i = 0; i < 50 && !second; i++) {
      await app.send(encodeUdpDatagram("dns.example", 53, enc.encode("q2")), relayAddr);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([opened, new Promise((r) => (timer = setTimeout(r, 20)))]);
      clearTimeout(timer);
    }
    assert.ok(second, "no new outbound for the destination");
    assert.deepEqual(second.dest, { network: "udp", host: "dns.example", port: 53 });
    const r2 = second.peer.readable.getReader();
    assert.equal(dec.decode((await r2.read()).value), "q2");
    r2.releaseLock();
    await w.close();
    await handled;
  } finally {
    app.close();
    client.close();
    await outbound.close();
  }
});

Deno.test("SocksInbound UDP ASSOCIATE ignores datagrams from other ports than the client's", async () => {
  const outbound = new FakeOutbound();
  const [client, server] = duplexPair();
  const app = udpSocket();
  const stranger = udpSocket();
  const appPort = (app.addr as Deno.NetAddr).port;
  const handled = new SocksInbound({ udp: true }).handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  // The client announces the port it will send from (RFC 1928 §4 DST.PORT).
  await w.write(Uint8Array.of(5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, appPort >> 8, appPort & 0xff));
  const reader = client.readable.getReader();
  await readN(reader, 2);
  const reply = await readN(reader, 10);
  const relayAddr: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: (reply[8] << 8) | reply[9],
  };
  try {
    await stranger.send(encodeUdpDatagram("1.1.1.1", 53, enc.encode("evil")), relayAddr);
    await app.send(encodeUdpDatagram("1.1.1.1", 53, enc.encode("good")), relayAddr);
    const { peer } = await outbound.next();
    const pr = peer.readable.getReader();
    // The stranger's datagram was sent first; only the client's arrives.
    assert.equal(dec.decode((await pr.read()).value), "good");
    await w.close();
    const result = await handled;
    assert.equal(result.up, 4);
  } finally {
    app.close();
    stranger.close();
    client.close();
    await outbound.close();
  }
});

// ---- End to end: real sockets, InboundServer, freedom outbound ----

Deno.test("SocksInbound end to end: curl --socks5-hostname through freedom, bytes verified", async () => {
  const target = startTarget();
  const proxy = await startInbound(new SocksInbound());
  try {
    const size = 4 * 1024 * 1024 + 1;
    const r = await curl([
      "--socks5-hostname",
      `127.0.0.1:${proxy.port}`,
      `http://127.0.0.1:${target.addr.port}/bytes/${size}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(r.stdout), await sha256(bodyOf(size)));
    const upload = bodyOf(1024 * 1024 + 5);
    const post = await curl([
      "--socks5-hostname",
      `127.0.0.1:${proxy.port}`,
      "--data-binary",
      "@-",
      `http://127.0.0.1:${target.addr.port}/sha256`,
    ], upload);
    assert.equal(dec.decode(post.stdout), await sha256(upload));
  } finally {
    await proxy.close();
    await target.shutdown();
  }
});

Deno.test("SocksInbound end to end: UDP ASSOCIATE DNS-style echo through freedom", async () => {
  const echo = udpSocket();
  const echoPort = (echo.addr as Deno.NetAddr).port;
  const echoing = (async () => {
    for (let i = 0; i < 100; i++) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await echo.receive();
      } catch {
        return;
      }
      // A DNS-style answer: the query id kept, the payload reversed.
      await echo.send(got[0].slice().reverse(), got[1]);
    }
  })();
  const proxy = await startInbound(new SocksInbound({ udp: true }));
  const app = udpSocket();
  const control = await socksConnect(proxy.port, 3, "0.0.0.0", 0);
  try {
    const relayAddr: Deno.NetAddr = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: control.bndPort,
    };
    for (let i = 0; i < 5; i++) {
      const query = enc.encode(`query-${i}`);
      await app.send(encodeUdpDatagram("127.0.0.1", echoPort, query), relayAddr);
      const [answer] = await app.receive();
      const d = parseUdpDatagram(answer)!;
      assert.equal(d.host, "127.0.0.1");
      assert.equal(d.port, echoPort);
      assert.deepEqual(d.payload, query.slice().reverse());
    }
  } finally {
    control.duplex.close();
    await proxy.close();
    app.close();
    echo.close();
    await echoing;
  }
});

Deno.test("SocksInbound end to end: 500 concurrent connections each get their own bytes back", async () => {
  const echo = new EchoServer();
  const proxy = await startInbound(new SocksInbound());
  try {
    const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
      const c = await socksConnect(proxy.port, 1, "127.0.0.1", echo.port);
      try {
        const payload = enc.encode(`connection ${i} `.repeat(64));
        await c.writer.write(payload);
        await c.writer.close();
        const back = await readN(c.reader, payload.byteLength, c.carry);
        assert.equal((await c.reader.read()).done, true);
        return dec.decode(back) === dec.decode(payload);
      } finally {
        c.duplex.close();
      }
    }));
    assert.equal(results.filter((ok) => ok).length, 500);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("SocksInbound end to end: 500 idle silent connections do not disturb a transfer", async () => {
  const echo = new EchoServer();
  const proxy = await startInbound(new SocksInbound());
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 500; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
    }
    const c = await socksConnect(proxy.port, 1, "127.0.0.1", echo.port);
    try {
      const payload = bodyOf(8 * 1024 * 1024);
      const reading = (async () => {
        const back = await readN(c.reader, payload.byteLength, c.carry);
        return await sha256(back);
      })();
      await c.writer.write(payload);
      await c.writer.close();
      assert.equal(await reading, await sha256(payload));
    } finally {
      c.duplex.close();
    }
    // Every idle connection is still being served (waiting for its greeting).
    assert.ok(proxy.active >= 500, `active ${proxy.active}`);
  } finally {
    for (const conn of idle) conn.close();
    await proxy.close();
    await echo.close();
  }
});

Deno.test("SocksInbound serves SOCKS4a CONNECT at every split of the request", async () => {
  await assertConnectAtEverySplit(
    () => new SocksInbound(),
    encodeSocks4Request({ ip: [0, 0, 0, 1], port: 80, user: "app", host: "example.com" }),
    [[0, 90, 0, 0, 0, 0, 0, 0]],
    { network: "tcp", host: "example.com", port: 80 },
    "tcp:example.com:80",
  );
});

Deno.test("SocksInbound answers a failed SOCKS4 CONNECT with 91 (rejected or failed)", async () => {
  const outbound = new FakeOutbound();
  outbound.fail = new Deno.errors.ConnectionRefused("refused");
  const [client, server] = duplexPair();
  const handled = new SocksInbound().handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  await w.write(encodeSocks4Request({ ip: [127, 0, 0, 1], port: 9 }));
  const reader = client.readable.getReader();
  assert.deepEqual([...await readN(reader, 8)], [0, 91, 0, 0, 0, 0, 0, 0]);
  await w.close();
  assert.equal((await reader.read()).done, true);
  assert.match((await handled).result, /refused/);
  client.close();
});

Deno.test("SOCKS4 and SOCKS4a end to end: curl --socks4 / --socks4a through freedom, mixed port too", async () => {
  const target = startTarget();
  const socks = await startInbound(new SocksInbound());
  const mixed = await startInbound(new MixedInbound());
  try {
    const size = 1024 * 1024 + 3;
    const want = await sha256(bodyOf(size));
    for (const [flag, port] of [["--socks4", socks.port], ["--socks4a", mixed.port]] as const) {
      const r = await curl([
        flag,
        `127.0.0.1:${port}`,
        `http://127.0.0.1:${target.addr.port}/bytes/${size}`,
      ]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
      assert.equal(await sha256(r.stdout), want, flag);
    }
  } finally {
    await socks.close();
    await mixed.close();
    await target.shutdown();
  }
});
