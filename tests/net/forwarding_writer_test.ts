import assert from "node:assert/strict";
import { ForwardingWriter } from "../../lib/net/forwarding_writer.ts";

Deno.test("ForwardingWriter hands writes, backpressure and close to the inner writer; a subclass changes write", async () => {
  const got: number[][] = [];
  let release: () => void = () => {};
  const sink = new WritableStream<Uint8Array>({
    write: (chunk) => {
      got.push([...chunk]);
      return new Promise<void>((r) => (release = r));
    },
  }, { highWaterMark: 1 });
  class Doubling extends ForwardingWriter {
    override write(chunk: Uint8Array): Promise<void> {
      return this.inner.write(chunk.map((b) => b * 2));
    }
  }
  const w = new Doubling(sink.getWriter());
  const first = w.write(Uint8Array.of(1, 2));
  await Promise.resolve();
  const second = w.write(Uint8Array.of(3));
  // Two chunks held (one being written, one queued) against a high-water mark of 1: the inner
  // writer's backpressure shows through.
  assert.equal(w.desiredSize, -1);
  release();
  await first;
  release();
  await second;
  await w.ready;
  const closing = w.close();
  await closing;
  await w.closed;
  assert.deepEqual(got, [[2, 4], [6]]);
  w.releaseLock();
});
