import assert from "node:assert/strict";
import { SocketReader } from "../../lib/h2/socket_reader.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import type { Duplex } from "../../lib/net/duplex.ts";

/** A duplex whose `read(buf)` fills each read with `sizes[i]` bytes of value i, then EOF. */
function sizedSource(sizes: number[]): Duplex & { read(buf: Uint8Array): Promise<number | null> } {
  let i = 0;
  return {
    readable: new ReadableStream(),
    writable: new WritableStream(),
    close() {},
    read(buf: Uint8Array) {
      if (i >= sizes.length) return Promise.resolve(null);
      const n = Math.min(sizes[i], buf.byteLength);
      buf.fill(i++, 0, n);
      return Promise.resolve(n);
    },
  };
}

Deno.test("SocketReader.read() reuses one small buffer, then one bulk buffer while reads stay large", async () => {
  const reader = new SocketReader(sizedSource([10, 2048, 65536, 65536, 30000, 100, 50]));
  const buffers: ArrayBufferLike[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < 10; i++) {
    const chunk = await reader.read();
    if (chunk === null) break;
    assert.ok(chunk.every((b) => b === i), `read ${i} holds its own bytes`);
    buffers.push(chunk.buffer);
    lengths.push(chunk.byteLength);
  }
  reader.release();
  // A full small read switches to bulk reads; a read under 4 KiB switches back.
  assert.deepEqual(lengths, [10, 2048, 65536, 65536, 30000, 100, 50]);
  assert.equal(buffers[0], buffers[1]);
  assert.notEqual(buffers[2], buffers[1]);
  assert.equal(buffers[3], buffers[2]);
  assert.equal(buffers[4], buffers[2]);
  assert.equal(buffers[5], buffers[2]);
  assert.equal(buffers[6], buffers[0]);
});

Deno.test("SocketReader.read() takes the readable's chunks when the duplex cannot read into a buffer", async () => {
  const [a, b] = duplexPair();
  const reader = new SocketReader(a);
  const w = b.writable.getWriter();
  const sent = new Uint8Array([1, 2, 3]);
  await Promise.all([w.write(sent), w.close()]);
  assert.deepEqual(await reader.read(), sent);
  assert.equal(await reader.read(), null);
  reader.release();
  a.close();
  b.close();
});
