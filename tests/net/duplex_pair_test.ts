import assert from "node:assert/strict";
import { duplexPair } from "../../lib/net/duplex_pair.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("duplexPair() carries bytes both ways and half-close as EOF", async () => {
  const [a, b] = duplexPair();
  const aw = a.writable.getWriter();
  const bw = b.writable.getWriter();
  // Both write before either reads: writes land in the buffer, as on a socket.
  await aw.write(enc.encode("from a"));
  await bw.write(enc.encode("from b"));
  await aw.close();
  const br = b.readable.getReader();
  assert.equal(dec.decode((await br.read()).value), "from a");
  assert.equal((await br.read()).done, true);
  // b can still answer after a's half-close.
  await bw.write(enc.encode(" again"));
  await bw.close();
  const ar = a.readable.getReader();
  assert.equal(dec.decode((await ar.read()).value), "from b");
  assert.equal(dec.decode((await ar.read()).value), " again");
  assert.equal((await ar.read()).done, true);
});

Deno.test("duplexPair() makes a writer wait once highWaterMark bytes are unread", async () => {
  const [a, b] = duplexPair(8);
  const w = a.writable.getWriter();
  // Room in the buffer: resolves with nobody reading.
  await w.write(new Uint8Array(4));
  // This one fills the buffer: it resolves only once the reader makes room.
  let second = false;
  const pending = w.write(new Uint8Array(4)).then(() => (second = true));
  const r = b.readable.getReader();
  assert.equal((await r.read()).value?.byteLength, 4);
  await pending;
  assert.equal(second, true);
  assert.equal((await r.read()).value?.byteLength, 4);
  a.close();
});

Deno.test("duplexPair() close() resets: the peer's reads and writes fail with ConnectionReset", async () => {
  const [a, b] = duplexPair();
  const r = b.readable.getReader();
  const pendingRead = r.read();
  a.close();
  await assert.rejects(pendingRead, Deno.errors.ConnectionReset);
  await assert.rejects(b.writable.getWriter().write(enc.encode("x")), Deno.errors.ConnectionReset);
});

Deno.test("duplexPair() close() after a half-close still delivers the bytes sent", async () => {
  const [a, b] = duplexPair();
  const w = a.writable.getWriter();
  await w.write(enc.encode("last words"));
  await w.close();
  a.close();
  const r = b.readable.getReader();
  assert.equal(dec.decode((await r.read()).value), "last words");
  assert.equal((await r.read()).done, true);
});

Deno.test("duplexPair() canceling the readable fails the peer's writes", async () => {
  const [a, b] = duplexPair();
  await b.readable.cancel();
  await assert.rejects(a.writable.getWriter().write(enc.encode("x")), Deno.errors.ConnectionReset);
  a.close();
});
