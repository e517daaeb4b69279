import assert from "node:assert/strict";
import {
  BufferLender,
  giveBack,
  POISON_BYTE,
  poisonReused,
  POOL_BUFFER_SIZE,
  POOL_SIZES,
  releaseIdleBuffers,
  setBufferPoisoning,
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

Deno.test("giveBack() a second time never hands one buffer to two readers", () => {
  const lender = new BufferLender(4);
  const buf = lender.take(4096)!;
  const chunk = buf.subarray(0, 100);
  lender.lend(chunk, buf);
  giveBack(chunk);
  giveBack(chunk);
  const a = lender.take(4096)!;
  const b = lender.take(4096)!;
  assert.notEqual(a.buffer, b.buffer, "two readers got the same memory");
  lender.put(a);
  lender.put(b);
});

Deno.test("setBufferPoisoning(true) fills a buffer given back with POISON_BYTE", () => {
  const was = setBufferPoisoning(true);
  try {
    const lender = new BufferLender(1);
    const buf = lender.take(4096)!;
    buf.fill(7);
    const chunk = buf.subarray(10, 20);
    lender.lend(chunk, buf);
    giveBack(chunk);
    // A consumer that kept a view of the chunk past its give-back now reads garbage.
    assert.ok(chunk.every((b) => b === POISON_BYTE));
    assert.ok(buf.every((b) => b === POISON_BYTE));
    assert.equal(lender.take(4096), buf, "still served again");
    lender.put(buf);
  } finally {
    setBufferPoisoning(was);
  }
});

Deno.test("BufferLender.take() throws, with the guard on, when memory given back was written since", () => {
  const was = setBufferPoisoning(true);
  try {
    const lender = new BufferLender(2);
    const buf = lender.take(16384)!;
    lender.put(buf);
    // A late writer: say a read that was still pending into the buffer when it went back.
    buf[5000] = 1;
    assert.throws(() => lender.take(16384), /written near byte 5000 after it was given back/);
  } finally {
    setBufferPoisoning(was);
  }
});

Deno.test("BufferLender.put() throws, with the guard on, for a buffer already in the pool", () => {
  const was = setBufferPoisoning(true);
  try {
    const lender = new BufferLender(2);
    const buf = lender.take(4096)!;
    lender.put(buf);
    assert.throws(() => lender.put(buf), /already in the pool \(given back twice\)/);
  } finally {
    setBufferPoisoning(was);
  }
});

Deno.test("poisonReused() poisons only while the guard is on", () => {
  const was = setBufferPoisoning(false);
  try {
    const buf = new Uint8Array(8).fill(1);
    poisonReused(buf);
    assert.ok(buf.every((b) => b === 1));
    setBufferPoisoning(true);
    poisonReused(buf);
    assert.ok(buf.every((b) => b === POISON_BYTE));
  } finally {
    setBufferPoisoning(was);
  }
});
