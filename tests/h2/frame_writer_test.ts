import assert from "node:assert/strict";
import {
  FrameWriter,
  HOLD_CHECK_MS,
  MAX_BATCH,
  REUSE_MIN,
  SMALL_SPARE,
} from "../../lib/h2/frame_writer.ts";

/** A writable that records each chunk: a copy of its bytes and the buffer it lives in. */
function recorder(): {
  writable: WritableStream<Uint8Array>;
  copies: Uint8Array[];
  views: Uint8Array[];
} {
  const copies: Uint8Array[] = [];
  const views: Uint8Array[] = [];
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      copies.push(chunk.slice());
      views.push(chunk);
    },
  });
  return { writable, copies, views };
}

/** One frame's worth of bytes: a 9-byte head and a body filled with `fill`. */
function frame(bodySize: number, fill: number): { head: Uint8Array; body: Uint8Array } {
  return { head: new Uint8Array(9).fill(0xee), body: new Uint8Array(bodySize).fill(fill) };
}

async function writeBatch(w: FrameWriter, bodySize: number, fill: number): Promise<void> {
  const f = frame(bodySize, fill);
  w.queue(f.head, f.body);
  // The writer starts in a microtask; idle() then waits for that write to settle.
  await Promise.resolve();
  await w.idle();
}

Deno.test("FrameWriter with reuseBuffer builds large batches in one reused buffer, small ones apart", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {}, reuseBuffer: true });
  await writeBatch(w, REUSE_MIN * 2, 1);
  await writeBatch(w, REUSE_MIN, 2);
  await writeBatch(w, 100, 3);
  await writeBatch(w, REUSE_MIN * 8, 4);
  assert.equal(r.copies.length, 4);
  for (const [i, fill] of [1, 2, 3, 4].entries()) {
    assert.ok(r.copies[i].subarray(0, 9).every((b) => b === 0xee), `batch ${i} head`);
    assert.ok(r.copies[i].subarray(9).every((b) => b === fill), `batch ${i} body`);
  }
  assert.equal(r.views[0].buffer, r.views[1].buffer, "the second large batch reuses the buffer");
  assert.notEqual(r.views[2].buffer, r.views[0].buffer, "a small batch is not in the large buffer");
  // Sized to what it carries (the next power of two), grown when a bigger batch comes.
  assert.equal(r.views[0].buffer.byteLength, 2 ** Math.ceil(Math.log2(REUSE_MIN * 2 + 9)));
  assert.notEqual(r.views[3].buffer, r.views[0].buffer);
  assert.ok(r.views[3].buffer.byteLength >= REUSE_MIN * 8 + 9);
  w.release();
});

Deno.test("FrameWriter with reuseBuffer lets the buffer go after a run of small batches", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {}, reuseBuffer: true });
  await writeBatch(w, REUSE_MIN, 1);
  for (let i = 0; i < 16; i++) await writeBatch(w, 10, 2);
  await writeBatch(w, REUSE_MIN, 3);
  const first = r.views[0].buffer;
  const last = r.views[r.views.length - 1].buffer;
  assert.notEqual(last, first, "a new buffer after the transfer went quiet");
  assert.ok(r.copies[r.copies.length - 1].subarray(9).every((b) => b === 3));
  w.release();
});

Deno.test("FrameWriter without reuseBuffer gives every batch its own buffer", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {} });
  await writeBatch(w, REUSE_MIN, 1);
  await writeBatch(w, REUSE_MIN, 2);
  assert.notEqual(r.views[0].buffer, r.views[1].buffer);
  // What a writable kept (an in-memory pipe keeps the chunk itself) stays intact.
  assert.ok(r.views[0].subarray(9).every((b) => b === 1));
  assert.ok(r.views[1].subarray(9).every((b) => b === 2));
  w.release();
});

Deno.test("FrameWriter with reuseBuffer: a bulk batch just over MAX_BATCH gets a buffer of its size, not the next power of two", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {}, reuseBuffer: true });
  // 33 DATA frames of 16 KiB queued in one tick, as a bulk download queues them.
  const body = new Uint8Array(16 * 1024).fill(5);
  for (let i = 0; i < 33; i++) w.queue(new Uint8Array(9).fill(0xee), body);
  await Promise.resolve();
  await w.idle();
  const biggest = Math.max(...r.views.map((v) => v.buffer.byteLength));
  assert.ok(biggest >= MAX_BATCH, `a batch of ${r.views[0].byteLength} bytes`);
  assert.ok(biggest < MAX_BATCH + 64 * 1024, `a ${biggest}-byte buffer`);
  w.release();
});

Deno.test("FrameWriter.hold() sends a frame with the next one queued, in order, never on its own at once", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {} });
  const headers = new Uint8Array(9).fill(1);
  w.hold(headers);
  // Turns of the event loop pass (a client's round trip): the held frame waits.
  for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 0));
  await w.idle();
  assert.equal(r.copies.length, 0);
  const data = frame(4, 2);
  w.queue(data.head, data.body);
  await Promise.resolve();
  await w.idle();
  assert.equal(r.copies.length, 1, "one write");
  assert.deepEqual([...r.copies[0].subarray(0, 9)], [...headers]);
  assert.deepEqual([...r.copies[0].subarray(9, 18)], [...data.head]);
  w.release();
});

Deno.test("FrameWriter.sendHeld() and the hold check send held frames nobody followed", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {} });
  w.hold(new Uint8Array(9).fill(1));
  w.sendHeld();
  await Promise.resolve();
  await w.idle();
  assert.equal(r.copies.length, 1);
  // Held and never followed: out by the second hold check (HOLD_CHECK_MS, at most twice that).
  const t0 = performance.now();
  w.hold(new Uint8Array(9).fill(2));
  for (let i = 0; i < 100 && r.copies.length < 2; i++) {
    await new Promise((res) => setTimeout(res, HOLD_CHECK_MS / 10));
  }
  assert.equal(r.copies.length, 2);
  assert.ok(performance.now() - t0 >= HOLD_CHECK_MS - 1, "not before one full check period");
  assert.equal(r.copies[1][0], 2);
  w.release();
});

Deno.test("FrameWriter with reuseBuffer writes small batches through one small buffer", async () => {
  const r = recorder();
  const w = new FrameWriter(r.writable, { onError: () => {}, reuseBuffer: true });
  await writeBatch(w, 64, 1);
  await writeBatch(w, 100, 2);
  await writeBatch(w, SMALL_SPARE + 1, 3);
  assert.equal(r.views[0].buffer, r.views[1].buffer, "the second small batch reuses the buffer");
  assert.equal(r.views[1].buffer.byteLength, SMALL_SPARE);
  assert.notEqual(r.views[2].buffer, r.views[0].buffer, "a larger one does not fit it");
  for (const [i, fill] of [1, 2, 3].entries()) {
    assert.ok(r.copies[i].subarray(9).every((b) => b === fill), `batch ${i} body`);
  }
  w.release();
});
