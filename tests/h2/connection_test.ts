import assert from "node:assert/strict";
import { H2Connection, type H2ConnectionOptions } from "../../lib/h2/connection.ts";
import { ConnectionError, ErrorCode, errorCodeName, StreamError } from "../../lib/h2/errors.ts";
import { MAX_BATCH } from "../../lib/h2/frame_writer.ts";
import { isRetryable } from "../../lib/h2/stream.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { H2Peer, literalBlock, type PeerFrame, readU32, T, u32 } from "../support/h2_peer.ts";

const GET = {
  method: "GET",
  scheme: "https",
  authority: "example.com",
  path: "/",
  endStream: true,
};
const POST = { method: "POST", scheme: "https", authority: "example.com", path: "/up" };
const enc = new TextEncoder();
const dec = new TextDecoder();

async function setup(
  options: H2ConnectionOptions = {},
  settings: Array<[number, number]> = [],
  wrap?: (d: Duplex) => Duplex,
): Promise<{ conn: H2Connection; peer: H2Peer; [Symbol.asyncDispose](): Promise<void> }> {
  const { client, peer } = H2Peer.pair();
  const [conn] = await Promise.all([
    H2Connection.connect(wrap ? wrap(client) : client, { readIdleTimeout: 0, ...options }),
    peer.handshake(settings),
  ]);
  return {
    conn,
    peer,
    async [Symbol.asyncDispose]() {
      conn.close();
      peer.close();
      await conn.closed;
    },
  };
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

function goAwayCode(f: PeerFrame): number {
  return readU32(f.payload, 4);
}

Deno.test("H2Connection.connect() sends preface, SETTINGS and a connection WINDOW_UPDATE, and ACKs the peer's SETTINGS", async () => {
  const { client, peer } = H2Peer.pair();
  const connecting = H2Connection.connect(client, { readIdleTimeout: 0 });
  await peer.readPreface();
  const settings = await peer.readFrame();
  assert.equal(settings?.type, T.SETTINGS);
  const values = new Map<number, number>();
  for (let o = 0; o < settings!.payload.byteLength; o += 6) {
    values.set(
      (settings!.payload[o] << 8) | settings!.payload[o + 1],
      readU32(settings!.payload, o + 2),
    );
  }
  assert.equal(values.get(2), 0, "ENABLE_PUSH = 0");
  assert.equal(values.get(4), 4 * 1024 * 1024, "INITIAL_WINDOW_SIZE = 4 MiB");
  const wu = await peer.readFrame();
  assert.equal(wu?.type, T.WINDOW_UPDATE);
  assert.equal(wu?.streamId, 0);
  assert.equal(readU32(wu!.payload), 16 * 1024 * 1024 - 65535);
  await peer.settings([[3, 100]]);
  const conn = await connecting;
  const ack = await peer.readFrame();
  assert.equal(ack?.type, T.SETTINGS);
  assert.equal(ack?.flags, 1);
  assert.equal(conn.usable, true);
  conn.close();
  const goaway = await peer.expect(T.GOAWAY);
  assert.equal(goAwayCode(goaway), ErrorCode.NO_ERROR);
  assert.equal(await conn.closed instanceof ConnectionError, true);
  peer.close();
});

Deno.test("H2Connection.connect() fails with PROTOCOL_ERROR when the first frame is not SETTINGS", async () => {
  const { client, peer } = H2Peer.pair();
  const connecting = H2Connection.connect(client, { readIdleTimeout: 0 });
  await peer.readPreface();
  await peer.ping(new Uint8Array(8));
  const err = await rejection(connecting);
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(err.message, /not SETTINGS/);
  const frames = await peer.readUntilEof();
  const goaway = frames.find((f) => f.type === T.GOAWAY);
  assert.equal(goaway && goAwayCode(goaway), ErrorCode.PROTOCOL_ERROR);
  peer.close();
});

Deno.test("H2Connection.connect() fails with SETTINGS_TIMEOUT when the peer never sends SETTINGS", async () => {
  const { client, peer } = H2Peer.pair();
  const connecting = H2Connection.connect(client, { readIdleTimeout: 0, pingTimeout: 50 });
  await peer.readPreface();
  const err = await rejection(connecting);
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.SETTINGS_TIMEOUT);
  peer.close();
});

Deno.test("H2Connection.request() sends the pseudo-headers first and reads a response with body and trailers", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request({ ...GET, headers: [["User-Agent", "dray"], ["accept", "*/*"]] });
  assert.equal(stream.id, 1);
  const h = await peer.expect(T.HEADERS);
  assert.equal(h.flags & 0x5, 0x5, "END_STREAM | END_HEADERS");
  assert.deepEqual(peer.decodeHeaders(h), [
    [":method", "GET"],
    [":scheme", "https"],
    [":authority", "example.com"],
    [":path", "/"],
    ["user-agent", "dray"],
    ["accept", "*/*"],
  ]);
  await peer.headers(1, [[":status", "100"]]);
  await peer.headers(1, [[":status", "200"], ["content-type", "text/plain"]]);
  await peer.data(1, "hello ");
  await peer.data(1, "world", { pad: 3 });
  await peer.headers(1, [["grpc-status", "0"]], { endStream: true });
  const response = await stream.response;
  assert.equal(response.status, 200);
  assert.deepEqual(response.headers, [["content-type", "text/plain"]]);
  assert.equal(dec.decode(await readAll(stream.readable)), "hello world");
  assert.deepEqual(await stream.trailers, [["grpc-status", "0"]]);
  assert.equal(stream.state, "closed");
  assert.equal(conn.activeStreams, 0);
});

/** Wraps the client's duplex so that `writes` lists the frame types of each socket write. */
function frameTypesPerWrite(): { writes: number[][]; record: (d: Duplex) => Duplex } {
  const writes: number[][] = [];
  const record = (d: Duplex): Duplex => {
    const w = d.writable.getWriter();
    return {
      readable: d.readable,
      writable: new WritableStream({
        write: (chunk) => {
          const types: number[] = [];
          for (let o = 0; o + 9 <= chunk.byteLength;) {
            types.push(chunk[o + 3]);
            o += 9 + ((chunk[o] << 16) | (chunk[o + 1] << 8) | chunk[o + 2]);
          }
          writes.push(types);
          return w.write(chunk);
        },
        close: () => w.close(),
      }),
      close: () => d.close(),
    };
  };
  return { writes, record };
}

Deno.test("H2Connection.request() with holdHeaders keeps HEADERS for the first DATA written later: one write", async () => {
  const { writes, record } = frameTypesPerWrite();
  await using t = await setup({}, [], record);
  const { conn, peer } = t;
  writes.length = 0;
  const stream = conn.request({ ...POST, holdHeaders: true });
  // The client's first payload comes a round trip later: turns of the event loop pass meanwhile.
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(writes, [], "nothing written before the first DATA");
  const writer = stream.writable.getWriter();
  const first = writer.write(enc.encode("vless-header+payload"));
  await peer.expect(T.HEADERS);
  const d = await peer.expect(T.DATA);
  assert.equal(dec.decode(d.payload), "vless-header+payload");
  assert.deepEqual(writes, [[T.HEADERS, T.DATA]]);
  await first;
  writer.releaseLock();
});

Deno.test("H2Connection.request() with holdHeaders sends HEADERS when the body waits for credit", async () => {
  await using t = await setup({}, [[4, 0]]);
  const { conn, peer } = t;
  const stream = conn.request({ ...POST, holdHeaders: true });
  const writer = stream.writable.getWriter();
  const writing = writer.write(enc.encode("abc"));
  // A stream window of 0: the peer must see the stream before it can grant credit.
  const h = await peer.expect(T.HEADERS);
  assert.equal(h.streamId, 1);
  await peer.windowUpdate(1, 3);
  assert.equal(dec.decode((await peer.expect(T.DATA)).payload), "abc");
  await writing;
  writer.releaseLock();
});

Deno.test("H2Connection.request() sends HEADERS and the first DATA in one write, then the body with END_STREAM", async () => {
  const { writes, record } = frameTypesPerWrite();
  await using t = await setup({}, [], record);
  const { conn, peer } = t;
  writes.length = 0;
  const stream = conn.request(POST);
  const writer = stream.writable.getWriter();
  const first = writer.write(enc.encode("vless-header+payload"));
  const h = await peer.expect(T.HEADERS);
  assert.equal(h.flags & 1, 0, "no END_STREAM on a request with a body");
  const d = await peer.expect(T.DATA);
  assert.equal(dec.decode(d.payload), "vless-header+payload");
  assert.deepEqual(writes[0], [T.HEADERS, T.DATA], "HEADERS and DATA share one write");
  await first;
  // Full duplex: the response arrives while the request body is still open.
  await peer.headers(1, [[":status", "200"]]);
  assert.equal((await stream.response).status, 200);
  await writer.write(enc.encode("more"));
  await writer.close();
  const d2 = await peer.expect(T.DATA);
  assert.equal(dec.decode(d2.payload), "more");
  const end = await peer.expect(T.DATA);
  assert.equal(end.flags & 1, 1);
  assert.equal(end.payload.byteLength, 0);
  assert.equal(stream.state, "half-closed-local");
  await peer.data(1, "", { endStream: true });
  assert.equal((await readAll(stream.readable)).byteLength, 0);
  assert.equal(stream.state, "closed");
});

for (
  const [what, headers, name] of [
    ["missing :status", [["content-type", "x"]], ":status"],
    ["duplicate :status", [[":status", "200"], [":status", "204"]], ":status"],
    ["uppercase name", [[":status", "200"], ["Content-Type", "x"]], "Content-Type"],
    ["connection-specific header", [[":status", "200"], ["connection", "close"]], "connection"],
    ["pseudo-header after regular", [[":status", "200"], ["a", "b"], [":path", "/"]], ":path"],
    ["request pseudo-header", [[":status", "200"], [":method", "GET"]], ":method"],
    ["te other than trailers", [[":status", "200"], ["te", "gzip"]], "te"],
  ] as Array<[string, Array<[string, string]>, string]>
) {
  Deno.test(`H2Stream resets with PROTOCOL_ERROR naming the header on a response with ${what}`, async () => {
    await using t = await setup();
    const { conn, peer } = t;
    const stream = conn.request(GET);
    await peer.expect(T.HEADERS);
    await peer.headers(1, headers);
    const err = await rejection(stream.response);
    assert.ok(err instanceof StreamError);
    assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
    assert.equal(err.initiator, "local");
    assert.ok(err.message.includes(`"${name}"`), err.message);
    assert.match(err.message, /^reset stream 1: /);
    const rst = await peer.expect(T.RST_STREAM);
    assert.equal(rst.streamId, 1);
    assert.equal(readU32(rst.payload), ErrorCode.PROTOCOL_ERROR);
    // Only the stream failed: the connection carries on.
    assert.equal(conn.usable, true);
    const next = conn.request(GET);
    assert.equal(next.id, 3);
  });
}

Deno.test("H2Stream fails with PROTOCOL_ERROR on trailers without END_STREAM and on DATA before HEADERS", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const a = conn.request(GET);
  const b = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.headers(1, [["x", "y"]]);
  await peer.data(3, "early");
  const errA = await rejection(readAll(a.readable));
  assert.ok(errA instanceof StreamError && errA.code === ErrorCode.PROTOCOL_ERROR);
  const errB = await rejection(b.response);
  assert.ok(errB instanceof StreamError && errB.code === ErrorCode.PROTOCOL_ERROR);
  assert.equal(readU32((await peer.expect(T.RST_STREAM)).payload), ErrorCode.PROTOCOL_ERROR);
  assert.equal(readU32((await peer.expect(T.RST_STREAM)).payload), ErrorCode.PROTOCOL_ERROR);
});

Deno.test("H2Stream rejects a content-length that does not match the DATA received", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"], ["content-length", "10"]]);
  await peer.data(1, "short", { endStream: true });
  const err = await rejection(readAll(stream.readable));
  assert.match(err.message, /content-length 10 but 5 bytes/);
});

Deno.test("H2Stream reports a peer RST_STREAM as 'peer reset stream N (CODE)'", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(POST);
  await peer.expect(T.HEADERS);
  await peer.rst(1, ErrorCode.CANCEL);
  const err = await rejection(stream.response);
  assert.ok(err instanceof StreamError);
  assert.equal(err.message, "peer reset stream 1 (CANCEL)");
  assert.equal(err.initiator, "peer");
  assert.equal(isRetryable(err), false);
  await assert.rejects(stream.writable.getWriter().write(enc.encode("x")), StreamError);
  assert.equal(conn.activeStreams, 0);
});

Deno.test("H2Stream treats RST_STREAM REFUSED_STREAM before a response as retryable", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.rst(1, ErrorCode.REFUSED_STREAM);
  const err = await rejection(stream.response);
  assert.equal(isRetryable(err), true);
});

Deno.test("H2Stream keeps a complete response when the peer resets with NO_ERROR to stop the upload", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(POST);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, "done", { endStream: true });
  await peer.rst(1, ErrorCode.NO_ERROR);
  assert.equal(dec.decode(await readAll(stream.readable)), "done");
  await assert.rejects(
    stream.writable.getWriter().write(enc.encode("x")),
    /peer reset stream 1 \(NO_ERROR\)/,
  );
});

for (const code of [ErrorCode.NO_ERROR, ErrorCode.CANCEL]) {
  Deno.test(
    `H2Stream.readable yields every byte received, then fails, when the peer resets with ${
      errorCodeName(code)
    } before END_STREAM`,
    async () => {
      await using t = await setup({ connectionWindowSize: 65535, initialWindowSize: 65535 });
      const { conn, peer } = t;
      const stream = conn.request(GET);
      await peer.expect(T.HEADERS);
      await peer.headers(1, [[":status", "200"]]);
      await peer.data(1, new Uint8Array(38_000).fill(1));
      await peer.data(1, new Uint8Array(2_048).fill(2));
      await stream.response;
      await peer.rst(1, code);
      // The stream is over: the connection window gets its credit back without waiting for a reader.
      const wu = await peer.expect(T.WINDOW_UPDATE);
      assert.equal(wu.streamId, 0);
      assert.equal(readU32(wu.payload), 40_048);
      const reader = stream.readable.getReader();
      let got = 0;
      let err: unknown;
      try {
        for (let i = 0; i < 100; i++) {
          const r = await reader.read();
          if (r.done) break;
          got += r.value.byteLength;
        }
      } catch (e) {
        err = e;
      }
      assert.equal(got, 40_048);
      assert.ok(err instanceof StreamError, `expected a StreamError, got ${err}`);
      assert.equal(err.initiator, "peer");
      assert.equal(err.code, code);
      assert.equal(err.message, `peer reset stream 1 (${errorCodeName(code)})`);
      assert.equal(conn.activeStreams, 0);
    },
  );
}

Deno.test("H2Stream.readable yields the bytes received, then fails, when the connection drops mid-body", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, "partial");
  await stream.response;
  peer.close();
  const reader = stream.readable.getReader();
  const first = await reader.read();
  assert.equal(dec.decode(first.value), "partial");
  await assert.rejects(reader.read(), ConnectionError);
});

Deno.test("H2Stream.close() sends RST_STREAM CANCEL and credits unread bytes to the connection window", async () => {
  await using t = await setup({ connectionWindowSize: 65535, initialWindowSize: 65535 });
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, new Uint8Array(40_000));
  await stream.response;
  stream.close();
  stream.close(); // idempotent
  // The WINDOW_UPDATE jumps ahead of the queued RST_STREAM.
  const wu = await peer.readFrame();
  assert.equal(wu?.type, T.WINDOW_UPDATE);
  assert.equal(wu?.streamId, 0);
  assert.equal(readU32(wu!.payload), 40_000);
  const rst = await peer.readFrame();
  assert.equal(rst?.type, T.RST_STREAM);
  assert.equal(readU32(rst!.payload), ErrorCode.CANCEL);
  const err = await rejection(readAll(stream.readable));
  assert.match(err.message, /^reset stream 1: cancelled/);
  // Late DATA on the reset stream is ignored but still credited to the connection.
  await peer.data(1, new Uint8Array(40_000));
  const wu2 = await peer.expect(T.WINDOW_UPDATE);
  assert.equal(wu2.streamId, 0);
  assert.equal(readU32(wu2.payload), 40_000);
});

Deno.test("H2Stream returns receive window when the consumer reads, not when DATA arrives", async () => {
  await using t = await setup({ initialWindowSize: 65535 });
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, new Uint8Array(16384));
  await peer.data(1, new Uint8Array(16384));
  await peer.data(1, new Uint8Array(16384));
  await peer.data(1, new Uint8Array(16383));
  // The peer has used the whole stream window; one byte more is a stream FLOW_CONTROL_ERROR.
  // Nothing was read yet, so no WINDOW_UPDATE may have been sent: a PING round trip proves it.
  await peer.ping(new Uint8Array(8).fill(7));
  const ack = await peer.readFrame();
  assert.equal(ack?.type, T.PING, "no WINDOW_UPDATE before the consumer reads");
  const reader = stream.readable.getReader();
  let got = 0;
  while (got < 65535) got += (await reader.read()).value!.byteLength;
  // Half the stream window was consumed: the stream's credit comes back in one batch (the
  // connection's 16 MiB window waits for 64 KiB).
  const wu = await peer.expect(T.WINDOW_UPDATE);
  assert.equal(wu.streamId, 1);
  assert.equal(readU32(wu.payload), 65535);
  reader.releaseLock();
});

Deno.test("H2Stream resets with FLOW_CONTROL_ERROR when the peer overruns the stream window", async () => {
  await using t = await setup({ initialWindowSize: 100 });
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, new Uint8Array(101));
  const rst = await peer.expect(T.RST_STREAM);
  assert.equal(readU32(rst.payload), ErrorCode.FLOW_CONTROL_ERROR);
  const err = await rejection(readAll(stream.readable));
  assert.ok(err instanceof StreamError && err.code === ErrorCode.FLOW_CONTROL_ERROR);
  // The 101 bytes were credited back to the connection window all the same.
  assert.equal(conn.usable, true);
});

Deno.test("H2Connection ends with FLOW_CONTROL_ERROR when the peer overruns the connection window", async () => {
  await using t = await setup({ connectionWindowSize: 65535, initialWindowSize: 1 << 20 });
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  for (let i = 0; i < 4; i++) await peer.data(1, new Uint8Array(16384));
  const goaway = await peer.expect(T.GOAWAY);
  assert.equal(goAwayCode(goaway), ErrorCode.FLOW_CONTROL_ERROR);
  const err = await rejection(readAll(stream.readable));
  assert.ok(err instanceof ConnectionError && err.code === ErrorCode.FLOW_CONTROL_ERROR);
  assert.ok(await conn.closed);
});

Deno.test("H2Stream sends exactly 1 byte after: window 3 → send 3 → SETTINGS window 2 → WINDOW_UPDATE +2", async () => {
  await using t = await setup({}, [[4, 3]]);
  const { conn, peer } = t;
  await peer.windowUpdate(0, 1 << 20);
  const stream = conn.request(POST);
  const writer = stream.writable.getWriter();
  const writing = writer.write(enc.encode("0123456789"));
  await peer.expect(T.HEADERS);
  const d1 = await peer.expect(T.DATA);
  assert.equal(dec.decode(d1.payload), "012");
  await peer.settings([[4, 2]]);
  const ack = await peer.readFrame();
  assert.equal(ack?.type === T.SETTINGS && ack.flags, 1);
  // Window is now 2 - 3 = -1; +2 makes it 1.
  await peer.windowUpdate(1, 2);
  const d2 = await peer.expect(T.DATA);
  assert.equal(dec.decode(d2.payload), "3", "exactly one byte may follow");
  await peer.windowUpdate(1, 6);
  const d3 = await peer.expect(T.DATA);
  assert.equal(dec.decode(d3.payload), "456789");
  await writing;
  writer.releaseLock();
});

Deno.test("H2Stream never sends DATA larger than the peer's SETTINGS_MAX_FRAME_SIZE", async () => {
  await using t = await setup({}, [[4, 1 << 20]]);
  const { conn, peer } = t;
  await peer.windowUpdate(0, 1 << 20);
  const stream = conn.request(POST);
  const writer = stream.writable.getWriter();
  const body = new Uint8Array(50_000).map((_, i) => i);
  const writing = writer.write(body).then(() => writer.close());
  await peer.expect(T.HEADERS);
  const sizes: number[] = [];
  let total = 0;
  while (total < 50_000) {
    const d = await peer.expect(T.DATA);
    sizes.push(d.payload.byteLength);
    assert.deepEqual(d.payload, body.subarray(total, total + d.payload.byteLength));
    total += d.payload.byteLength;
  }
  assert.deepEqual(sizes, [16384, 16384, 16384, 848]);
  await writing;
});

Deno.test("H2Connection fails with FLOW_CONTROL_ERROR when WINDOW_UPDATE or SETTINGS overflow a window", async () => {
  {
    await using t = await setup();
    await t.peer.windowUpdate(0, 2 ** 31 - 1);
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.FLOW_CONTROL_ERROR);
  }
  {
    await using t = await setup();
    const stream = t.conn.request(POST);
    await t.peer.expect(T.HEADERS);
    await t.peer.windowUpdate(1, 2 ** 31 - 1);
    const rst = await t.peer.expect(T.RST_STREAM);
    assert.equal(readU32(rst.payload), ErrorCode.FLOW_CONTROL_ERROR);
    assert.ok((await rejection(stream.response)) instanceof StreamError);
  }
  {
    await using t = await setup();
    t.conn.request(POST);
    await t.peer.expect(T.HEADERS);
    await t.peer.windowUpdate(1, 2 ** 31 - 1 - 65535);
    await t.peer.settings([[4, 65536]]);
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.FLOW_CONTROL_ERROR);
  }
});

Deno.test("H2Connection: a zero WINDOW_UPDATE is PROTOCOL_ERROR (stream: RST_STREAM, connection: GOAWAY); credit on an open stream wakes its writer", async () => {
  {
    await using t = await setup();
    const stream = t.conn.request(POST);
    await t.peer.expect(T.HEADERS);
    // RFC 9113 §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a
    // flow-control window increment of 0 as a stream error of type PROTOCOL_ERROR".
    await t.peer.windowUpdate(1, 0);
    const rst = await t.peer.expect(T.RST_STREAM);
    assert.equal(readU32(rst.payload), ErrorCode.PROTOCOL_ERROR);
    assert.ok((await rejection(stream.response)) instanceof StreamError);
  }
  {
    await using t = await setup();
    await t.peer.windowUpdate(0, 0);
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.PROTOCOL_ERROR);
  }
  {
    // The stream window starts at 10 bytes; 25 bytes go out as credit arrives in small updates.
    await using t = await setup({}, [[4, 10]]);
    const stream = t.conn.request(POST);
    await t.peer.expect(T.HEADERS);
    const w = stream.writable.getWriter();
    const writing = w.write(new Uint8Array(25).fill(9));
    let got = (await t.peer.expect(T.DATA)).payload.byteLength;
    assert.equal(got, 10);
    for (let i = 0; i < 3; i++) await t.peer.windowUpdate(1, 5);
    for (let i = 0; i < 10 && got < 25; i++) {
      got += (await t.peer.expect(T.DATA)).payload.byteLength;
    }
    assert.equal(got, 25);
    await writing;
    w.releaseLock();
  }
});

Deno.test("H2Connection answers PING with the same 8 bytes, ahead of queued DATA", async () => {
  // A 16 KiB pipe: the client's writes stall while the peer is not reading.
  const { client, peer } = H2Peer.pair(16 * 1024);
  const [conn] = await Promise.all([
    H2Connection.connect(client, { readIdleTimeout: 0 }),
    peer.handshake([[4, 1 << 20]]),
  ]);
  try {
    await peer.windowUpdate(0, 1 << 20);
    const streams = [conn.request(POST), conn.request(POST), conn.request(POST)];
    const writes = streams.map((s) =>
      s.writable.getWriter().write(new Uint8Array(200_000)).catch(() => {})
    );
    // Let the writer fill the pipe, then ping while DATA is queued behind it.
    await new Promise((r) => setTimeout(r, 20));
    const payload = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    await peer.ping(payload);
    let dataBefore = 0;
    let dataAfter = 0;
    let ack: PeerFrame | undefined;
    for (let i = 0; i < 200 && dataAfter === 0; i++) {
      const f = await peer.readFrame();
      if (!f) break;
      if (f.type === T.PING) ack = f;
      if (f.type === T.DATA) ack ? dataAfter++ : dataBefore += f.payload.byteLength;
    }
    assert.ok(ack, "PING ACK received");
    assert.equal(ack!.flags, 1);
    assert.deepEqual(ack!.payload, payload);
    assert.ok(dataAfter > 0, "DATA was still queued behind the ACK");
    // Only what was already in flight came first (one batch: frames are added to it while it is
    // under MAX_BATCH, so at most one 16 KiB frame over), not all 600 KB queued.
    assert.ok(dataBefore <= MAX_BATCH + 16 * 1024, `DATA before ACK: ${dataBefore}`);
    conn.close();
    await Promise.all(writes);
  } finally {
    conn.close();
    peer.close();
    await conn.closed;
  }
});

Deno.test("H2Stream writes stall with bounded memory when the peer stops reading", async () => {
  const { client, peer } = H2Peer.pair(16 * 1024);
  const [conn] = await Promise.all([
    H2Connection.connect(client, { readIdleTimeout: 0 }),
    peer.handshake([[4, 2 ** 31 - 1]]),
  ]);
  try {
    await peer.windowUpdate(0, 2 ** 31 - 1 - 65535);
    const stream = conn.request(POST);
    const writer = stream.writable.getWriter();
    let written = 0;
    let stalled = false;
    for (let i = 0; i < 100 && !stalled; i++) {
      const w = writer.write(new Uint8Array(64 * 1024));
      const r = await Promise.race([
        w.then(() => "done"),
        new Promise((r) => setTimeout(() => r("stall"), 50)),
      ]);
      if (r === "stall") stalled = true;
      else written += 64 * 1024;
      if (stalled) w.catch(() => {});
    }
    assert.ok(stalled, "writes stall although the flow-control windows are huge");
    // At most the pipe (16 KiB) + one batch in flight + one queued chunk got out of the writer.
    assert.ok(written <= 1024 * 1024, `accepted ${written} bytes without the peer reading`);
  } finally {
    conn.close();
    peer.close();
    await conn.closed;
  }
});

Deno.test("H2Connection fails every stream promptly when the peer drops the connection", async () => {
  const { client, peer } = H2Peer.pair();
  const [conn] = await Promise.all([
    H2Connection.connect(client, { readIdleTimeout: 0 }),
    peer.handshake(),
  ]);
  const a = conn.request(GET);
  const b = conn.request(POST);
  await peer.expect(T.HEADERS);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await a.response;
  peer.close();
  const errA = await rejection(readAll(a.readable));
  const errB = await rejection(b.response);
  assert.ok(errA instanceof ConnectionError);
  assert.ok(errB instanceof ConnectionError);
  assert.ok(await conn.closed);
  assert.equal(conn.usable, false);
  assert.throws(() => conn.request(GET), /cannot open a stream/);
});

Deno.test("H2Connection on GOAWAY fails streams above last-stream-id as retryable and finishes the rest", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const a = conn.request(GET);
  const b = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]]);
  await peer.data(1, "part1 ");
  await peer.goaway(1, ErrorCode.NO_ERROR, "shutting down");
  const errB = await rejection(b.response);
  assert.ok(errB instanceof StreamError);
  assert.equal(isRetryable(errB), true);
  assert.match(errB.message, /not processed/);
  assert.match(errB.message, /safe to retry/);
  assert.equal(conn.usable, false);
  assert.throws(() => conn.request(GET), (e: Error) => isRetryable(e) && /GOAWAY/.test(e.message));
  await peer.data(1, "part2", { endStream: true });
  assert.equal(dec.decode(await readAll(a.readable)), "part1 part2");
  // The last stream finished: the connection closes itself.
  const goaway = await peer.expect(T.GOAWAY);
  assert.equal(goAwayCode(goaway), ErrorCode.NO_ERROR);
  await conn.closed;
});

Deno.test("H2Connection honours SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
  await using t = await setup({}, [[3, 2]]);
  const { conn, peer } = t;
  const a = conn.request(GET);
  conn.request(GET);
  assert.equal(conn.activeStreams, 2);
  assert.equal(conn.usable, false);
  assert.throws(() => conn.request(GET), /2 concurrent streams/);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "204"]], { endStream: true });
  await a.response;
  assert.equal(conn.usable, true);
  assert.equal(conn.request(GET).id, 5);
});

Deno.test("H2Connection becomes unusable when stream ids run out near 2^31", async () => {
  await using t = await setup({ firstStreamId: 2 ** 31 - 3 });
  const { conn } = t;
  assert.equal(conn.request(GET).id, 2 ** 31 - 3);
  assert.equal(conn.request(GET).id, 2 ** 31 - 1);
  assert.equal(conn.usable, false);
  assert.throws(() => conn.request(GET), /stream ids exhausted/);
});

Deno.test("H2Connection closes after a PING goes unanswered for pingTimeout", async () => {
  await using t = await setup({ readIdleTimeout: 30, pingTimeout: 60 });
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  const ping = await peer.expect(T.PING);
  assert.equal(ping.flags, 0);
  // Answer the first PING: the connection stays.
  await peer.ping(ping.payload, true);
  const ping2 = await peer.expect(T.PING);
  // Ignore the second one: health check fails, the stream fails.
  assert.equal(ping2.flags, 0);
  const err = await rejection(stream.response);
  assert.ok(err instanceof ConnectionError);
  assert.match(err.message, /no PING ACK within 60 ms/);
  assert.equal(conn.usable, false);
});

Deno.test("H2Connection ends with PROTOCOL_ERROR for frames the RFC forbids", async () => {
  const cases: Array<[string, (p: H2Peer) => Promise<void>, number]> = [
    ["DATA on an idle stream", (p) => p.data(5, "x"), ErrorCode.PROTOCOL_ERROR],
    [
      "HEADERS on a server stream id",
      (p) => p.headers(2, [[":status", "200"]]),
      ErrorCode.PROTOCOL_ERROR,
    ],
    ["RST_STREAM on an idle stream", (p) => p.rst(9, 0), ErrorCode.PROTOCOL_ERROR],
    [
      "PUSH_PROMISE",
      (p) => p.send(T.PUSH_PROMISE, 4, 1, new Uint8Array([0, 0, 0, 2, 0x82])),
      ErrorCode.PROTOCOL_ERROR,
    ],
    ["SETTINGS_ENABLE_PUSH = 1", (p) => p.settings([[2, 1]]), ErrorCode.PROTOCOL_ERROR],
    ["SETTINGS on a stream", (p) => p.send(T.SETTINGS, 0, 1), ErrorCode.PROTOCOL_ERROR],
    ["PING of 7 bytes", (p) => p.send(T.PING, 0, 0, new Uint8Array(7)), ErrorCode.FRAME_SIZE_ERROR],
    [
      "a frame above our MAX_FRAME_SIZE",
      (p) => p.send(0xfa, 0, 0, new Uint8Array(64 * 1024 + 1)),
      ErrorCode.FRAME_SIZE_ERROR,
    ],
    [
      "CONTINUATION without HEADERS",
      (p) => p.send(T.CONTINUATION, 4, 1, new Uint8Array(0)),
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "bad HPACK",
      (p) => p.send(T.HEADERS, 4, 1, new Uint8Array([0x80])),
      ErrorCode.COMPRESSION_ERROR,
    ],
    ["WINDOW_UPDATE 0 on the connection", (p) => p.windowUpdate(0, 0), ErrorCode.PROTOCOL_ERROR],
  ];
  for (const [what, act, code] of cases) {
    await using t = await setup();
    const stream = t.conn.request(GET);
    await t.peer.expect(T.HEADERS);
    await act(t.peer);
    const goaway = await t.peer.expect(T.GOAWAY);
    assert.equal(goAwayCode(goaway), code, what);
    const err = await rejection(stream.response);
    assert.ok(err instanceof ConnectionError, what);
    assert.equal(err.code, code, what);
  }
});

Deno.test("H2Connection ignores unknown frame types and PRIORITY, and resets on PRIORITY of bad size", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.send(0xbb, 0xff, 1, new Uint8Array(10));
  await peer.send(T.PRIORITY, 0, 1, new Uint8Array([0, 0, 0, 0, 15]));
  await peer.headers(1, [[":status", "200"]], { endStream: true });
  assert.equal((await stream.response).status, 200);
  const b = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.send(T.PRIORITY, 0, 3, new Uint8Array(4));
  const rst = await peer.expect(T.RST_STREAM);
  assert.equal(readU32(rst.payload), ErrorCode.FRAME_SIZE_ERROR);
  assert.ok((await rejection(b.response)) instanceof StreamError);
});

Deno.test("H2Connection joins HEADERS + CONTINUATION and caps CONTINUATION floods with ENHANCE_YOUR_CALM", async () => {
  {
    await using t = await setup();
    const stream = t.conn.request(GET);
    await t.peer.expect(T.HEADERS);
    const block = literalBlock([[":status", "200"], ["x-long", "v".repeat(300)]]);
    await t.peer.send(T.HEADERS, 0, 1, block.subarray(0, 5));
    await t.peer.send(T.CONTINUATION, 0, 1, block.subarray(5, 100));
    await t.peer.send(T.CONTINUATION, 4, 1, block.subarray(100));
    const r = await stream.response;
    assert.equal(r.headers[0][1].length, 300);
  }
  {
    await using t = await setup();
    t.conn.request(GET);
    await t.peer.expect(T.HEADERS);
    await t.peer.send(T.HEADERS, 0, 1, new Uint8Array(0));
    await t.peer.ping(new Uint8Array(8));
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.PROTOCOL_ERROR);
  }
  {
    await using t = await setup();
    t.conn.request(GET);
    await t.peer.expect(T.HEADERS);
    await t.peer.send(T.HEADERS, 0, 1, new Uint8Array(0));
    for (let i = 0; i < 100; i++) {
      await t.peer.send(T.CONTINUATION, 0, 1, new Uint8Array(0)).catch(() => {});
    }
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.ENHANCE_YOUR_CALM);
  }
  {
    await using t = await setup({ maxHeaderListSize: 16 * 1024 });
    t.conn.request(GET);
    await t.peer.expect(T.HEADERS);
    await t.peer.send(T.HEADERS, 0, 1, new Uint8Array(10_000));
    await t.peer.send(T.CONTINUATION, 0, 1, new Uint8Array(10_000));
    assert.equal(goAwayCode(await t.peer.expect(T.GOAWAY)), ErrorCode.ENHANCE_YOUR_CALM);
  }
});

Deno.test("H2Stream resets with STREAM_CLOSED on DATA after the peer's END_STREAM", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(POST);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]], { endStream: true });
  await stream.response;
  assert.equal(stream.state, "half-closed-remote");
  await peer.data(1, "late");
  const rst = await peer.expect(T.RST_STREAM);
  assert.equal(readU32(rst.payload), ErrorCode.STREAM_CLOSED);
});

/** Waits for the RST_STREAM on `streamId` (skipping WINDOW_UPDATEs and SETTINGS ACKs); its code. */
async function expectReset(peer: H2Peer, streamId: number): Promise<number> {
  const f = await peer.expect(T.RST_STREAM);
  assert.equal(f.streamId, streamId);
  return readU32(f.payload);
}

/** The connection still serves: a new request gets its response. */
async function assertServes(conn: H2Connection, peer: H2Peer, id: number): Promise<void> {
  const s = conn.request(GET);
  const h = await peer.expect(T.HEADERS);
  assert.equal(h.streamId, id);
  await peer.headers(id, [[":status", "204"]], { endStream: true });
  assert.equal((await s.response).status, 204);
}

Deno.test("H2Connection resets a stream with PROTOCOL_ERROR when the server's PRIORITY makes it depend on itself", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.send(T.PRIORITY, 0, 1, new Uint8Array([...u32(1), 16]));
  assert.equal(await expectReset(peer, 1), ErrorCode.PROTOCOL_ERROR);
  const err = await rejection(stream.response);
  assert.ok(err instanceof StreamError && err.code === ErrorCode.PROTOCOL_ERROR);
  assert.match(err.message, /depend on itself/);
  await assertServes(conn, peer, 3);
});

Deno.test("H2Connection resets a stream whose response HEADERS (PRIORITY flag) depend on itself, keeping HPACK in step", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const stream = conn.request(GET);
  await peer.expect(T.HEADERS);
  // PRIORITY flag: exclusive bit + 31-bit dependency, weight, then the block (an indexed field
  // that adds to the dynamic table: x-a: 1, literal with incremental indexing, new name).
  const block = new Uint8Array([0x40, 1, 0x78, 1, 0x31]);
  await peer.send(T.HEADERS, 0x4 | 0x20, 1, new Uint8Array([...u32(1), 16, ...block]));
  assert.equal(await expectReset(peer, 1), ErrorCode.PROTOCOL_ERROR);
  assert.ok((await rejection(stream.response)) instanceof StreamError);
  // The block was decoded: index 62 (the first dynamic entry) is x: 1 on the next response.
  const next = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.send(T.HEADERS, 0x4 | 0x1, 3, new Uint8Array([0x88, 0x80 | 62]));
  const res = await next.response;
  assert.equal(res.status, 200);
  assert.deepEqual(res.headers, [["x", "1"]]);
});

Deno.test("H2Connection ends with a peer-initiated error and sends no GOAWAY when a write fails", async () => {
  let broken = false;
  const breakable = (d: Duplex): Duplex => {
    const w = d.writable.getWriter();
    return {
      readable: d.readable,
      writable: new WritableStream({
        write: (chunk) => broken ? Promise.reject(new Error("broken pipe")) : w.write(chunk),
        close: () => w.close(),
      }),
      close: () => d.close(),
    };
  };
  await using t = await setup({}, [], breakable);
  const { conn, peer } = t;
  broken = true;
  const stream = conn.request(GET);
  const err = await conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.initiator, "peer");
  assert.match(err.message, /write failed: broken pipe/);
  assert.ok((await rejection(stream.response)) instanceof ConnectionError);
  const frames = await peer.readUntilEof();
  assert.equal(
    frames.find((f) => f.type === T.GOAWAY),
    undefined,
    "no GOAWAY after a failed write",
  );
});

Deno.test("H2Connection resets with STREAM_CLOSED a DATA frame on a stream that ended both ways, and ignores one on a stream it reset", async () => {
  await using t = await setup();
  const { conn, peer } = t;
  const done = conn.request(GET);
  await peer.expect(T.HEADERS);
  await peer.headers(1, [[":status", "200"]], { endStream: true });
  assert.equal((await done.response).status, 200);
  assert.equal(done.state, "closed");
  await peer.data(1, "late");
  assert.equal(await expectReset(peer, 1), ErrorCode.STREAM_CLOSED);
  const cancelled = conn.request(GET);
  await peer.expect(T.HEADERS);
  cancelled.close();
  assert.equal(await expectReset(peer, 3), ErrorCode.CANCEL);
  await peer.data(3, "in flight");
  // No second RST_STREAM for stream 3: the next frame is the next request's HEADERS.
  await assertServes(conn, peer, 5);
});

Deno.test("H2Connection fails with SETTINGS_TIMEOUT when the server never ACKs our SETTINGS", async () => {
  const { client, peer } = H2Peer.pair();
  const connecting = H2Connection.connect(client, { readIdleTimeout: 0, pingTimeout: 50 });
  await peer.readPreface();
  assert.equal((await peer.readFrame())?.type, T.SETTINGS);
  await peer.settings([]);
  const conn = await connecting;
  const err = await conn.closed;
  assert.ok(err instanceof ConnectionError);
  assert.equal(err.code, ErrorCode.SETTINGS_TIMEOUT);
  assert.match(err.message, /no SETTINGS ACK within 50 ms/);
  const goaway = (await peer.readUntilEof()).find((f) => f.type === T.GOAWAY);
  assert.equal(goaway && goAwayCode(goaway), ErrorCode.SETTINGS_TIMEOUT);
  peer.close();
});
