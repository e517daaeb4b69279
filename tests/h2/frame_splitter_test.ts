import assert from "node:assert/strict";
import { ConnectionError, ErrorCode } from "../../lib/h2/errors.ts";
import { encodeData, encodeWindowUpdate, type FrameHeader } from "../../lib/h2/frame.ts";
import { FrameSplitter } from "../../lib/h2/frame_splitter.ts";
import { concat } from "../support/fake_outbound.ts";

/** DATA frames on stream 1 with payloads of `sizes` bytes, each filled with its index + 1. */
function dataFrames(sizes: number[]): Uint8Array {
  return concat(sizes.map((n, i) => encodeData(1, new Uint8Array(n).fill(i + 1))));
}

/** Feeds `wire` in reads of `step` bytes; returns each frame's payload as copied in the handler. */
function split(wire: Uint8Array, step: number, max = 64 * 1024): Uint8Array[] {
  const splitter = new FrameSplitter(max);
  const got: Uint8Array[] = [];
  for (let off = 0; off < wire.byteLength; off += step) {
    splitter.feed(wire.subarray(off, off + step), (_h: FrameHeader, payload) => {
      // A payload is valid only during the call: keep a copy, as the connections do.
      got.push(payload.slice());
      return true;
    });
  }
  return got;
}

Deno.test("FrameSplitter cuts frames out of reads of any size, whole or split", () => {
  const sizes = [40_000, 10, 0, 65_536, 3, 20_000];
  const wire = dataFrames(sizes);
  for (const step of [1, 7, 9, 1000, 16_384, 16_393, wire.byteLength]) {
    const got = split(wire, step);
    assert.deepEqual(got.map((p) => p.byteLength), sizes, `reads of ${step}`);
    got.forEach((p, i) => assert.ok(p.every((b) => b === i + 1), `frame ${i}, reads of ${step}`));
  }
});

Deno.test("FrameSplitter refuses a frame beyond SETTINGS_MAX_FRAME_SIZE before buffering it", () => {
  const wire = dataFrames([20_000]);
  assert.throws(
    () => split(wire, 100, 16_384),
    (e) => e instanceof ConnectionError && e.code === ErrorCode.FRAME_SIZE_ERROR,
  );
});

Deno.test("FrameSplitter offers whole WINDOW_UPDATEs to onWindowUpdate as numbers, else to onFrame", () => {
  // Reserved bits set on both fields: they must be cleared (RFC 9113 §6.9).
  const reserved = encodeWindowUpdate(5, 1000);
  reserved[5] |= 0x80;
  reserved[9] |= 0x80;
  const wire = concat([
    encodeWindowUpdate(0, 70_000),
    reserved,
    encodeWindowUpdate(3, 0x7fff_ffff),
    encodeData(1, Uint8Array.of(1, 2, 3)),
    encodeWindowUpdate(7, 42),
  ]);
  const fast: Array<[number, number]> = [];
  const slow: number[] = [];
  new FrameSplitter(16_384).feed(
    wire,
    (h) => {
      slow.push(h.type);
      return true;
    },
    (streamId, increment) => {
      fast.push([streamId, increment]);
      // Declined: stream 7 goes the full way.
      return streamId !== 7;
    },
  );
  assert.deepEqual(fast, [[0, 70_000], [5, 1000], [3, 0x7fff_ffff], [7, 42]]);
  assert.deepEqual(slow, [0x0, 0x8]);
});

Deno.test("FrameSplitter: a WINDOW_UPDATE split across reads or of a wrong length goes to onFrame", () => {
  const update = encodeWindowUpdate(1, 500);
  const long = new Uint8Array(9 + 5);
  long.set(update.subarray(0, 9));
  long[2] = 5; // length 5: the full path reports FRAME_SIZE_ERROR
  const splitter = new FrameSplitter(16_384);
  const slow: number[] = [];
  const onFrame = (h: FrameHeader) => {
    slow.push(h.length);
    return true;
  };
  const fast = () => {
    throw new Error("not offered");
  };
  splitter.feed(update.subarray(0, 6), onFrame, fast);
  splitter.feed(update.subarray(6), onFrame, fast);
  splitter.feed(long, onFrame, fast);
  assert.deepEqual(slow, [4, 5]);
});
