import assert from "node:assert/strict";
import { ReceiveBody } from "../../lib/h2/body.ts";
import { ReceiveWindow } from "../../lib/h2/flow.ts";
import {
  BufferLender,
  giveBack,
  POISON_BYTE,
  setBufferPoisoning,
} from "../../lib/net/buffer_lender.ts";

function body(consumed: number[] = []): ReceiveBody {
  return new ReceiveBody({
    streamId: 1,
    window: new ReceiveWindow(1024 * 1024),
    peerName: "peer",
    onConsumed: (n) => consumed.push(n),
    onCancel: () => {},
  });
}

Deno.test("ReceiveBody.push() copies the frame even when the consumer is waiting", async () => {
  const b = body();
  const reader = b.readable.getReader();
  const pending = reader.read();
  // The connection's read buffer, reused by its next read right after push() returns.
  const readBuffer = new Uint8Array(16 * 1024).fill(7);
  b.admit(readBuffer.byteLength);
  b.push(readBuffer, readBuffer.byteLength);
  readBuffer.fill(9);
  const { value } = await pending;
  assert.equal(value!.byteLength, 16 * 1024);
  assert.ok(value!.every((x) => x === 7), "the consumer saw the reused buffer's new bytes");
  b.end();
  assert.equal((await reader.read()).done, true);
});

Deno.test("ReceiveBody joins frames pushed before a read into one chunk and credits them on read", async () => {
  const consumed: number[] = [];
  const b = body(consumed);
  for (let i = 0; i < 3; i++) {
    const frame = new Uint8Array(1000).fill(i);
    b.admit(frame.byteLength);
    b.push(frame, frame.byteLength);
  }
  assert.deepEqual(consumed, []);
  const reader = b.readable.getReader();
  const { value } = await reader.read();
  assert.equal(value!.byteLength, 3000);
  assert.deepEqual([value![0], value![1500], value![2999]], [0, 1, 2]);
  assert.deepEqual(consumed, [3000]);
  await reader.cancel();
});

Deno.test("ReceiveBody hands a consumer that keeps up a small pooled copy that comes back", async () => {
  const b = body();
  const reader = b.readable.getReader();
  const frame = new Uint8Array(1000).fill(3);
  b.admit(frame.byteLength);
  b.push(frame, frame.byteLength);
  const { value } = await reader.read();
  assert.equal(value!.byteLength, 1000);
  // 1000 bytes in a 16 KiB piece would hold 16 KiB while written on: a 4 KiB pooled copy instead.
  assert.equal(value!.buffer.byteLength, 4096);
  giveBack(value!);
  assert.equal(new BufferLender(1).take(4096)!.buffer, value!.buffer, "given back to the pool");
  await reader.cancel();
});

Deno.test("ReceiveBody buffers in 16 KiB pieces, and in 64 KiB ones once the consumer falls behind", async () => {
  const b = body();
  for (let i = 0; i < 100; i++) {
    const frame = new Uint8Array(1000).fill(i);
    b.admit(frame.byteLength);
    b.push(frame, frame.byteLength);
  }
  const reader = b.readable.getReader();
  const chunks: Uint8Array[] = [];
  for (let got = 0; got < 100_000;) {
    const { value } = await reader.read();
    chunks.push(value!);
    got += value!.byteLength;
  }
  assert.equal(chunks[0].buffer.byteLength, 16384);
  assert.ok(chunks.some((c) => c.buffer.byteLength === 65536), "no 64 KiB piece");
  const all = new Uint8Array(100_000);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  assert.ok(all.every((x, i) => x === Math.floor(i / 1000)), "bytes out of order");
  await reader.cancel();
});

Deno.test("ReceiveBody hands on every byte once while its consumer gives chunks back late (poisoned pool)", async () => {
  const was = setBufferPoisoning(true);
  try {
    let x = 0x1b873593;
    const rand = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const b = new ReceiveBody({
      streamId: 1,
      window: new ReceiveWindow(64 * 1024 * 1024),
      peerName: "peer",
      onConsumed: () => {},
      onCancel: () => {},
    });
    // The connection's read buffer: every frame is a view of it, and it is reused (poisoned here)
    // right after push() returns, as SocketReader does.
    const readBuffer = new Uint8Array(16 * 1024);
    const sent: number[] = [];
    let next = 0;
    const produce = async () => {
      for (let frames = 0; frames < 3000; frames++) {
        // Small frames (v2ray's 2 KiB), full ones, and bursts the consumer falls behind on.
        const n = rand(4) === 0 ? 16 * 1024 : 1 + rand(2048);
        const frame = readBuffer.subarray(0, n);
        for (let i = 0; i < n; i++) frame[i] = next = (next * 31 + 7) & 0xff;
        for (let i = 0; i < n; i++) sent.push(frame[i]);
        b.admit(n);
        b.push(frame, n);
        readBuffer.fill(POISON_BYTE);
        if (rand(8) === 0) await new Promise((r) => setTimeout(r, rand(3)));
      }
      b.end();
    };
    const got: Uint8Array[] = [];
    const consume = async () => {
      const reader = b.readable.getReader();
      // As the relay: a chunk is copied out once its "write" settles, then given back; the next
      // read goes on meanwhile.
      const writes: Promise<void>[] = [];
      for (let reads = 0; reads < 100_000; reads++) {
        const r = await reader.read();
        if (r.done) break;
        const chunk = r.value;
        const at = reads;
        writes.push(
          new Promise<void>((resolve) => setTimeout(resolve, rand(3))).then(() => {
            got[at] = chunk.slice();
            giveBack(chunk);
          }),
        );
        if (writes.length >= 2) await writes.shift();
      }
      await Promise.all(writes);
    };
    await Promise.all([produce(), consume()]);
    const all = concatAll(got);
    assert.equal(all.byteLength, sent.length);
    const first = all.findIndex((v, i) => v !== sent[i]);
    assert.equal(first, -1, `the bytes differ from byte ${first} on`);
  } finally {
    setBufferPoisoning(was);
  }
});

function concatAll(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
