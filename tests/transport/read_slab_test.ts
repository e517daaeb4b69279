import assert from "node:assert/strict";
import { giveBack, POOL_BUFFER_SIZE } from "../../lib/net/buffer_lender.ts";
import { ReadSlab } from "../../lib/transport/read_slab.ts";

Deno.test("ReadSlab.space() gives the rest of one pooled buffer until less than min is left", () => {
  const slab = new ReadSlab(2);
  const first = slab.space(8192);
  assert.equal(first.byteLength, POOL_BUFFER_SIZE);
  slab.fill(50_000);
  const rest = slab.space(8192);
  assert.ok(rest.buffer === first.buffer);
  assert.equal(rest.byteOffset, first.byteOffset + 50_000);
  slab.fill(10_000);
  const lent = first.subarray(0, 60_000);
  slab.lend(lent);
  // 5536 bytes left: the next read goes into another buffer (the first is out with its chunk).
  const next = slab.space(8192);
  assert.ok(next.buffer !== first.buffer);
  assert.equal(next.byteLength, POOL_BUFFER_SIZE);
  giveBack(lent);
  slab.release();
});

Deno.test("ReadSlab.lend() returns a buffer to the pool only once released and every chunk is back", () => {
  const slab = new ReadSlab(1);
  const buf = slab.space(8192);
  slab.fill(3000);
  const a = buf.subarray(0, 1000);
  const b = buf.subarray(1000, 3000);
  slab.lend(a);
  slab.lend(b);
  // The reader lets go; two chunks are still out, so its one pooled buffer is still counted out:
  // the next read gets memory of its own.
  slab.release();
  const own = slab.space(8192);
  assert.ok(own.buffer !== buf.buffer);
  assert.notEqual(own.byteLength, POOL_BUFFER_SIZE);
  giveBack(a);
  slab.release();
  assert.ok(slab.space(8192).buffer !== buf.buffer, "one chunk is still out");
  giveBack(b);
  giveBack(b); // A second time changes nothing.
  slab.release();
  assert.ok(slab.space(8192).buffer === buf.buffer, "the buffer came back to the pool");
  slab.release();
});

Deno.test("ReadSlab.lend() ignores chunks of other memory; a chunk never given back keeps its buffer", () => {
  const slab = new ReadSlab(1);
  const buf = slab.space(8192);
  slab.fill(100);
  slab.lend(new Uint8Array(10)); // not ours: nothing to count
  const kept = buf.subarray(0, 100);
  slab.lend(kept);
  slab.release();
  for (let i = 0; i < 3; i++) {
    const next = slab.space(8192);
    assert.ok(next.buffer !== buf.buffer);
    slab.fill(next.byteLength);
  }
  slab.release();
  assert.equal(kept.byteLength, 100);
});
