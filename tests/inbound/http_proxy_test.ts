import assert from "node:assert/strict";
import { basic, HttpProxyInbound } from "../../lib/inbound/http_proxy.ts";
import { type AccessRecord, Logger } from "../../lib/log.ts";
import { MAX_HEAD_BYTES } from "../../lib/http1/read_head.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { concat, FakeOutbound, readAll, testContext } from "../support/fake_outbound.ts";
import { bodyOf, curl, sha256, startInbound, startTarget } from "../support/proxy_e2e.ts";
import { exchangeAtSplit } from "../support/connect_split.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** {@link exchangeAtSplit} with room for a head over 64 KiB in the pipe; the answer as text. */
async function exchange(
  inbound: HttpProxyInbound,
  input: Uint8Array,
  split: number,
  outbound?: FakeOutbound,
) {
  const { got, result } = await exchangeAtSplit(inbound, input, split, {
    outbound,
    highWaterMark: 256 * 1024,
  });
  return { got: dec.decode(got), result };
}

Deno.test("HttpProxyInbound answers bad requests with the right status at every split point", async () => {
  const cases: [string, number][] = [
    ["BLAH\r\n\r\n", 400],
    ["GET /relative HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["GET http://a/ HTTP/1.1\r\nAccept: */*\r\n\r\n", 400],
    ["GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ["POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400],
    ["CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", 400],
  ];
  const inbound = new HttpProxyInbound();
  for (const [text, status] of cases) {
    const input = enc.encode(text);
    for (let split = 0; split <= input.byteLength; split++) {
      const { got, result } = await exchange(inbound, input, split);
      assert.match(
        got,
        new RegExp(`^HTTP/1.1 ${status} `),
        `${JSON.stringify(text)} split ${split}`,
      );
      assert.match(got, /\r\nConnection: close\r\n/);
      assert.notEqual(result.result, "ok");
    }
  }
});

Deno.test("HttpProxyInbound answers 431 to a head over 64 KiB", async () => {
  const input = enc.encode(
    `GET http://a/ HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(MAX_HEAD_BYTES)}\r\n\r\n`,
  );
  const { got } = await exchange(new HttpProxyInbound(), input, 1000);
  assert.match(got, /^HTTP\/1.1 431 /);
});

Deno.test("HttpProxyInbound answers 407 with Proxy-Authenticate without valid credentials", async () => {
  const inbound = new HttpProxyInbound({ accounts: [{ user: "u", pass: "p" }] });
  for (const auth of ["", `Proxy-Authorization: Basic ${basic("u", "wrong")}\r\n`]) {
    const input = enc.encode(`GET http://a/ HTTP/1.1\r\nHost: a\r\n${auth}\r\n`);
    const outbound = new FakeOutbound();
    const { got } = await exchange(inbound, input, 5, outbound);
    assert.match(got, /^HTTP\/1.1 407 /);
    assert.match(got, /\r\nProxy-Authenticate: Basic realm="dray"\r\n/);
    assert.equal(outbound.opened.length, 0);
  }
});

Deno.test("HttpProxyInbound answers 502 with Connection: close when the target is unreachable", async () => {
  const outbound = new FakeOutbound();
  outbound.fail = new Deno.errors.ConnectionRefused("refused");
  for (
    const text of [
      "GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
  ) {
    const { got, result } = await exchange(new HttpProxyInbound(), enc.encode(text), 3, outbound);
    assert.match(got, /^HTTP\/1.1 502 /);
    assert.match(got, /\r\nConnection: close\r\n/);
    assert.match(result.result, /refused/);
  }
});

/** Reads from `reader` until `text` has arrived in full; returns everything read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (s: string) => boolean,
): Promise<string> {
  let s = "";
  for (let i = 0; i < 1000 && !done(s); i++) {
    const { value, done: eof } = await reader.read();
    if (eof) break;
    s += dec.decode(value);
  }
  return s;
}

Deno.test("HttpProxyInbound forwards origin-form without hop-by-hop headers, keep-alive across hosts", async () => {
  const outbound = new FakeOutbound();
  const inbound = new HttpProxyInbound({ accounts: [{ user: "u", pass: "p" }] });
  const [client, server] = duplexPair();
  const handled = inbound.handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  const cr = client.readable.getReader();
  await w.write(enc.encode(
    "GET http://one.test:8080/p?q=1 HTTP/1.1\r\nHost: wrong\r\nProxy-Connection: keep-alive\r\n" +
      `Proxy-Authorization: Basic ${
        basic("u", "p")
      }\r\nConnection: X-Drop\r\nX-Drop: 1\r\nAccept: */*\r\n\r\n`,
  ));
  const first = await outbound.next();
  assert.deepEqual(first.dest, { network: "tcp", host: "one.test", port: 8080 });
  const ur = first.peer.readable.getReader();
  const upHead = await readUntil(ur, (s) => s.includes("\r\n\r\n"));
  assert.equal(
    upHead,
    "GET /p?q=1 HTTP/1.1\r\nHost: one.test:8080\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
  );
  const uw = first.peer.writable.getWriter();
  await uw.write(
    enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello"),
  );
  const resp1 = await readUntil(cr, (s) => s.endsWith("hello"));
  assert.equal(
    resp1,
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
  );
  // The second request goes to another host on the same client connection.
  await w.write(enc.encode(
    `POST http://two.test/up HTTP/1.1\r\nHost: two.test\r\nProxy-Authorization: Basic ${
      basic("u", "p")
    }\r\n` +
      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
  ));
  const second = await outbound.next();
  assert.equal(second.dest.host, "two.test");
  // The first upstream connection was closed when the host changed.
  assert.equal((await ur.read().catch(() => ({ done: true }))).done, true);
  const sr = second.peer.readable.getReader();
  const up2 = await readUntil(sr, (s) => s.endsWith("0\r\nX-T: 1\r\n\r\n"));
  assert.equal(
    up2,
    "POST /up HTTP/1.1\r\nHost: two.test\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
  );
  const sw = second.peer.writable.getWriter();
  await sw.write(
    enc.encode("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
  );
  const resp2 = await readUntil(cr, (s) => s.endsWith("0\r\n\r\n"));
  assert.equal(
    resp2,
    "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n2\r\nok\r\n0\r\n\r\n",
  );
  // A response delimited by close makes the proxy close the client connection after it.
  await w.write(
    enc.encode(
      `GET http://two.test/last HTTP/1.1\r\nHost: two.test\r\nProxy-Authorization: Basic ${
        basic("u", "p")
      }\r\n\r\n`,
    ),
  );
  await readUntil(sr, (s) => s.includes("\r\n\r\n"));
  await w.close();
  await sw.write(enc.encode("HTTP/1.1 200 OK\r\n\r\nuntil close"));
  await sw.close();
  const resp3 = await readUntil(cr, () => false);
  assert.equal(resp3, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close");
  const result = await handled;
  assert.equal(result.destination, "tcp:one.test:8080 (+1 more)");
  assert.equal(result.result, "ok");
  client.close();
  await outbound.close();
});

Deno.test("HttpProxyInbound CONNECT answers 200 and tunnels bytes both ways", async () => {
  const outbound = new FakeOutbound();
  const [client, server] = duplexPair();
  const handled = new HttpProxyInbound().handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  // The first tunneled bytes come right behind the head.
  await w.write(enc.encode("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\nearly"));
  const cr = client.readable.getReader();
  assert.equal(
    await readUntil(cr, (s) => s.endsWith("\r\n\r\n")),
    "HTTP/1.1 200 Connection established\r\n\r\n",
  );
  const { dest, peer } = await outbound.next();
  assert.deepEqual(dest, { network: "tcp", host: "::1", port: 443 });
  const pr = peer.readable.getReader();
  assert.equal(await readUntil(pr, (s) => s === "early"), "early");
  const pw = peer.writable.getWriter();
  await pw.write(enc.encode("late"));
  assert.equal(await readUntil(cr, (s) => s === "late"), "late");
  await w.close();
  await pw.close();
  const result = await handled;
  assert.equal(result.destination, "tcp:[::1]:443");
  assert.equal(result.up, 5);
  assert.equal(result.down, 4);
  client.close();
  await outbound.close();
});

Deno.test("HttpProxyInbound closes a slowloris client at the handshake deadline", async () => {
  const [client, server] = duplexPair();
  const handled = new HttpProxyInbound().handle(
    server,
    testContext(new FakeOutbound(), { policy: { handshake: 60 } }),
  );
  const w = client.writable.getWriter();
  await w.write(enc.encode("GET http://a/ HTTP/1.1\r\nHo"));
  const result = await handled;
  assert.equal(result.result, "handshake timeout");
  client.close();
});

Deno.test("HttpProxyInbound end to end: curl plain and CONNECT through freedom, bytes verified", async () => {
  const target = startTarget();
  const proxy = await startInbound(new HttpProxyInbound());
  const base = `http://127.0.0.1:${target.addr.port}`;
  const proxyUrl = `http://127.0.0.1:${proxy.port}`;
  try {
    const size = 3 * 1024 * 1024 + 7;
    const want = await sha256(bodyOf(size));
    for (const extra of [[], ["--proxytunnel"]]) {
      const r = await curl([...extra, "--proxy", proxyUrl, `${base}/bytes/${size}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(r.stdout), want, `curl ${extra.join(" ")}`);
      const c = await curl([...extra, "--proxy", proxyUrl, `${base}/chunked/100000`]);
      assert.equal(await sha256(c.stdout), await sha256(bodyOf(100000)));
    }
    // Uploads: Content-Length and chunked request bodies.
    const upload = bodyOf(2 * 1024 * 1024 + 3);
    const digest = await sha256(upload);
    const post = await curl(["--proxy", proxyUrl, "--data-binary", "@-", `${base}/sha256`], upload);
    assert.equal(dec.decode(post.stdout), digest, post.stderr);
    const chunked = await curl(
      [
        "--proxy",
        proxyUrl,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@-",
        `${base}/sha256`,
      ],
      upload,
    );
    assert.equal(dec.decode(chunked.stdout), digest, chunked.stderr);
    // Two URLs on one curl run share the client connection (keep-alive).
    const two = await curl(["--proxy", proxyUrl, `${base}/bytes/10`, `${base}/bytes/20`]);
    assert.deepEqual(two.stdout, concat([bodyOf(10), bodyOf(20)]));
    // Proxy-Authorization never reaches the target.
    const hdrs = await curl([
      "--proxy",
      proxyUrl,
      "--proxy-user",
      "a:b",
      `${base}/echo-headers?x=1`,
    ]);
    const seen = JSON.parse(dec.decode(hdrs.stdout));
    assert.equal(seen.path, "/echo-headers?x=1");
    const names = seen.headers.map(([n]: [string]) => n);
    assert.ok(!names.includes("proxy-authorization"));
    assert.ok(!names.includes("proxy-connection"));
  } finally {
    await proxy.close();
    await target.shutdown();
  }
});

Deno.test("HttpProxyInbound logs a plain GET with the bytes that went upstream and came back", async () => {
  const outbound = new FakeOutbound();
  const logger = Logger.silent();
  const access: AccessRecord[] = [];
  logger.access = (r) => void access.push(r);
  const [client, server] = duplexPair();
  const handled = new HttpProxyInbound().handle(server, testContext(outbound, { logger }));
  const w = client.writable.getWriter();
  await w.write(enc.encode("GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  const { peer } = await outbound.next();
  const pr = peer.readable.getReader();
  let sent = "";
  for (let i = 0; i < 100 && !sent.endsWith("\r\n\r\n"); i++) {
    const { value } = await pr.read();
    sent += dec.decode(value);
  }
  const response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  await peer.writable.getWriter().write(enc.encode(response));
  await w.close();
  const got = dec.decode(await readAll(client.readable));
  assert.match(got, /\r\n\r\nhi$/);
  const result = await handled;
  assert.equal(access.length, 1);
  assert.equal(access[0].destination, "tcp:a.test:80");
  assert.equal(access[0].outbound, "fake");
  assert.equal(access[0].up, sent.length);
  assert.equal(access[0].down, response.length);
  assert.deepEqual([result.up, result.down], [sent.length, response.length]);
  client.close();
  await outbound.close();
});
