import assert from "node:assert/strict";
import { ByteReader, UnexpectedEofError } from "../../lib/net/byte_reader.ts";

function streamOf(...chunks: number[][]): ReadableStream<Uint8Array> {
  const queue = chunks.map((c) => Uint8Array.from(c));
  return new ReadableStream({
    pull: (c) => {
      const next = queue.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<number[]> {
  const out: number[] = [];
  for await (const c of s) out.push(...c);
  return out;
}

Deno.test("ByteReader.readExact() joins chunks and returns views when sizes match", async () => {
  const r = new ByteReader(streamOf([1, 2], [3], [4, 5, 6]));
  assert.deepEqual([...(await r.readExact(3))!], [1, 2, 3]);
  assert.deepEqual([...(await r.readExact(1))!], [4]);
  assert.deepEqual([...(await r.readExact(2))!], [5, 6]);
  assert.equal(await r.readExact(1), null);
});

Deno.test("ByteReader.readExact() throws UnexpectedEofError on EOF after a partial read", async () => {
  const r = new ByteReader(streamOf([1, 2]));
  await assert.rejects(r.readExact(3), UnexpectedEofError);
});

Deno.test("ByteReader reads the same bytes whatever the chunking", async () => {
  const bytes = [10, 11, 12, 13, 14, 15, 16];
  for (let split = 0; split <= bytes.length; split++) {
    const r = new ByteReader(streamOf(bytes.slice(0, split), bytes.slice(split)));
    assert.ok(await r.ensure(3));
    assert.deepEqual([...r.peek(3)], [10, 11, 12], `split ${split}`);
    assert.deepEqual([...(await r.readExact(2))!], [10, 11]);
    const rest: number[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await r.read(2);
      if (c === null) break;
      assert.ok(c.byteLength <= 2);
      rest.push(...c);
    }
    assert.deepEqual(rest, [12, 13, 14, 15, 16], `split ${split}`);
  }
});

Deno.test("ByteReader.ensure() is false at EOF and peek() refuses more than buffered", async () => {
  const r = new ByteReader(streamOf([1]));
  assert.equal(await r.ensure(2), false);
  assert.equal(r.buffered, 1);
  assert.throws(() => r.peek(2), RangeError);
  assert.deepEqual([...r.peek(1)], [1]);
});

Deno.test("ByteReader.rest() yields the buffered bytes, then the rest of the source", async () => {
  const r = new ByteReader(streamOf([1, 2, 3], [4], [5, 6]));
  assert.deepEqual([...(await r.readExact(2))!], [1, 2]);
  assert.ok(await r.ensure(2)); // buffers [3] and [4]
  assert.deepEqual(await collect(r.rest()), [3, 4, 5, 6]);
  assert.throws(() => r.rest(), TypeError);
});

Deno.test("ByteReader.rest() after EOF ends after the buffered bytes", async () => {
  const r = new ByteReader(streamOf([7, 8]));
  assert.equal(await r.ensure(5), false);
  assert.deepEqual(await collect(r.rest()), [7, 8]);
});

async function drain(r: ReadableStreamDefaultReader<Uint8Array>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 100; i++) {
    const { done, value } = await r.read();
    if (done) break;
    out.push(...value);
  }
  return out;
}

Deno.test("ByteReader.restReader() hands on the source's own locked reader when nothing is buffered", async () => {
  const source = streamOf([1, 2], [3], [4]);
  const r = new ByteReader(source);
  assert.deepEqual([...(await r.readExact(2))!], [1, 2]);
  const rest = r.restReader();
  // Still locked by the same reader: no lock was released on the way.
  assert.equal(source.locked, true);
  assert.deepEqual(await drain(rest), [3, 4]);
  assert.throws(() => r.rest(), TypeError);
});

Deno.test("ByteReader.restReader() yields read-ahead bytes first, then the rest of the source", async () => {
  const r = new ByteReader(streamOf([1, 2, 3], [4]));
  assert.deepEqual([...(await r.readExact(1))!], [1]);
  assert.deepEqual(await drain(r.restReader()), [2, 3, 4]);
});

Deno.test("ByteReader.cancel() cancels the source", async () => {
  let canceled = false;
  const r = new ByteReader(new ReadableStream({ cancel: () => void (canceled = true) }));
  await r.cancel();
  assert.equal(canceled, true);
});

Deno.test("ByteReader.unshift() puts bytes back in front", async () => {
  const r = new ByteReader(streamOf([1, 2, 3], [4]));
  const first = (await r.read())!;
  assert.deepEqual([...first], [1, 2, 3]);
  r.unshift(first.subarray(1));
  assert.equal(r.buffered, 2);
  assert.deepEqual([...(await r.readExact(3))!], [2, 3, 4]);
});
