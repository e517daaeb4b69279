import assert from "node:assert/strict";
import { ConnectionError, ErrorCode, StreamError } from "../../lib/h2/errors.ts";
import {
  H2ServerConnection,
  type H2ServerOptions,
  type H2ServerStream,
} from "../../lib/h2/server_connection.ts";
import {
  H2ClientPeer,
  literalBlock,
  type PeerFrame,
  readU32,
  requestFields,
  S,
  T,
  u32,
} from "../support/h2_client_peer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const KIB = 1024;

/** Streams the server hands over, in order, awaitable one at a time. */
class StreamQueue {
  readonly seen: H2ServerStream[] = [];
  #waiters: Array<(s: H2ServerStream) => void> = [];
  #next = 0;
  push = (s: H2ServerStream): void => {
    this.seen.push(s);
    this.#waiters.shift()?.(s);
  };
  next(): Promise<H2ServerStream> {
    const i = this.#next++;
    if (i < this.seen.length) return Promise.resolve(this.seen[i]);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

interface Setup extends AsyncDisposable {
  conn: H2ServerConnection;
  peer: H2ClientPeer;
  streams: StreamQueue;
}

async function setup(
  options: H2ServerOptions = {},
  settings: Array<[number, number]> = [],
  onStream?: (s: H2ServerStream) => void,
): Promise<Setup> {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const streams = new StreamQueue();
  const [conn] = await Promise.all([
    H2ServerConnection.accept(server, (s) => {
      streams.push(s);
      onStream?.(s);
    }, { readIdleTimeout: 0, ...options }),
    peer.clientHandshake(settings),
  ]);
  return {
    conn,
    peer,
    streams,
    async [Symbol.asyncDispose]() {
      conn.close();
      peer.close();
      await conn.closed;
    },
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail("expected a rejection");
}

/** Proves the connection still works: a PING is answered. */
async function assertAlive(peer: H2ClientPeer): Promise<void> {
  const data = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]);
  await peer.ping(data);
  for (let i = 0; i < 100; i++) {
    const f = await peer.readFrame();
    assert.ok(f, "connection still open");
    if (f.type === T.PING) {
      assert.equal(f.flags & 1, 1);
      assert.deepEqual(f.payload, data);
      return;
    }
    assert.notEqual(f.type, T.GOAWAY, `unexpected GOAWAY code ${f && readU32(f.payload, 4)}`);
  }
  assert.fail("no PING ACK");
}

/** The DATA payload bytes on `streamId` until END_STREAM. */
async function readBody(peer: H2ClientPeer, streamId: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 10_000; i++) {
    const f = await peer.expectOn(T.DATA, streamId);
    parts.push(f.payload);
    if (f.flags & 1) {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.byteLength;
      }
      return out;
    }
  }
  throw new Error("too many DATA frames");
}

function headersOf(peer: H2ClientPeer, f: PeerFrame): Map<string, string> {
  return new Map(peer.decodeHeaders(f));
}

Deno.test("H2ServerConnection.accept() sends SETTINGS and a connection WINDOW_UPDATE, ACKs the client's SETTINGS", async () => {
  await using s = await setup({ maxConcurrentStreams: 7 });
  assert.equal(s.peer.serverSettings.get(S.MAX_CONCURRENT_STREAMS), 7);
  assert.equal(s.peer.serverSettings.get(S.INITIAL_WINDOW_SIZE), 4 * 1024 * 1024);
  assert.equal(s.peer.serverConnectionWindowUpdate, 16 * 1024 * 1024 - 65_535);
  // The client's SETTINGS were ACKed before the handshake finished (skipped by clientHandshake
  // only as a WINDOW_UPDATE or the ACK): a PING round trip proves nothing else is pending.
  await assertAlive(s.peer);
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerConnection.accept() ACKs the client's SETTINGS", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const accepting = H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 0 });
  await peer.sendPreface([[S.INITIAL_WINDOW_SIZE, 1000]]);
  const settings = await peer.readFrame();
  assert.equal(settings?.type, T.SETTINGS);
  assert.equal(settings?.flags, 0);
  const ack = await peer.expectOn(T.SETTINGS);
  assert.equal(ack.flags & 1, 1);
  assert.equal(ack.payload.byteLength, 0);
  const conn = await accepting;
  conn.close();
  peer.close();
  assert.equal(await conn.closed, undefined);
});

Deno.test("H2ServerConnection.accept() rejects an invalid preface with GOAWAY PROTOCOL_ERROR", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const accepting = H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 0 });
  await peer.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const err = await rejection(accepting);
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(err.message, /invalid client preface/);
  const goAway = await peer.expectGoAway();
  assert.equal(goAway.code, ErrorCode.PROTOCOL_ERROR);
  assert.equal(await peer.readFrame(), null, "then the connection closes");
  peer.close();
});

Deno.test("H2ServerConnection.accept() rejects a preface split across reads only when a byte differs", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const accepting = H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 0 });
  await peer.write(enc.encode("PRI * HTTP/2.0\r\n"));
  await peer.write(enc.encode("\r\nSM\r\n\r\n"));
  await peer.send(T.SETTINGS, 0, 0);
  const conn = await accepting;
  conn.close();
  peer.close();
  await conn.closed;

  const second = H2ClientPeer.pairWithServer();
  const failing = H2ServerConnection.accept(second.server, () => {}, { readIdleTimeout: 0 });
  await second.peer.write(enc.encode("PRI * HTTP/2.0\r\n"));
  await second.peer.write(enc.encode("\r\nSX\r\n\r\n"));
  const err = await rejection(failing);
  assert.match(err.message, /invalid client preface at byte 19/);
  second.peer.close();
});

Deno.test("H2ServerConnection.accept() rejects a first frame other than SETTINGS", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const accepting = H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 0 });
  await peer.write(enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  await peer.ping(new Uint8Array(8));
  const err = await rejection(accepting);
  assert.match(err.message, /first frame from the client is type 6/);
  assert.equal((await peer.expectGoAway()).code, ErrorCode.PROTOCOL_ERROR);
  peer.close();
});

Deno.test("H2ServerConnection.accept() gives up with SETTINGS_TIMEOUT when the client sends nothing", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const err = await rejection(
    H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 0, settingsTimeout: 50 }),
  );
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.SETTINGS_TIMEOUT);
  assert.equal((await peer.expectGoAway()).code, ErrorCode.SETTINGS_TIMEOUT);
  peer.close();
});

Deno.test("H2ServerConnection hands a request to onStream; respond() sends HEADERS at once, the body follows with END_STREAM", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields("/up?x=1", [["user-agent", "test"]]));
  const stream = await s.streams.next();
  assert.equal(stream.id, 1);
  assert.deepEqual(stream.request, {
    method: "POST",
    scheme: "https",
    authority: "example.com",
    path: "/up?x=1",
    headers: [["user-agent", "test"]],
  });
  stream.respond(200, [["cache-control", "no-store"]]);
  // HEADERS arrive before any request byte was sent: nothing waits for the body.
  const h = await s.peer.expectOn(T.HEADERS, 1);
  assert.equal(h.flags & 1, 0, "no END_STREAM");
  const fields = headersOf(s.peer, h);
  assert.equal(fields.get(":status"), "200");
  assert.equal(fields.get("cache-control"), "no-store");

  // Full duplex: request body in, response body out, then each side ends.
  await s.peer.data(1, "hello");
  const reader = stream.readable.getReader();
  assert.equal(dec.decode((await reader.read()).value), "hello");
  const w = stream.writable.getWriter();
  await w.write(enc.encode("world"));
  assert.equal(dec.decode((await s.peer.expectOn(T.DATA, 1)).payload), "world");
  await s.peer.data(1, "!", { endStream: true });
  assert.equal(dec.decode((await reader.read()).value), "!");
  assert.equal((await reader.read()).done, true);
  assert.equal(stream.state, "half-closed-remote");
  await w.close();
  const end = await s.peer.expectOn(T.DATA, 1);
  assert.equal(end.flags & 1, 1);
  assert.equal(end.payload.byteLength, 0);
  assert.equal(stream.state, "closed");
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerStream: writing before respond() sends a 200 first; respond() with endStream ends the stream", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields(), { endStream: true });
  const a = await s.streams.next();
  const w = a.writable.getWriter();
  await w.write(enc.encode("x"));
  await w.close();
  const h = await s.peer.expectOn(T.HEADERS, 1);
  assert.equal(headersOf(s.peer, h).get(":status"), "200");
  assert.deepEqual(await readBody(s.peer, 1), enc.encode("x"));

  await s.peer.request(3, requestFields(), { endStream: true });
  const b = await s.streams.next();
  b.respond(404, [], { endStream: true });
  const h3 = await s.peer.expectOn(T.HEADERS, 3);
  assert.equal(h3.flags & 1, 1, "END_STREAM on HEADERS");
  assert.equal(headersOf(s.peer, h3).get(":status"), "404");
  assert.equal(b.state, "closed");
  assert.throws(() => b.respond(200), TypeError);
  assert.throws(() => a.respond(200, [["Connection", "close"]]), TypeError);
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerConnection returns receive credit as the handler reads, not as DATA arrives", async () => {
  // Windows whose refresh threshold (an eighth, at least 64 KiB) is below the 80 KiB sent.
  await using s = await setup({ initialWindowSize: 512 * KIB, connectionWindowSize: 512 * KIB });
  await s.peer.request(1, requestFields());
  const stream = await s.streams.next();
  await s.peer.data(1, new Uint8Array(40 * KIB));
  await s.peer.data(1, new Uint8Array(40 * KIB));
  // PING is answered in order with what the server sends: no WINDOW_UPDATE came before its ACK.
  await s.peer.ping(new Uint8Array(8));
  const first = await s.peer.readFrame();
  assert.equal(first?.type, T.PING, `got type ${first?.type} before the PING ACK`);
  const reader = stream.readable.getReader();
  let got = 0;
  for (let i = 0; i < 10 && got < 80 * KIB; i++) got += (await reader.read()).value!.byteLength;
  assert.equal(got, 80 * KIB);
  const updates = new Map<number, number>();
  for (let i = 0; i < 10 && updates.size < 2; i++) {
    const f = await s.peer.expectOn(T.WINDOW_UPDATE);
    updates.set(f.streamId, readU32(f.payload));
  }
  assert.equal(updates.get(0), 80 * KIB);
  assert.equal(updates.get(1), 80 * KIB);
  reader.releaseLock();
});

Deno.test("H2ServerStream.writable sends DATA bounded by the stream window and the client's MAX_FRAME_SIZE", async () => {
  await using s = await setup({}, [[S.INITIAL_WINDOW_SIZE, 1000]]);
  await s.peer.request(1, requestFields(), { endStream: true });
  const stream = await s.streams.next();
  const w = stream.writable.getWriter();
  const writing = w.write(new Uint8Array(40_000).fill(7));
  writing.catch(() => {});
  await s.peer.expectOn(T.HEADERS, 1);
  const d1 = await s.peer.expectOn(T.DATA, 1);
  assert.equal(d1.payload.byteLength, 1000, "the stream window");
  await s.peer.windowUpdate(1, 39_000);
  let got = 0;
  for (let i = 0; i < 10 && got < 39_000; i++) {
    const d = await s.peer.expectOn(T.DATA, 1);
    assert.ok(d.payload.byteLength <= 16_384, `frame of ${d.payload.byteLength} bytes`);
    got += d.payload.byteLength;
  }
  assert.equal(got, 39_000);
  await writing;
  w.releaseLock();
});

Deno.test("H2ServerStream.writable waits for the connection window too", async () => {
  await using s = await setup({}, [[S.INITIAL_WINDOW_SIZE, 1 << 20]]);
  await s.peer.request(1, requestFields(), { endStream: true });
  const stream = await s.streams.next();
  // The connection window starts at 65535 (RFC 9113 §6.9.2) and the client never raises it.
  const w = stream.writable.getWriter();
  const writing = w.write(new Uint8Array(100_000));
  writing.catch(() => {});
  await s.peer.expectOn(T.HEADERS, 1);
  let got = 0;
  for (let i = 0; i < 20 && got < 65_535; i++) {
    got += (await s.peer.expectOn(T.DATA, 1)).payload.byteLength;
  }
  assert.equal(got, 65_535);
  await s.peer.windowUpdate(0, 100_000);
  for (let i = 0; i < 20 && got < 100_000; i++) {
    got += (await s.peer.expectOn(T.DATA, 1)).payload.byteLength;
  }
  assert.equal(got, 100_000);
  await writing;
  w.releaseLock();
});

Deno.test("H2ServerConnection: a shrinking SETTINGS_INITIAL_WINDOW_SIZE stops a stream; a WINDOW_UPDATE resumes it", async () => {
  await using s = await setup({}, [[S.INITIAL_WINDOW_SIZE, 10]]);
  await s.peer.request(1, requestFields(), { endStream: true });
  const stream = await s.streams.next();
  const w = stream.writable.getWriter();
  const writing = w.write(new Uint8Array(30));
  writing.catch(() => {});
  await s.peer.expectOn(T.HEADERS, 1);
  assert.equal((await s.peer.expectOn(T.DATA, 1)).payload.byteLength, 10);
  await s.peer.settings([[S.INITIAL_WINDOW_SIZE, 0]]);
  await s.peer.expectOn(T.SETTINGS); // the ACK
  await s.peer.settings([[S.INITIAL_WINDOW_SIZE, 15]]);
  assert.equal((await s.peer.expectOn(T.DATA, 1)).payload.byteLength, 5);
  await s.peer.windowUpdate(1, 100);
  assert.equal((await s.peer.expectOn(T.DATA, 1)).payload.byteLength, 15);
  await writing;
  w.releaseLock();
});

Deno.test("H2ServerConnection: an even stream id is a connection PROTOCOL_ERROR", async () => {
  await using s = await setup();
  await s.peer.request(2, requestFields());
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.debug, /even stream 2/);
  const err = await s.conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(s.streams.seen.length, 0);
});

Deno.test("H2ServerConnection: a stream id lower than one already used is a connection PROTOCOL_ERROR", async () => {
  await using s = await setup();
  await s.peer.request(5, requestFields());
  await s.streams.next();
  await s.peer.request(3, requestFields());
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.equal(g.lastStreamId, 5);
  assert.match(g.debug, /ids must increase/);
});

Deno.test("H2ServerConnection: HEADERS on a stream that ended both ways is a connection STREAM_CLOSED", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields(), { endStream: true });
  const stream = await s.streams.next();
  stream.respond(200, [], { endStream: true });
  await s.peer.expectOn(T.HEADERS, 1);
  await s.peer.request(1, requestFields(), { endStream: true });
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.STREAM_CLOSED);
});

Deno.test("H2ServerConnection: DATA or HEADERS after the client's END_STREAM resets the stream with STREAM_CLOSED", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields(), { endStream: true });
  const a = await s.streams.next();
  await s.peer.data(1, "late");
  assert.equal(await s.peer.expectReset(1), ErrorCode.STREAM_CLOSED);
  assert.ok(a.error instanceof StreamError);
  await s.peer.request(3, requestFields(), { endStream: true });
  await s.streams.next();
  await s.peer.request(3, [["x-trailer", "1"]], { endStream: true });
  assert.equal(await s.peer.expectReset(3), ErrorCode.STREAM_CLOSED);
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: frames on an idle stream are a connection PROTOCOL_ERROR", async () => {
  for (const send of ["data", "rst", "window"] as const) {
    await using s = await setup();
    if (send === "data") await s.peer.data(9, "x");
    if (send === "rst") await s.peer.rst(9, ErrorCode.CANCEL);
    if (send === "window") await s.peer.windowUpdate(9, 10);
    const g = await s.peer.expectGoAway();
    assert.equal(g.code, ErrorCode.PROTOCOL_ERROR, send);
    assert.match(g.debug, /idle stream 9/);
  }
});

Deno.test("H2ServerConnection refuses streams past MAX_CONCURRENT_STREAMS with REFUSED_STREAM and serves the others", async () => {
  await using s = await setup({ maxConcurrentStreams: 2 });
  await s.peer.request(1, requestFields());
  await s.peer.request(3, requestFields());
  await s.peer.request(5, requestFields());
  assert.equal(await s.peer.expectReset(5), ErrorCode.REFUSED_STREAM);
  assert.deepEqual(s.streams.seen.map((x) => x.id), [1, 3]);
  assert.equal(s.conn.activeStreams, 2);
  // Once one finishes, a new stream fits.
  const first = s.streams.seen[0];
  first.respond(200, [], { endStream: true });
  await s.peer.data(1, "", { endStream: true });
  await s.peer.request(7, requestFields());
  assert.equal((await s.streams.next()).id, 1);
  assert.equal((await s.streams.next()).id, 3);
  assert.equal((await s.streams.next()).id, 7);
});

Deno.test("H2ServerConnection resets malformed requests with PROTOCOL_ERROR and never hands them over", async () => {
  const cases: Array<[string, Array<[string, string]>]> = [
    ["no :path", [[":method", "GET"], [":scheme", "https"], [":authority", "a"]]],
    ["no :method", [[":scheme", "https"], [":path", "/"]]],
    ["no :scheme", [[":method", "GET"], [":path", "/"]]],
    ["empty :path", requestFields("").map(([k, v]) => [k, v])],
    [":status", requestFields("/", [[":status", "200"]])],
    ["unknown pseudo", requestFields("/", [[":protocol", "x"]])],
    ["duplicate :path", requestFields("/", [[":path", "/b"]])],
    ["pseudo after regular", [
      [":method", "GET"],
      [":scheme", "https"],
      ["accept", "*/*"],
      [":path", "/"],
    ]],
    ["uppercase name", requestFields("/", [["Accept", "*/*"]])],
    ["connection header", requestFields("/", [["connection", "keep-alive"]])],
    ["transfer-encoding", requestFields("/", [["transfer-encoding", "chunked"]])],
    ["te: gzip", requestFields("/", [["te", "gzip"]])],
    ["newline in value", requestFields("/", [["x-a", "b\nc"]])],
    ["CONNECT with :path", [[":method", "CONNECT"], [":authority", "a:1"], [":path", "/"]]],
  ];
  await using s = await setup();
  let id = 1;
  for (const [what, fields] of cases) {
    await s.peer.request(id, fields, { endStream: true });
    assert.equal(await s.peer.expectReset(id), ErrorCode.PROTOCOL_ERROR, what);
    id += 2;
  }
  assert.equal(s.streams.seen.length, 0);
  // A valid CONNECT and te: trailers pass.
  await s.peer.request(id, [[":method", "CONNECT"], [":authority", "a:1"]]);
  assert.equal((await s.streams.next()).request.authority, "a:1");
  await s.peer.request(id + 2, requestFields("/", [["te", "trailers"]]));
  assert.equal((await s.streams.next()).id, id + 2);
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: the Host header stands in for a missing :authority", async () => {
  await using s = await setup();
  await s.peer.request(1, [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    ["host", "h.example"],
  ], { endStream: true });
  assert.equal((await s.streams.next()).request.authority, "h.example");
});

Deno.test("H2ServerConnection: trailers end the request; trailers with a pseudo-header or content-length mismatch reset it", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const a = await s.streams.next();
  await s.peer.data(1, "abc");
  await s.peer.request(1, [["x-checksum", "1"]], { endStream: true });
  assert.equal(dec.decode(await readAll(a.readable)), "abc");

  await s.peer.request(3, requestFields());
  await s.streams.next();
  await s.peer.request(3, [[":path", "/x"]], { endStream: true });
  assert.equal(await s.peer.expectReset(3), ErrorCode.PROTOCOL_ERROR);

  await s.peer.request(5, requestFields("/", [["content-length", "10"]]));
  const c = await s.streams.next();
  await s.peer.data(5, "short", { endStream: true });
  assert.equal(await s.peer.expectReset(5), ErrorCode.PROTOCOL_ERROR);
  assert.match((await rejection(readAll(c.readable))).message, /content-length 10 but 5/);
});

Deno.test("H2ServerConnection: DATA past the stream window resets the stream with FLOW_CONTROL_ERROR and credits the connection", async () => {
  await using s = await setup({ initialWindowSize: 1000, connectionWindowSize: 65_535 });
  await s.peer.request(1, requestFields());
  const stream = await s.streams.next();
  await s.peer.data(1, new Uint8Array(1001));
  assert.equal(await s.peer.expectReset(1), ErrorCode.FLOW_CONTROL_ERROR);
  assert.ok(stream.error instanceof StreamError);
  // Those bytes were credited back: another 64000 fit the 65535 connection window.
  await s.peer.request(3, requestFields());
  await s.streams.next();
  await s.peer.data(3, new Uint8Array(900));
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: DATA past the connection window is a connection FLOW_CONTROL_ERROR", async () => {
  await using s = await setup({ connectionWindowSize: 65_535 });
  await s.peer.request(1, requestFields());
  await s.streams.next();
  await s.peer.data(1, new Uint8Array(40_000));
  await s.peer.data(1, new Uint8Array(40_000));
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.FLOW_CONTROL_ERROR);
  assert.match(g.debug, /connection window/);
});

Deno.test("H2ServerConnection: WINDOW_UPDATE past 2^31-1 is FLOW_CONTROL_ERROR on the stream or the connection", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  await s.streams.next();
  await s.peer.windowUpdate(1, 2 ** 31 - 1);
  assert.equal(await s.peer.expectReset(1), ErrorCode.FLOW_CONTROL_ERROR);
  await s.peer.windowUpdate(0, 2 ** 31 - 1);
  assert.equal((await s.peer.expectGoAway()).code, ErrorCode.FLOW_CONTROL_ERROR);
});

Deno.test("H2ServerConnection: a CONTINUATION flood ends the connection with ENHANCE_YOUR_CALM", async () => {
  await using s = await setup();
  const block = literalBlock(requestFields());
  const frames = [s.peer.frame(T.HEADERS, 0, 1, block.subarray(0, 1))];
  for (let i = 0; i < 100; i++) frames.push(s.peer.frame(T.CONTINUATION, 0, 1));
  // One write: the server may close as soon as it has seen enough.
  await s.peer.write(concat(frames));
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
  assert.match(g.debug, /CONTINUATION/);
});

Deno.test("H2ServerConnection: an oversized header block ends the connection with ENHANCE_YOUR_CALM", async () => {
  await using s = await setup({ maxHeaderListSize: 4096 });
  await s.peer.write(concat([
    s.peer.frame(T.HEADERS, 0, 1, new Uint8Array(3000)),
    s.peer.frame(T.CONTINUATION, 0, 1, new Uint8Array(3000)),
  ]));
  assert.equal((await s.peer.expectGoAway()).code, ErrorCode.ENHANCE_YOUR_CALM);
});

Deno.test("H2ServerConnection: HEADERS + CONTINUATION is one request; a frame between them is a PROTOCOL_ERROR", async () => {
  await using s = await setup();
  const block = literalBlock(requestFields("/split"));
  await s.peer.send(T.HEADERS, 1, 1, block.subarray(0, 10)); // END_STREAM, no END_HEADERS
  await s.peer.send(T.CONTINUATION, 4, 1, block.subarray(10));
  const stream = await s.streams.next();
  assert.equal(stream.request.path, "/split");
  assert.equal(stream.state, "half-closed-remote");
  await s.peer.send(T.HEADERS, 0, 3, block.subarray(0, 10));
  await s.peer.ping(new Uint8Array(8));
  assert.equal((await s.peer.expectGoAway()).code, ErrorCode.PROTOCOL_ERROR);
});

Deno.test("H2ServerConnection answers PING with the same payload and rejects PUSH_PROMISE", async () => {
  await using s = await setup();
  await assertAlive(s.peer);
  await s.peer.send(T.PUSH_PROMISE, 4, 1, new Uint8Array([0, 0, 0, 2]));
  assert.equal((await s.peer.expectGoAway()).code, ErrorCode.PROTOCOL_ERROR);
});

Deno.test("H2ServerConnection: a frame larger than our MAX_FRAME_SIZE is FRAME_SIZE_ERROR", async () => {
  await using s = await setup({ maxFrameSize: 16_384 });
  await s.peer.request(1, requestFields());
  await s.peer.data(1, new Uint8Array(16_385));
  assert.equal((await s.peer.expectGoAway()).code, ErrorCode.FRAME_SIZE_ERROR);
});

Deno.test("H2ServerConnection: padding counts against flow control and is credited back at once", async () => {
  await using s = await setup({ connectionWindowSize: 65_535 });
  await s.peer.request(1, requestFields());
  const stream = await s.streams.next();
  await s.peer.data(1, "abc", { pad: 200, endStream: true });
  assert.equal(dec.decode(await readAll(stream.readable)), "abc");
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: a client's GOAWAY NO_ERROR lets open streams finish, then the connection closes cleanly", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields(), { endStream: true });
  const stream = await s.streams.next();
  await s.peer.goaway(1, ErrorCode.NO_ERROR);
  await assertAlive(s.peer);
  assert.equal(s.conn.activeStreams, 1);
  const w = stream.writable.getWriter();
  await w.write(enc.encode("bye"));
  await w.close();
  await s.peer.expectOn(T.HEADERS, 1);
  assert.deepEqual(await readBody(s.peer, 1), enc.encode("bye"));
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.NO_ERROR);
  assert.equal(g.lastStreamId, 1);
  assert.equal(await s.conn.closed, undefined);
});

Deno.test("H2ServerConnection: a client's GOAWAY with an error fails every stream", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const stream = await s.streams.next();
  await s.peer.goaway(1, ErrorCode.INTERNAL_ERROR, "boom");
  const err = await s.conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.initiator, "peer");
  assert.match(err.message, /INTERNAL_ERROR, "boom"/);
  assert.match((await rejection(readAll(stream.readable))).message, /boom/);
  assert.equal(await s.peer.readFrame(), null, "closed without a GOAWAY of ours");
});

Deno.test("H2ServerConnection: a client that vanishes fails every stream promptly", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  await s.peer.request(3, requestFields());
  const a = await s.streams.next();
  const b = await s.streams.next();
  const w = b.writable.getWriter();
  s.peer.close();
  const err = await s.conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.match(
    err.message,
    /client closed the connection \(connection reset\) with 2 streams open/,
  );
  assert.match((await rejection(readAll(a.readable))).message, /client closed/);
  assert.match((await rejection(w.write(enc.encode("x")))).message, /client closed/);
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerConnection: a client that closes with no stream open ends the connection cleanly", async () => {
  await using s = await setup();
  s.peer.close();
  assert.equal(await s.conn.closed, undefined);
});

Deno.test("H2ServerConnection credits the connection window for bytes of streams reset either way", async () => {
  await using s = await setup({ connectionWindowSize: 65_535 });
  // The client resets a stream whose 40 KiB nobody read.
  await s.peer.request(1, requestFields());
  await s.streams.next();
  await s.peer.data(1, new Uint8Array(40 * KIB));
  await s.peer.rst(1, ErrorCode.CANCEL);
  assert.equal(readU32((await s.peer.expectOn(T.WINDOW_UPDATE, 0)).payload), 40 * KIB);
  // We reset a stream; the client's DATA already in flight is ignored (no RST_STREAM for it)
  // but credited.
  await s.peer.request(3, requestFields());
  const b = await s.streams.next();
  b.close();
  assert.equal(await s.peer.expectReset(3), ErrorCode.CANCEL);
  await s.peer.data(3, new Uint8Array(20 * KIB));
  await s.peer.data(3, new Uint8Array(20 * KIB));
  const f = await s.peer.readFrame();
  assert.equal(f?.type, T.WINDOW_UPDATE);
  assert.equal(f?.streamId, 0);
  assert.equal(readU32(f!.payload), 40 * KIB);
  // 80 KiB sent through a 64 KiB window, and the whole window is open again.
  await s.peer.request(5, requestFields());
  const c = await s.streams.next();
  await s.peer.data(5, new Uint8Array(60 * KIB), { endStream: true });
  assert.equal((await readAll(c.readable)).byteLength, 60 * KIB);
  await assertAlive(s.peer);
});

Deno.test("H2ServerStream.close() resets with CANCEL while responding, NO_ERROR once the response is complete", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const a = await s.streams.next();
  a.respond(200);
  a.close();
  assert.equal(await s.peer.expectReset(1), ErrorCode.CANCEL);
  assert.equal(a.state, "closed");
  a.close(); // idempotent

  await s.peer.request(3, requestFields());
  const b = await s.streams.next();
  const w = b.writable.getWriter();
  await w.write(enc.encode("all"));
  await w.close();
  assert.equal(b.state, "half-closed-local");
  b.close();
  assert.equal(await s.peer.expectReset(3), ErrorCode.NO_ERROR);
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerStream.readable cancelled by the handler resets the stream", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const a = await s.streams.next();
  await a.readable.cancel();
  assert.equal(await s.peer.expectReset(1), ErrorCode.CANCEL);
});

Deno.test("H2ServerConnection: the client's RST_STREAM fails the stream's body both ways", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const a = await s.streams.next();
  await s.peer.rst(1, ErrorCode.CANCEL);
  const err = await rejection(readAll(a.readable));
  assert.ok(err instanceof StreamError);
  assert.equal(err.initiator, "peer");
  assert.match(err.message, /client reset stream 1 \(CANCEL\)/);
  await rejection(a.writable.getWriter().write(enc.encode("x")));
});

Deno.test("H2ServerConnection.shutdown() sends GOAWAY, refuses new streams, lets open ones finish, then closes", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields(), { endStream: true });
  const a = await s.streams.next();
  const done = s.conn.shutdown(5_000);
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.NO_ERROR);
  assert.equal(g.lastStreamId, 1);
  await s.peer.request(3, requestFields());
  assert.equal(await s.peer.expectReset(3), ErrorCode.REFUSED_STREAM);
  a.respond(200, [], { endStream: true });
  await s.peer.expectOn(T.HEADERS, 1);
  await done;
  assert.equal(await s.conn.closed, undefined);
  assert.equal(s.streams.seen.length, 1);
});

Deno.test("H2ServerConnection.shutdown() resets streams still open when the grace ends", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  const a = await s.streams.next();
  await s.conn.shutdown(20);
  assert.match((await rejection(readAll(a.readable))).message, /closed by us/);
  assert.equal(await s.conn.closed, undefined);
});

Deno.test("H2ServerConnection.close() sends GOAWAY NO_ERROR with the last stream id and fails open streams", async () => {
  await using s = await setup();
  await s.peer.request(1, requestFields());
  await s.peer.request(3, requestFields());
  const a = await s.streams.next();
  await s.streams.next();
  s.conn.close();
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.NO_ERROR);
  assert.equal(g.lastStreamId, 3);
  assert.equal(await s.peer.readFrame(), null);
  await rejection(readAll(a.readable));
});

Deno.test("H2ServerConnection: an exception in onStream resets that stream only", async () => {
  await using s = await setup({}, [], (st) => {
    if (st.id === 1) throw new Error("handler bug");
  });
  await s.peer.request(1, requestFields());
  assert.equal(await s.peer.expectReset(1), ErrorCode.INTERNAL_ERROR);
  await s.peer.request(3, requestFields(), { endStream: true });
  const b = (await s.streams.next(), await s.streams.next());
  assert.equal(b.id, 3);
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection sends large responses and header blocks within the client's MAX_FRAME_SIZE", async () => {
  await using s = await setup({}, [[S.INITIAL_WINDOW_SIZE, 1 << 20]]);
  await s.peer.windowUpdate(0, 1 << 20);
  await s.peer.request(1, requestFields(), { endStream: true });
  const a = await s.streams.next();
  a.respond(200, [["x-big", "v".repeat(20_000)]]);
  const h = await s.peer.readFrame();
  assert.equal(h?.type, T.HEADERS);
  assert.equal(h!.flags & 4, 0, "no END_HEADERS: a CONTINUATION follows");
  const c = await s.peer.readFrame();
  assert.equal(c?.type, T.CONTINUATION);
  assert.equal(c!.flags & 4, 4);
  const body = new Uint8Array(300 * KIB).map((_, i) => i & 0xff);
  const reading = readBody(s.peer, 1);
  const w = a.writable.getWriter();
  await w.write(body);
  await w.close();
  assert.deepEqual(await reading, body);
});

Deno.test("H2ServerConnection: an unknown frame type is ignored; PRIORITY depending on itself resets the stream", async () => {
  await using s = await setup();
  await s.peer.send(0xfa, 0, 0, new Uint8Array(3));
  await assertAlive(s.peer);
  await s.peer.request(1, requestFields());
  await s.streams.next();
  await s.peer.send(T.PRIORITY, 0, 1, new Uint8Array([...u32(1), 16]));
  assert.equal(await s.peer.expectReset(1), ErrorCode.PROTOCOL_ERROR);
});

Deno.test("H2ServerConnection: request HEADERS whose PRIORITY flag makes the stream depend on itself reset it, and the connection serves on", async () => {
  await using s = await setup();
  const block = literalBlock(requestFields());
  await s.peer.send(T.HEADERS, 0x4 | 0x20, 1, new Uint8Array([...u32(1), 16, ...block]));
  assert.equal(await s.peer.expectReset(1), ErrorCode.PROTOCOL_ERROR);
  assert.equal(s.streams.seen.length, 0, "no handler ran");
  await s.peer.request(3, requestFields());
  assert.equal((await s.streams.next()).id, 3);
});

Deno.test("H2ServerConnection pings a silent client and closes when no ACK comes", async () => {
  const { server, peer } = H2ClientPeer.pairWithServer();
  const [conn] = await Promise.all([
    H2ServerConnection.accept(server, () => {}, { readIdleTimeout: 30, pingTimeout: 30 }),
    peer.clientHandshake(),
  ]);
  try {
    const ping = await peer.expectOn(T.PING);
    assert.equal(ping.flags & 1, 0);
    const err = await conn.closed;
    assert.match(err!.message, /health check failed/);
  } finally {
    peer.close();
    conn.close();
  }
});

// ---- abusive clients (RFC 9113 §10.5) ----

/** `count` streams from `firstId` on, each opened by HEADERS and reset at once: one buffer. */
function rapidResets(peer: H2ClientPeer, firstId: number, count: number): Uint8Array {
  const block = literalBlock(requestFields());
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const id = firstId + 2 * i;
    frames.push(peer.frame(T.HEADERS, 4, id, block));
    frames.push(peer.frame(T.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)));
  }
  return concat(frames);
}

/** Writes `bytes`; a server that has already hung up (reset) is fine here. */
async function writeIgnoringReset(peer: H2ClientPeer, bytes: Uint8Array): Promise<void> {
  await peer.write(bytes).catch((err) => {
    if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
  });
}

Deno.test("H2ServerConnection: rapid reset (5000 HEADERS + RST_STREAM in one burst) ends the connection with ENHANCE_YOUR_CALM", async () => {
  await using s = await setup();
  await writeIgnoringReset(s.peer, rapidResets(s.peer, 1, 5000));
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
  // The default burst is 1000 (plus the little the bucket refilled at 200/s while we worked):
  // streams 1..1999 were reset within budget, the reset of stream 2001 or a bit later spent past
  // it. The last-stream-id is the last stream we received and handed over; none after it was.
  assert.ok(g.lastStreamId >= 2001 && g.lastStreamId < 2401, `last stream ${g.lastStreamId}`);
  assert.match(g.debug, /too many stream resets/);
  assert.equal(s.streams.seen.length, (g.lastStreamId + 1) / 2);
  assert.equal(s.streams.seen.at(-1)!.id, g.lastStreamId);
  assert.equal(await s.peer.readFrame(), null);
  const err = await s.conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal(err.initiator, "local");
});

Deno.test("H2ServerConnection: a client cancelling a handful of streams, or a full burst, is not cut off", async () => {
  await using s = await setup();
  // A handful, one at a time, as a browser closing tabs would.
  for (let id = 1; id <= 19; id += 2) {
    await s.peer.request(id, requestFields());
    await s.streams.next();
    await s.peer.rst(id, ErrorCode.CANCEL);
  }
  await assertAlive(s.peer);
  // Then the rest of the burst budget at once: 1000 resets in all is still within it.
  await s.peer.write(rapidResets(s.peer, 21, 990));
  await assertAlive(s.peer);
  // And the connection still serves a request end to end.
  await s.peer.request(2001, requestFields("/after"), { endStream: true });
  let st: H2ServerStream | undefined;
  for (let i = 0; i < 1001 && st?.id !== 2001; i++) st = await s.streams.next();
  assert.equal(st?.id, 2001);
  st!.respond(200);
  const w = st!.writable.getWriter();
  await w.write(enc.encode("still here"));
  await w.close();
  await s.peer.expectOn(T.HEADERS, 2001);
  assert.equal(dec.decode(await readBody(s.peer, 2001)), "still here");
  assert.equal(s.conn.activeStreams, 0);
});

Deno.test("H2ServerConnection: resets the client provokes count too (malformed requests, refused streams, flow-control errors)", async () => {
  // Malformed: every request lacks :path, so we reset it with PROTOCOL_ERROR.
  {
    await using s = await setup({ maxResetBurst: 10, maxResetRate: 0 });
    const block = literalBlock([[":method", "GET"], [":scheme", "https"]]);
    const frames: Uint8Array[] = [];
    for (let id = 1; id <= 41; id += 2) frames.push(s.peer.frame(T.HEADERS, 5, id, block));
    await writeIgnoringReset(s.peer, concat(frames));
    // (The RST_STREAMs queued before the GOAWAY are dropped with the connection.)
    const g = await s.peer.expectGoAway();
    assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(g.lastStreamId, 21, "streams 1..19 reset within the budget, 21 over it");
    assert.equal(s.streams.seen.length, 0);
  }
  // Refused: past MAX_CONCURRENT_STREAMS, without ever resetting a stream itself.
  {
    await using s = await setup({ maxConcurrentStreams: 1, maxResetBurst: 10, maxResetRate: 0 });
    const block = literalBlock(requestFields());
    const frames: Uint8Array[] = [];
    for (let id = 1; id <= 41; id += 2) frames.push(s.peer.frame(T.HEADERS, 4, id, block));
    await writeIgnoringReset(s.peer, concat(frames));
    const g = await s.peer.expectGoAway();
    assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(g.lastStreamId, 23, "stream 1 served, 3..21 refused, 23 over the budget");
    assert.equal(s.streams.seen.length, 1);
  }
  // Flow-control violations on streams we serve ("MadeYouReset"): each WINDOW_UPDATE overflows
  // its stream's send window past 2^31-1, a stream error of type FLOW_CONTROL_ERROR.
  {
    await using s = await setup({ maxResetBurst: 10, maxResetRate: 0 });
    const block = literalBlock(requestFields());
    const frames: Uint8Array[] = [];
    for (let id = 1; id <= 41; id += 2) {
      frames.push(s.peer.frame(T.HEADERS, 4, id, block));
      frames.push(s.peer.frame(T.WINDOW_UPDATE, 0, id, u32(0x7fffffff)));
    }
    await writeIgnoringReset(s.peer, concat(frames));
    const g = await s.peer.expectGoAway();
    assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(g.lastStreamId, 21);
    assert.equal(s.streams.seen.length, 11);
  }
});

Deno.test("H2ServerConnection: cancelling a request whose response was complete does not spend the reset budget", async () => {
  // A tunnel's response can end while its request body (the uplink) is still open; the client
  // then cancels the upload. 20 of those on a budget of 10 must not cut the connection off.
  await using s = await setup({ maxResetBurst: 10, maxResetRate: 0 }, [], (stream) => {
    const w = stream.writable.getWriter();
    w.write(enc.encode("done")).then(() => w.close()).catch(() => {});
  });
  for (let id = 1; id <= 39; id += 2) {
    await s.peer.request(id, requestFields());
    // The whole response, to its END_STREAM.
    await s.peer.expectOn(T.HEADERS, id);
    assert.equal(dec.decode(await readBody(s.peer, id)), "done");
    await s.peer.rst(id, ErrorCode.CANCEL);
  }
  // Still served: one more request gets its answer.
  await s.peer.request(41, requestFields());
  await s.peer.expectOn(T.HEADERS, 41);
  assert.equal(dec.decode(await readBody(s.peer, 41)), "done");
});

Deno.test("H2ServerConnection.accept() rejects a reset budget below one or a negative rate", async () => {
  for (const bad of [{ maxResetBurst: 0 }, { maxResetRate: -1 }, { maxResetBurst: NaN }]) {
    const { server, peer } = H2ClientPeer.pairWithServer();
    try {
      const err = await rejection(H2ServerConnection.accept(server, () => {}, bad));
      assert.ok(err instanceof RangeError);
      assert.match(err.message, new RegExp(Object.keys(bad)[0]));
    } finally {
      peer.close();
      server.close();
    }
  }
});

Deno.test("H2ServerConnection: an exception in onStream does not count against the reset budget", async () => {
  await using s = await setup({ maxResetBurst: 2, maxResetRate: 0 }, [], () => {
    throw new Error("handler bug");
  });
  for (let id = 1; id <= 9; id += 2) {
    await s.peer.request(id, requestFields());
    assert.equal(await s.peer.expectReset(id), ErrorCode.INTERNAL_ERROR);
  }
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: a RST_STREAM on a stream already finished does not count", async () => {
  await using s = await setup({ maxResetBurst: 1, maxResetRate: 0 });
  for (let id = 1; id <= 9; id += 2) {
    await s.peer.request(id, requestFields(), { endStream: true });
    const st = await s.streams.next();
    st.respond(204, [], { endStream: true });
    await s.peer.expectOn(T.HEADERS, id);
    // The response crossed the client's cancel: harmless.
    await s.peer.rst(id, ErrorCode.CANCEL);
  }
  await assertAlive(s.peer);
});

Deno.test("H2ServerConnection: rapid reset on one connection leaves a transfer on another untouched", async () => {
  // The healthy client's windows hold the whole body: it need not send WINDOW_UPDATE.
  await using healthy = await setup({}, [[S.INITIAL_WINDOW_SIZE, 1 << 20]]);
  await using abusive = await setup();
  await healthy.peer.windowUpdate(0, 1 << 20);
  await healthy.peer.request(1, requestFields("/down"), { endStream: true });
  const st = await healthy.streams.next();
  st.respond(200);
  const body = new Uint8Array(200 * KIB).map((_, i) => (i * 7) & 0xff);
  const w = st.writable.getWriter();
  const writing = (async () => {
    await w.write(body.subarray(0, 50 * KIB));
    await w.write(body.subarray(50 * KIB));
    await w.close();
  })();
  await healthy.peer.expectOn(T.HEADERS, 1);
  const reading = readBody(healthy.peer, 1);
  reading.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

  await writeIgnoringReset(abusive.peer, rapidResets(abusive.peer, 1, 5000));
  assert.equal((await abusive.peer.expectGoAway()).code, ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal((await abusive.conn.closed as ConnectionError).code, ErrorCode.ENHANCE_YOUR_CALM);

  await writing;
  assert.deepEqual(await reading, body);
  await assertAlive(healthy.peer);
  assert.equal(healthy.conn.activeStreams, 0);
});

/** Sends `count` frames from `make(i)` in writes of 500, not reading; stops if the server hangs up. */
async function floodWithoutReading(
  peer: H2ClientPeer,
  count: number,
  make: (i: number) => Uint8Array,
): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    const frames: Uint8Array[] = [];
    for (let j = i; j < Math.min(count, i + 500); j++) frames.push(make(j));
    try {
      await peer.write(concat(frames));
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionReset) return;
      throw err;
    }
  }
}

Deno.test("H2ServerConnection: a PING flood whose ACKs are never read ends with ENHANCE_YOUR_CALM", async () => {
  await using s = await setup();
  await floodWithoutReading(
    s.peer,
    30_000,
    (i) => s.peer.frame(T.PING, 0, 0, new Uint8Array(8).fill(i)),
  );
  // Now read: the ACKs that fit the socket buffer, then the GOAWAY.
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
  assert.match(g.debug, /control frames queued/);
  assert.equal((await s.conn.closed as ConnectionError).code, ErrorCode.ENHANCE_YOUR_CALM);
});

Deno.test("H2ServerConnection: a SETTINGS flood whose ACKs are never read ends with ENHANCE_YOUR_CALM", async () => {
  await using s = await setup();
  await floodWithoutReading(s.peer, 30_000, () => s.peer.frame(T.SETTINGS, 0, 0));
  const g = await s.peer.expectGoAway();
  assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal((await s.conn.closed as ConnectionError).code, ErrorCode.ENHANCE_YOUR_CALM);
});

Deno.test("H2ServerConnection: a client that reads its PING ACKs may send many PINGs", async () => {
  await using s = await setup();
  const count = 12_000;
  const acks = (async () => {
    let n = 0;
    for (let i = 0; i < count * 2 && n < count; i++) {
      const f = await s.peer.readFrame();
      assert.ok(f, "connection open");
      assert.notEqual(f.type, T.GOAWAY, `GOAWAY code ${f && readU32(f.payload, 4)}`);
      if (f.type === T.PING && f.flags & 1) n++;
    }
    return n;
  })();
  acks.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  for (let i = 0; i < count; i += 500) {
    const frames: Uint8Array[] = [];
    for (let j = i; j < i + 500; j++) {
      frames.push(s.peer.frame(T.PING, 0, 0, concat([u32(j), u32(j)])));
    }
    await s.peer.write(concat(frames));
  }
  assert.equal(await acks, count);
  await assertAlive(s.peer);
});
