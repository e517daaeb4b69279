import assert from "node:assert/strict";
import { giveBack, setBufferPoisoning } from "../../lib/net/buffer_lender.ts";
import { WsConnection } from "../../lib/transport/ws_connection.ts";
import { CloseCode, encodeCloseBody, encodeFrame, Opcode } from "../../lib/ws/frame.ts";

const MASK = new Uint8Array([1, 2, 3, 4]);

/** A frame as a client sends it (masked): what a server-role WsConnection reads. */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  return encodeFrame(opcode, payload, { mask: MASK });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * A server-role WsConnection over a scripted socket: `feed` gives it bytes, `end()` is the peer's
 * FIN; `written` holds every write. With `stall`, writes stay unsettled until `release()`.
 */
function serverOver(options: { stall?: boolean } = {}) {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({ start: (c) => void (input = c) });
  const written: Uint8Array[] = [];
  const gate = Promise.withResolvers<void>();
  if (!options.stall) gate.resolve();
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      written.push(chunk.slice());
      return gate.promise;
    },
  });
  const writer = writable.getWriter();
  let socketClosed = false;
  const ws = new WsConnection({
    reader: readable.getReader(),
    writer,
    close: () => {
      socketClosed = true;
      try {
        input.close();
      } catch {
        // Already ended.
      }
    },
  }, { role: "server" });
  return {
    ws,
    writer,
    written,
    feed: (b: Uint8Array) => input.enqueue(b),
    end: () => input.close(),
    release: () => gate.resolve(),
    get socketClosed() {
      return socketClosed;
    },
  };
}

/** The Close frame among server (unmasked) writes: its code, or undefined. */
function closeCodeWritten(written: Uint8Array[]): number | undefined {
  for (const w of written) {
    if (w.byteLength >= 4 && (w[0] & 0x0f) === Opcode.Close) return (w[2] << 8) | w[3];
  }
  return undefined;
}

Deno.test("WsConnection.readable fails when the socket ends without a Close frame", async () => {
  const s = serverOver();
  const reader = s.ws.readable.getReader();
  s.feed(clientFrame(Opcode.Binary, new Uint8Array([7, 8])));
  assert.deepEqual((await reader.read()).value, new Uint8Array([7, 8]));
  s.end();
  await assert.rejects(reader.read(), (e) => e instanceof Deno.errors.UnexpectedEof);
  await s.ws.closed;
});

Deno.test("WsConnection.readable fails on a Close other than 1000 and ends on 1000 or no code", async () => {
  const cases: [Uint8Array, boolean][] = [
    [encodeCloseBody(CloseCode.InternalError, "cut"), false],
    [encodeCloseBody(CloseCode.GoingAway), false],
    [encodeCloseBody(CloseCode.Normal), true],
    [new Uint8Array(0), true],
  ];
  for (const [body, clean] of cases) {
    const s = serverOver();
    const reader = s.ws.readable.getReader();
    // The data before the Close is delivered either way.
    s.feed(
      concat([clientFrame(Opcode.Binary, new Uint8Array([5])), clientFrame(Opcode.Close, body)]),
    );
    assert.deepEqual((await reader.read()).value, new Uint8Array([5]));
    if (clean) assert.equal((await reader.read()).done, true);
    else {
      await assert.rejects(
        reader.read(),
        (e) => e instanceof Deno.errors.ConnectionReset && /closed with 10\d\d/.test(e.message),
      );
    }
    await s.ws.closed;
  }
});

Deno.test("WsConnection.reset() sends Close 1011 and closes the socket; close() sends 1001 before the end", async () => {
  const s = serverOver();
  s.ws.reset();
  await s.ws.closed;
  assert.equal(closeCodeWritten(s.written), CloseCode.InternalError);
  assert.ok(s.socketClosed);
  const c = serverOver();
  c.ws.close();
  await c.ws.closed;
  assert.equal(closeCodeWritten(c.written), CloseCode.GoingAway);
});

Deno.test("WsConnection answers only the latest Ping while a Pong is unsettled (ping flood)", async () => {
  const s = serverOver({ stall: true });
  const reader = s.ws.readable.getReader();
  const reading = reader.read();
  const pings: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) pings.push(clientFrame(Opcode.Ping, new Uint8Array([i])));
  s.feed(concat(pings));
  // A data frame after the Pings: once it is read, every Ping before it was handled.
  s.feed(clientFrame(Opcode.Binary, new Uint8Array([42])));
  assert.deepEqual((await reading).value, new Uint8Array([42]));
  // One Pong on the socket, at most one more waiting — not 200 queued.
  assert.ok(s.writer.desiredSize! >= 0, `queued writes: ${1 - s.writer.desiredSize!}`);
  s.release();
  // Once the first settles, the latest Ping (199) is answered, and nothing in between.
  for (let i = 0; i < 50 && s.written.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.written.length, 2);
  assert.deepEqual([...s.written[0].subarray(2)], [0]);
  assert.deepEqual([...s.written[1].subarray(2)], [199]);
  reader.releaseLock();
  s.ws.close();
  await s.ws.closed;
});

Deno.test("WsConnection.readable reads ahead a bounded amount and hands it on as one chunk", async () => {
  // A client over a read(buf) socket whose every read returns one 4 KiB frame (as over TLS from
  // v2ray's server: one record per read), 256 of them, then a Close 1000.
  const payload = (i: number) => new Uint8Array(4096).fill(i & 0xff);
  const wire: Uint8Array[] = [];
  for (let i = 0; i < 256; i++) wire.push(encodeFrame(Opcode.Binary, payload(i)));
  wire.push(encodeFrame(Opcode.Close, encodeCloseBody(CloseCode.Normal)));
  let next = 0;
  let partial: Uint8Array | undefined;
  let reads = 0;
  const ws = new WsConnection({
    reader: new ReadableStream<Uint8Array>().getReader(),
    writer: new WritableStream<Uint8Array>().getWriter(),
    close: () => {},
    read: (buf) => {
      reads++;
      const src = partial ?? wire[next++];
      if (src === undefined) return Promise.resolve(null);
      const n = Math.min(buf.byteLength, src.byteLength);
      buf.set(src.subarray(0, n));
      partial = n < src.byteLength ? src.subarray(n) : undefined;
      return Promise.resolve(n);
    },
  }, { role: "client" });
  const reader = ws.readable.getReader();
  const first = await reader.read();
  // With nobody reading, the reads stop after about 64 KiB of payload, not at the end.
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(reads < 30, `read ${reads} times with no reader waiting`);
  const second = await reader.read();
  assert.ok(second.value!.byteLength >= 8 * 4096, `a chunk of ${second.value!.byteLength} bytes`);
  const chunks = [first.value!, second.value!];
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    chunks.push(r.value);
  }
  assert.deepEqual(concat(chunks), concat(Array.from({ length: 256 }, (_, i) => payload(i))));
  await ws.closed;
});

Deno.test("WsConnection.readable lends its bulk chunks: given back, their memory serves later reads", async () => {
  // 512 frames of 4 KiB, one per read (as over TLS from v2ray's server), then a Close 1000.
  const payload = (i: number) => new Uint8Array(4096).fill(i & 0xff);
  const wire: Uint8Array[] = [];
  for (let i = 0; i < 512; i++) wire.push(encodeFrame(Opcode.Binary, payload(i)));
  wire.push(encodeFrame(Opcode.Close, encodeCloseBody(CloseCode.Normal)));
  let next = 0;
  let partial: Uint8Array | undefined;
  const memory = new Set<ArrayBufferLike>();
  const ws = new WsConnection({
    reader: new ReadableStream<Uint8Array>().getReader(),
    writer: new WritableStream<Uint8Array>().getWriter(),
    close: () => {},
    read: (buf) => {
      memory.add(buf.buffer);
      const src = partial ?? wire[next++];
      if (src === undefined) return Promise.resolve(null);
      const n = Math.min(buf.byteLength, src.byteLength);
      buf.set(src.subarray(0, n));
      partial = n < src.byteLength ? src.subarray(n) : undefined;
      return Promise.resolve(n);
    },
  }, { role: "client" });
  const reader = ws.readable.getReader();
  const copies: Uint8Array[] = [];
  // The first chunk is kept (never given back): later reads must not land in it.
  const kept = (await reader.read()).value!;
  const keptCopy = kept.slice();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    copies.push(r.value.slice());
    giveBack(r.value);
  }
  await ws.closed;
  assert.deepEqual(kept, keptCopy);
  assert.deepEqual(
    concat([keptCopy, ...copies]),
    concat(Array.from({ length: 512 }, (_, i) => payload(i))),
  );
  // 2 MiB went through a handful of buffers (the pool's), not fresh memory every 256 KiB.
  assert.ok(memory.size <= 4, `read into ${memory.size} buffers`);
});

Deno.test("WsConnection.readable hands on every byte once when reads cut frames anywhere and chunks come back late (poisoned pool)", async () => {
  const was = setBufferPoisoning(true);
  try {
    // xorshift32: frame sizes, read sizes and the consumer's pace, the same every run.
    let x = 0x2545f491;
    const rand = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const sent: Uint8Array[] = [];
    const wire: Uint8Array[] = [];
    for (let i = 0; i < 600; i++) {
      // Mostly small frames (v2ray's 2 KiB messages), some large, a few empty, Pings between.
      const size = rand(10) === 0 ? rand(40_000) : rand(10) === 0 ? 0 : rand(3000);
      const payload = new Uint8Array(size);
      for (let j = 0; j < size; j++) payload[j] = rand(256);
      sent.push(payload);
      wire.push(encodeFrame(Opcode.Binary, payload));
      if (rand(20) === 0) wire.push(encodeFrame(Opcode.Ping, Uint8Array.of(i & 0xff)));
    }
    wire.push(encodeFrame(Opcode.Close, encodeCloseBody(CloseCode.Normal)));
    const stream = concat(wire);
    let at = 0;
    const ws = new WsConnection({
      reader: new ReadableStream<Uint8Array>().getReader(),
      writer: new WritableStream<Uint8Array>().getWriter(),
      close: () => {},
      // Reads of any size: mostly bulk (as TLS records), sometimes a few bytes mid-header.
      read: (buf) => {
        if (at >= stream.byteLength) return Promise.resolve(null);
        const want = rand(4) === 0 ? 1 + rand(20) : 2048 + rand(16_384);
        const n = Math.min(buf.byteLength, want, stream.byteLength - at);
        buf.set(stream.subarray(at, at + n));
        at += n;
        return Promise.resolve(n);
      },
    }, { role: "client" });
    const reader = ws.readable.getReader();
    const got: Uint8Array[] = [];
    // As the relay holds them: a chunk is copied out only when its "write" settles, and given back
    // right after, while the next reads go on.
    const writes: Promise<void>[] = [];
    for (let reads = 0; reads < 100_000; reads++) {
      const r = await reader.read();
      if (r.done) break;
      const chunk = r.value;
      const delay = rand(3);
      writes.push(
        new Promise<void>((resolve) => setTimeout(resolve, delay)).then(() => {
          got[reads] = chunk.slice();
          giveBack(chunk);
        }),
      );
      if (writes.length >= 2) await writes.shift();
    }
    await Promise.all(writes);
    await ws.closed;
    const a = concat(got);
    const b = concat(sent);
    assert.equal(a.byteLength, b.byteLength);
    const first = a.findIndex((v, i) => v !== b[i]);
    assert.equal(first, -1, `the bytes differ from byte ${first} on`);
  } finally {
    setBufferPoisoning(was);
  }
});

Deno.test("WsConnection.readable gathers a bulk download for a reader that keeps up, and hands on its tail", async () => {
  // 4 KiB frames, one per read and every read at once (v2ray's server over TLS, with the client
  // never waiting for the network): 1 MiB, then the server goes quiet without closing.
  const frames = 256;
  const wire: Uint8Array[] = [];
  for (let i = 0; i < frames; i++) {
    wire.push(encodeFrame(Opcode.Binary, new Uint8Array(4096).fill(i)));
  }
  wire.push(encodeFrame(Opcode.Binary, new Uint8Array(100).fill(7)));
  let next = 0;
  let partial: Uint8Array | undefined;
  const quiet = Promise.withResolvers<number | null>();
  const ws = new WsConnection({
    reader: new ReadableStream<Uint8Array>().getReader(),
    writer: new WritableStream<Uint8Array>().getWriter(),
    close: () => quiet.resolve(null),
    read: (buf) => {
      const src = partial ?? wire[next++];
      if (src === undefined) return quiet.promise;
      const n = Math.min(buf.byteLength, src.byteLength);
      buf.set(src.subarray(0, n));
      partial = n < src.byteLength ? src.subarray(n) : undefined;
      return Promise.resolve(n);
    },
  }, { role: "client" });
  const reader = ws.readable.getReader();
  const sizes: number[] = [];
  let total = 0;
  const want = frames * 4096 + 100;
  while (total < want) {
    const r = await reader.read();
    assert.ok(!r.done);
    sizes.push(r.value.byteLength);
    total += r.value.byteLength;
    giveBack(r.value);
  }
  assert.equal(total, want, "every byte, the 100-byte tail too, though nothing followed it");
  // Once 256 KiB went by, chunks gather to 32 KiB, or what the rest of a 64 KiB read buffer holds
  // (before: one 4 KiB record each).
  let seen = 0;
  const later = sizes.filter((n) => (seen += n) > 512 * 1024 && seen < frames * 4096);
  assert.ok(later.length > 0);
  assert.ok(later.every((n) => n >= 16 * 1024), `chunk sizes ${later.join(" ")}`);
  ws.close();
  await ws.closed;
});
