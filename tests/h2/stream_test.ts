import assert from "node:assert/strict";
import { ErrorCode, StreamError } from "../../lib/h2/errors.ts";
import type { StreamHost } from "../../lib/h2/endpoint.ts";
import type { TakenListener } from "../../lib/h2/frame_writer.ts";
import { H2Stream, isRetryable } from "../../lib/h2/stream.ts";

/** A connection stand-in that records what the stream asks of it. */
class FakeHost implements StreamHost<H2Stream> {
  credit = 0;
  maxFrame = 16384;
  data: Array<{ bytes: number; endStream: boolean }> = [];
  resets: number[] = [];
  /** DATA and RST_STREAM in the order queued. */
  order: string[] = [];
  consumedLog: Array<[number, boolean]> = [];
  closedCount = 0;
  reserve(_s: H2Stream, want: number): number {
    const n = Math.min(want, this.credit, this.maxFrame);
    this.credit -= Math.max(0, n);
    return Math.max(0, n);
  }
  queueHeaders(): void {
    throw new Error("a client stream's HEADERS are its connection's to queue");
  }
  queueData(_s: H2Stream, data: Uint8Array, endStream: boolean, notify?: TakenListener): void {
    this.data.push({ bytes: data.byteLength, endStream });
    this.order.push(endStream ? "DATA END_STREAM" : "DATA");
    // Taken at once, as an idle writer would.
    if (notify) queueMicrotask(() => notify.taken());
  }
  queueReset(_s: H2Stream, code: number): void {
    this.resets.push(code);
    this.order.push(`RST_STREAM ${code}`);
  }
  consumed(_s: H2Stream, n: number, streamToo: boolean): void {
    this.consumedLog.push([n, streamToo]);
  }
  streamClosed(): void {
    this.closedCount++;
  }
}

const open = (host: FakeHost, endStream = false) =>
  new H2Stream(1, host, { sendWindow: 65535, recvWindow: 65535, endStream });

Deno.test("H2Stream moves open → half-closed (local) → closed per RFC 9113 §5.1", async () => {
  const host = new FakeHost();
  const s = open(host);
  assert.equal(s.state, "open");
  await s.writable.close();
  assert.equal(s.state, "half-closed-local");
  assert.deepEqual(host.data, [{ bytes: 0, endStream: true }]);
  s.onHeaders([[":status", "200"]], true);
  assert.equal(s.state, "closed");
  assert.equal(host.closedCount, 1);
  s.close(); // closed already: no RST_STREAM
  assert.deepEqual(host.resets, []);
});

Deno.test("H2Stream with endStream starts half-closed (local) and reaches closed on the peer's END_STREAM", async () => {
  const host = new FakeHost();
  const s = open(host, true);
  assert.equal(s.state, "half-closed-local");
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array([1, 2]), 2, true);
  assert.equal(s.state, "closed");
  const r = await s.readable.getReader().read();
  assert.deepEqual(r.value, new Uint8Array([1, 2]));
  assert.equal(host.data.length, 0, "no DATA for a request without body");
});

Deno.test("H2Stream credits the receive window only when the consumer reads", async () => {
  const host = new FakeHost();
  const s = open(host);
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array(1000), 1000, false);
  s.onData(new Uint8Array(2000), 2010, false); // 10 bytes of padding credited at once
  assert.deepEqual(host.consumedLog, [[10, true]]);
  assert.equal(s.recvWindow.available, 65535 - 3010);
  const reader = s.readable.getReader();
  // Both buffered frames come out as one chunk, and only then is their credit returned.
  assert.equal((await reader.read()).value?.byteLength, 3000);
  assert.deepEqual(host.consumedLog, [[10, true], [3000, true]]);
  s.onData(new Uint8Array(500), 500, false);
  assert.equal((await reader.read()).value?.byteLength, 500);
  assert.deepEqual(host.consumedLog, [[10, true], [3000, true], [500, true]]);
  reader.releaseLock();
});

Deno.test("H2Stream.onData() throws FLOW_CONTROL_ERROR past the advertised window", () => {
  const host = new FakeHost();
  const s = new H2Stream(3, host, { sendWindow: 0, recvWindow: 100, endStream: true });
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array(100), 100, false);
  assert.throws(
    () => s.onData(new Uint8Array(1), 1, false),
    (e: StreamError) => e.code === ErrorCode.FLOW_CONTROL_ERROR,
  );
});

Deno.test("H2Stream writes wait for send credit and split at the max frame size", async () => {
  const host = new FakeHost();
  const s = open(host);
  const writer = s.writable.getWriter();
  host.credit = 20_000;
  let done = false;
  const w = writer.write(new Uint8Array(40_000)).then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  assert.deepEqual(host.data.map((d) => d.bytes), [16384, 3616]);
  assert.equal(s.sendBody.waitingForWindow, true);
  assert.equal(done, false);
  host.credit = 100_000;
  s.sendBody.wakeWindow();
  await w;
  assert.deepEqual(host.data.map((d) => d.bytes), [16384, 3616, 16384, 3616]);
  writer.releaseLock();
});

Deno.test("H2Stream.close() sends RST_STREAM CANCEL and fails both bodies; pending writes reject", async () => {
  const host = new FakeHost();
  const s = open(host);
  const writer = s.writable.getWriter();
  const w = writer.write(new Uint8Array(10)); // no credit: waits
  w.catch(() => {});
  for (let i = 0; i < 10 && !s.sendBody.waitingForWindow; i++) await Promise.resolve();
  assert.equal(s.sendBody.waitingForWindow, true);
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array(5), 5, false);
  s.close();
  // A chunk half sent (waiting for credit) is not a whole body: no END_STREAM, a bare reset.
  assert.deepEqual(host.order, [`RST_STREAM ${ErrorCode.CANCEL}`]);
  await assert.rejects(w, /reset stream 1: cancelled/);
  await assert.rejects(s.readable.getReader().read(), /reset stream 1: cancelled/);
  // The 5 unread bytes go back to the connection window only.
  assert.deepEqual(host.consumedLog.at(-1), [5, false]);
  assert.equal(s.state, "closed");
});

Deno.test("H2Stream.close() ends an open request body with END_STREAM before RST_STREAM CANCEL", async () => {
  const host = new FakeHost();
  const s = open(host);
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array(5), 5, false);
  s.close();
  // v2ray 4.34's h2 server panics if the request body fails while the response is being written;
  // after END_STREAM its body read ends cleanly before the reset fails the writer.
  assert.deepEqual(host.order, ["DATA END_STREAM", `RST_STREAM ${ErrorCode.CANCEL}`]);
  assert.equal(s.state, "closed");
  await assert.rejects(s.readable.getReader().read(), /reset stream 1: cancelled/);
});

Deno.test("H2Stream.close() after the request body ended sends only RST_STREAM CANCEL", async () => {
  const host = new FakeHost();
  const s = open(host);
  await s.writable.close();
  s.onHeaders([[":status", "200"]], false);
  s.close();
  assert.deepEqual(host.order, ["DATA END_STREAM", `RST_STREAM ${ErrorCode.CANCEL}`]);
});

Deno.test("H2Stream.reset() sends only RST_STREAM CANCEL, the request body left unended", async () => {
  const host = new FakeHost();
  const s = open(host);
  s.onHeaders([[":status", "200"]], false);
  s.reset();
  s.reset(); // closed already: no second RST_STREAM
  assert.deepEqual(host.order, [`RST_STREAM ${ErrorCode.CANCEL}`]);
  assert.equal(s.state, "closed");
  await assert.rejects(s.readable.getReader().read(), /reset stream 1: cancelled/);
});

Deno.test("H2Stream.onReset() names the peer and marks REFUSED_STREAM retryable", async () => {
  const host = new FakeHost();
  const a = open(host);
  a.onReset(ErrorCode.INTERNAL_ERROR);
  const err = await a.response.catch((e) => e);
  assert.equal(err.message, "peer reset stream 1 (INTERNAL_ERROR)");
  assert.equal(err.initiator, "peer");
  assert.equal(isRetryable(err), false);
  const b = open(host);
  b.onReset(ErrorCode.REFUSED_STREAM);
  assert.equal(isRetryable(await b.response.catch((e) => e)), true);
});

Deno.test("H2Stream cancelling the response body resets the stream", async () => {
  const host = new FakeHost();
  const s = open(host, true);
  s.onHeaders([[":status", "200"]], false);
  await s.readable.cancel();
  assert.deepEqual(host.resets, [ErrorCode.CANCEL]);
});

Deno.test('H2Stream with expectStatus fails with "unexpected status 404" and resets only itself', async () => {
  const host = new FakeHost();
  const s = new H2Stream(1, host, {
    sendWindow: 65535,
    recvWindow: 65535,
    endStream: false,
    expectStatus: 200,
  });
  const reader = s.readable.getReader();
  const read = reader.read();
  s.onHeaders([[":status", "404"], ["content-type", "text/plain"]], false);
  assert.deepEqual(host.resets, [ErrorCode.CANCEL]);
  assert.equal(s.state, "closed");
  assert.equal(host.closedCount, 1);
  await assert.rejects(read, /^Error: unexpected status 404$/);
  await assert.rejects(s.writable.getWriter().write(new Uint8Array(1)), /unexpected status 404/);
  // The response itself was received: only the caller's expectation failed.
  assert.deepEqual(await s.response, { status: 404, headers: [["content-type", "text/plain"]] });
  await assert.rejects(s.trailers, /unexpected status 404/);
  s.close(); // already closed: no second RST_STREAM
  assert.deepEqual(host.resets, [ErrorCode.CANCEL]);
});

Deno.test("H2Stream with expectStatus resets on a wrong status with END_STREAM only if it is still sending", async () => {
  for (const endStream of [false, true]) {
    const host = new FakeHost();
    const s = new H2Stream(1, host, {
      sendWindow: 65535,
      recvWindow: 65535,
      endStream,
      expectStatus: 200,
    });
    s.onHeaders([[":status", "403"]], true);
    assert.equal(s.state, "closed");
    // A request still sending its body is told to stop; a finished exchange needs no reset.
    assert.deepEqual(host.resets, endStream ? [] : [ErrorCode.CANCEL]);
    await assert.rejects(s.readable.getReader().read(), /^Error: unexpected status 403$/);
  }
});

Deno.test("H2Stream with expectStatus passes the expected status and skips informational ones", async () => {
  const host = new FakeHost();
  const s = new H2Stream(1, host, {
    sendWindow: 65535,
    recvWindow: 65535,
    endStream: true,
    expectStatus: 200,
  });
  s.onHeaders([[":status", "100"]], false);
  s.onHeaders([[":status", "200"]], false);
  s.onData(new Uint8Array([7]), 1, true);
  assert.deepEqual((await s.readable.getReader().read()).value, new Uint8Array([7]));
  assert.deepEqual(host.resets, []);
  assert.equal(s.error, undefined);
});

Deno.test("H2Stream.response and .trailers settle when first asked after the fact", async () => {
  const host = new FakeHost();
  const s = open(host, true);
  s.onHeaders([[":status", "204"]], false);
  s.onHeaders([["grpc-status", "0"]], true);
  assert.equal(s.response, s.response, "one promise per stream");
  assert.equal((await s.response).status, 204);
  assert.deepEqual(await s.trailers, [["grpc-status", "0"]]);

  const t = open(host, true);
  t.onHeaders([[":status", "200"]], true);
  assert.equal(await t.trailers, undefined);

  const u = open(host);
  u.onReset(ErrorCode.INTERNAL_ERROR);
  await assert.rejects(u.response, /peer reset stream 1 \(INTERNAL_ERROR\)/);
  await assert.rejects(u.trailers, /peer reset stream 1 \(INTERNAL_ERROR\)/);
});

Deno.test("H2Stream.response asked before the HEADERS resolves when they arrive", async () => {
  const host = new FakeHost();
  const s = open(host, true);
  const response = s.response;
  const trailers = s.trailers;
  s.onHeaders([[":status", "200"], ["x", "1"]], true);
  assert.deepEqual(await response, { status: 200, headers: [["x", "1"]] });
  assert.equal(await trailers, undefined);
});

Deno.test("H2Stream.reader and .writer carry both bodies without web streams, and rule them out", async () => {
  const host = new FakeHost();
  host.credit = 100;
  const s = open(host);
  const writer = s.writer;
  const reader = s.reader;
  assert.equal(s.writer, writer, "the same writer every time");
  assert.throws(() => s.writable, TypeError);
  assert.throws(() => s.readable, TypeError);
  await writer.write(new Uint8Array(10));
  assert.deepEqual(host.data, [{ bytes: 10, endStream: false }]);
  s.onHeaders([[":status", "200"]], false);
  s.onData(Uint8Array.of(1, 2, 3), 3, false);
  s.onData(Uint8Array.of(4, 5), 5, false); // 3 bytes of padding, credited at once
  const { value } = await reader.read();
  assert.deepEqual([...value!], [1, 2, 3, 4, 5]);
  // Padding at once; the data once read.
  assert.deepEqual(host.consumedLog, [[3, true], [5, true]]);
  const pending = reader.read();
  s.onData(Uint8Array.of(6), 1, true);
  assert.deepEqual([...(await pending).value!], [6]);
  assert.equal((await reader.read()).done, true);
  await reader.closed;
  await writer.close();
  assert.deepEqual(host.order, ["DATA", "DATA END_STREAM"]);
  assert.equal(s.state, "closed");
});

Deno.test("H2Stream.close() fails its direct reader and writer; a peer reset keeps received bytes first", async () => {
  const host = new FakeHost();
  const s = open(host);
  const reader = s.reader;
  const writer = s.writer;
  const closed = writer.closed;
  s.onHeaders([[":status", "200"]], false);
  const read = reader.read();
  s.close();
  await assert.rejects(read, /reset stream 1: cancelled/);
  await assert.rejects(writer.write(new Uint8Array(1)), /reset stream 1: cancelled/);
  await assert.rejects(closed, /reset stream 1: cancelled/);
  // The peer resets another stream after some DATA: those bytes come first, then the error.
  const t = new H2Stream(3, host, { sendWindow: 65535, recvWindow: 65535, endStream: false });
  const r = t.reader;
  t.onHeaders([[":status", "200"]], false);
  t.onData(Uint8Array.of(9, 9), 2, false);
  t.onReset(ErrorCode.INTERNAL_ERROR);
  assert.deepEqual([...(await r.read()).value!], [9, 9]);
  await assert.rejects(r.read(), /peer reset stream 3 \(INTERNAL_ERROR\)/);
  await assert.rejects(r.closed, /peer reset stream 3/);
});

Deno.test("H2Stream.reader.cancel() resets the stream and ends the reads", async () => {
  const host = new FakeHost();
  const s = open(host);
  const reader = s.reader;
  s.onHeaders([[":status", "200"]], false);
  s.onData(Uint8Array.of(1), 1, false);
  await reader.cancel();
  assert.equal((await reader.read()).done, true);
  assert.ok(host.resets.includes(ErrorCode.CANCEL));
});
