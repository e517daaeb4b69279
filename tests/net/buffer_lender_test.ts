import assert from "node:assert/strict";
import {
  BufferLender,
  giveBack,
  POOL_BUFFER_SIZE,
  POOL_SIZES,
  releaseIdleBuffers,
} from "../../lib/net/buffer_lender.ts";

Deno.test("BufferLender.take() hands out the buffer a sink gave back", () => {
  const lender = new BufferLender(2);
  const buf = lender.take()!;
  assert.equal(buf.byteLength, POOL_BUFFER_SIZE);
  const chunk = buf.subarray(0, 100);
  lender.lend(chunk, buf);
  giveBack(chunk);
  assert.equal(lender.take(), buf);
});

Deno.test("giveBack() ignores views of a lent chunk, other chunks and a second call", () => {
  const lender = new BufferLender(1);
  const buf = lender.take()!;
  const chunk = buf.subarray(0, 10);
  lender.lend(chunk, buf);
  // A view of the same bytes is not the chunk: whoever made it may still be using it.
  giveBack(chunk.subarray(0, 10));
  giveBack(new Uint8Array(10));
  assert.equal(lender.take(), undefined, "the one buffer is still out");
  giveBack(chunk);
  const again = lender.take()!;
  assert.equal(again, buf);
  // The old chunk object comes back a second time while the buffer is lent anew: ignored.
  const next = again.subarray(0, 10);
  lender.lend(next, again);
  giveBack(chunk);
  assert.equal(lender.take(), undefined);
});

Deno.test("BufferLender.take() returns undefined once max buffers are out and none came back", () => {
  const lender = new BufferLender(3);
  const taken = [lender.take(), lender.take(), lender.take()];
  assert.ok(taken.every((b) => b !== undefined));
  assert.equal(new Set(taken).size, 3);
  assert.equal(lender.take(), undefined);
  lender.put(taken[1]!);
  assert.ok(lender.take() !== undefined);
});

Deno.test("releaseIdleBuffers() lets go of the free buffers nobody took since the last call", () => {
  releaseIdleBuffers();
  releaseIdleBuffers(); // the pool is empty now, whatever earlier tests left in it
  const lender = new BufferLender(4);
  const bufs = [lender.take()!, lender.take()!, lender.take()!];
  for (const b of bufs) lender.put(b);
  // Three free buffers; since the last call the pool never had fewer than none.
  assert.equal(releaseIdleBuffers(), 0);
  // A reader takes one and puts it back: two were never needed, and they go.
  lender.put(lender.take()!);
  assert.equal(releaseIdleBuffers(), 2);
  assert.equal(releaseIdleBuffers(), 1, "the last one went unused for a whole period too");
  assert.equal(releaseIdleBuffers(), 0);
});

Deno.test("BufferLender.take(n) hands out the smallest pooled size that holds n bytes", () => {
  const lender = new BufferLender(8);
  assert.deepEqual(POOL_SIZES, [4096, 16384, POOL_BUFFER_SIZE]);
  assert.equal(lender.take(1)!.byteLength, 4096);
  assert.equal(lender.take(4096)!.byteLength, 4096);
  assert.equal(lender.take(4097)!.byteLength, 16384);
  assert.equal(lender.take(16385)!.byteLength, POOL_BUFFER_SIZE);
  assert.equal(lender.take()!.byteLength, POOL_BUFFER_SIZE);
  assert.throws(() => lender.take(POOL_BUFFER_SIZE + 1), RangeError);
});

Deno.test("BufferLender.put() keeps what a burst gave back, far more than one reader's share", () => {
  releaseIdleBuffers();
  releaseIdleBuffers();
  // 512 streams, each with one 16 KiB piece out at once (a cap of 64 free buffers once turned
  // most of these into garbage).
  const lenders = Array.from({ length: 512 }, () => new BufferLender(1));
  const pieces = lenders.map((l) => l.take(16384)!);
  lenders.forEach((l, i) => l.put(pieces[i]));
  const taken = lenders.map((l) => l.take(16384)!);
  const again = new Set(taken);
  assert.equal(pieces.filter((p) => again.has(p)).length, 512, "every piece served again");
  lenders.forEach((l, i) => l.put(taken[i]));
  // Nobody takes them for two periods: all of them go.
  releaseIdleBuffers();
  releaseIdleBuffers();
  const fresh = new BufferLender(1).take(16384)!;
  assert.ok(!again.has(fresh), "released buffers are not handed out again");
});

Deno.test("BufferLender.put() keeps no buffer of a size the pool does not hand out", () => {
  const lender = new BufferLender(1);
  lender.take();
  lender.put(new Uint8Array(5000));
  assert.equal(lender.take(5000)!.byteLength, 16384);
});
