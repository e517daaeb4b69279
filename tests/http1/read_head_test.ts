import assert from "node:assert/strict";
import { ByteReader } from "../../lib/net/byte_reader.ts";
import { MAX_HEAD_BYTES, readHead } from "../../lib/http1/read_head.ts";
import { HttpError } from "../../lib/http1/message.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function readerOf(chunks: Uint8Array[]): ByteReader {
  return new ByteReader(
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const chunk of chunks) c.enqueue(chunk);
        c.close();
      },
    }),
  );
}

function bytesOf(text: string): Uint8Array[] {
  return [...enc.encode(text)].map((b) => new Uint8Array([b]));
}

Deno.test("readHead() returns the head and leaves the body when the end spans chunks", async () => {
  const reader = readerOf([
    enc.encode("GET / HTTP/1.1\r\nHost: a\r"),
    enc.encode("\n\r"),
    enc.encode("\nbody"),
  ]);
  const head = await readHead(reader);
  assert.equal(dec.decode(head!), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(dec.decode(await reader.read() ?? new Uint8Array()), "body");
});

Deno.test("readHead() returns null on EOF before any byte and 400 (or eofStatus) mid-head", async () => {
  assert.equal(await readHead(readerOf([])), null);
  await assert.rejects(
    () => readHead(readerOf(bytesOf("GET / HT")), 502),
    (e) => e instanceof HttpError && e.status === 502,
  );
});

Deno.test("readHead() throws 431 when the head exceeds MAX_HEAD_BYTES", async () => {
  const line = "X: " + "a".repeat(1000) + "\r\n";
  const text = "GET / HTTP/1.1\r\n" + line.repeat(Math.ceil(MAX_HEAD_BYTES / line.length)) + "\r\n";
  await assert.rejects(
    () => readHead(readerOf([enc.encode(text)])),
    (e) => e instanceof HttpError && e.status === 431,
  );
});

Deno.test("readHead() copies each byte a bounded number of times when the head trickles in", async () => {
  // A head sent one byte per segment must not cost a copy of everything so far per byte (60 KB
  // took ~1 s of CPU that way). Counting the bytes Uint8Array.prototype.set copies is the
  // deterministic form of that: linear, not quadratic, in the head's size.
  const text = "GET / HTTP/1.1\r\n" + "X: " + "a".repeat(20_000) + "\r\n\r\n";
  const reader = readerOf(bytesOf(text));
  const set = Uint8Array.prototype.set;
  let copied = 0;
  Uint8Array.prototype.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
    copied += src.length;
    return set.call(this, src, offset);
  };
  let head: Uint8Array | null;
  try {
    head = await readHead(reader);
  } finally {
    Uint8Array.prototype.set = set;
  }
  assert.equal(head!.byteLength, text.length);
  assert.equal(
    copied <= 4 * text.length,
    true,
    `copied ${copied} bytes for a ${text.length}-byte head`,
  );
});
