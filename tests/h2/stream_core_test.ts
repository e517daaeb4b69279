import assert from "node:assert/strict";
import type { StreamHost } from "../../lib/h2/endpoint.ts";
import { ErrorCode, StreamError } from "../../lib/h2/errors.ts";
import type { TakenListener } from "../../lib/h2/frame_writer.ts";
import { H2ServerStream, parseRequest } from "../../lib/h2/server_stream.ts";
import { H2Stream } from "../../lib/h2/stream.ts";
import type { H2StreamCore } from "../../lib/h2/stream_core.ts";

/** A connection stand-in for either role's streams: unlimited credit, frames recorded. */
class FakeHost implements StreamHost<H2StreamCore> {
  frames: string[] = [];
  closed = 0;
  reserve(_s: H2StreamCore, want: number): number {
    return Math.min(want, 16384);
  }
  queueHeaders(_s: H2StreamCore, fields: Array<[string, string]>, endStream: boolean): void {
    this.frames.push(`HEADERS ${fields[0][1]}${endStream ? " END_STREAM" : ""}`);
  }
  queueData(_s: H2StreamCore, data: Uint8Array, endStream: boolean, notify?: TakenListener): void {
    this.frames.push(`DATA ${data.byteLength}${endStream ? " END_STREAM" : ""}`);
    if (notify) queueMicrotask(() => notify.taken());
  }
  queueReset(_s: H2StreamCore, code: number): void {
    this.frames.push(`RST_STREAM ${code}`);
  }
  consumed(): void {}
  streamClosed(): void {
    this.closed++;
  }
}

const windows = { sendWindow: 65535, recvWindow: 65535, endStream: false };

/** A client stream with its response HEADERS in, and a server stream with its request in. */
function both(host: FakeHost, headers: Array<[string, string]> = []): H2StreamCore[] {
  const client = new H2Stream(1, host, windows);
  client.onHeaders([[":status", "200"], ...headers], false);
  const request = parseRequest(1, [
    [":method", "POST"],
    [":scheme", "https"],
    [":authority", "example.com"],
    [":path", "/"],
    ...headers,
  ]);
  return [client, new H2ServerStream(1, request, host, windows)];
}

Deno.test("H2StreamCore.onReset() names the peer of either role after the bytes it sent", async () => {
  for (const [s, peer] of both(new FakeHost()).map((s, i) => [s, ["peer", "client"][i]] as const)) {
    s.onData(new Uint8Array([1, 2, 3]), 3, false);
    s.onReset(ErrorCode.CANCEL);
    assert.equal(s.state, "closed");
    const reader = s.readable.getReader();
    assert.deepEqual((await reader.read()).value, new Uint8Array([1, 2, 3]));
    await assert.rejects(reader.read(), (err: unknown) => {
      assert.ok(err instanceof StreamError);
      assert.equal(err.message, `${peer} reset stream 1 (CANCEL)`);
      assert.equal(err.initiator, "peer");
      return true;
    });
  }
});

Deno.test("H2StreamCore.bytesSent counts the body bytes handed to the connection in either role", async () => {
  const host = new FakeHost();
  for (const s of both(host)) {
    const writer = s.writable.getWriter();
    await writer.write(new Uint8Array(20_000));
    assert.equal(s.bytesSent, 20_000);
    await writer.close();
    assert.equal(s.state, "half-closed-local");
  }
  // The server's response HEADERS go out before its first DATA.
  assert.deepEqual(host.frames, [
    "DATA 16384",
    "DATA 3616",
    "DATA 0 END_STREAM",
    "HEADERS 200",
    "DATA 16384",
    "DATA 3616",
    "DATA 0 END_STREAM",
  ]);
});

Deno.test("H2StreamCore.onData() fails with STREAM_CLOSED after the peer's END_STREAM in either role", () => {
  const host = new FakeHost();
  for (const s of both(host)) {
    s.onData(new Uint8Array(1), 1, true);
    assert.equal(s.state, "half-closed-remote");
    assert.throws(
      () => s.onData(new Uint8Array(1), 1, false),
      (err: unknown) => err instanceof StreamError && err.code === ErrorCode.STREAM_CLOSED,
    );
  }
});

Deno.test("H2StreamCore.onData() fails with PROTOCOL_ERROR when END_STREAM contradicts content-length", () => {
  const host = new FakeHost();
  for (const s of both(host, [["content-length", "5"]])) {
    s.onData(new Uint8Array(3), 3, false);
    assert.throws(
      () => s.onData(new Uint8Array(1), 1, true),
      (err: unknown) =>
        err instanceof StreamError && err.code === ErrorCode.PROTOCOL_ERROR &&
        err.message.endsWith("content-length 5 but 4 bytes of DATA"),
    );
  }
});
