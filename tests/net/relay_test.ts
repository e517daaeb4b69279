import assert from "node:assert/strict";
import { isNormalClose, relay, type RelayOptions } from "../../lib/net/relay.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import type { Duplex } from "../../lib/net/duplex.ts";

const LONG: RelayOptions = { connIdle: 10_000, uplinkOnly: 10_000, downlinkOnly: 10_000 };
const enc = new TextEncoder();
const dec = new TextDecoder();

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of readable) {
    parts.push(c);
    n += c.byteLength;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Reads until the stream ends or fails; resolves either way (for "the peer saw the close"). */
async function drain(readable: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  try {
    for await (const c of readable) n += c.byteLength;
  } catch {
    // A reset is also an ending.
  }
  return n;
}

/** Lets every pending microtask and zero-delay timer run: used to observe that nothing moves. */
async function quiesce(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
}

/** client app <-> [a | relay | b] <-> remote server: returns the two outer ends. */
function wire(opts: RelayOptions = LONG) {
  const [app, inboundSide] = duplexPair();
  const [outboundSide, server] = duplexPair();
  const done = relay(inboundSide, outboundSide, opts);
  return { app, server, done };
}

Deno.test("relay() copies both ways and passes half-close on", async () => {
  const { app, server, done } = wire();
  const w = app.writable.getWriter();
  await w.write(enc.encode("hello "));
  await w.write(enc.encode("remote"));
  await w.close();
  // The server sees the client's data followed by EOF, while it can still answer.
  assert.equal(dec.decode(await readAll(server.readable)), "hello remote");
  const sw = server.writable.getWriter();
  await sw.write(enc.encode("hi client"));
  await sw.close();
  assert.equal(dec.decode(await readAll(app.readable)), "hi client");
  const r = await done;
  assert.deepEqual(r, { up: 12, down: 9, ended: "eof" });
});

Deno.test("relay() takes a HeldDuplex: the reader and writer a handshake already holds", async () => {
  const [app, inboundSide] = duplexPair();
  const [outboundSide, server] = duplexPair();
  // A handshake read a greeting and answered it through these very ends.
  const reader = inboundSide.readable.getReader();
  const writer = inboundSide.writable.getWriter();
  const aw = app.writable.getWriter();
  await aw.write(enc.encode("hi"));
  assert.equal(dec.decode((await reader.read()).value), "hi");
  await writer.write(enc.encode("ok"));
  const ar = app.readable.getReader();
  assert.equal(dec.decode((await ar.read()).value), "ok");
  const done = relay({ reader, writer, close: () => inboundSide.close() }, outboundSide, LONG);
  await aw.write(enc.encode("payload"));
  await aw.close();
  assert.equal(dec.decode(await readAll(server.readable)), "payload");
  const sw = server.writable.getWriter();
  await sw.write(enc.encode("answer"));
  await sw.close();
  assert.equal(dec.decode((await ar.read()).value), "answer");
  assert.equal((await ar.read()).done, true);
  assert.deepEqual(await done, { up: 7, down: 6, ended: "eof" });
});

Deno.test("relay() stops reading the remote when the client stops reading", async () => {
  const [app, inboundSide] = duplexPair(16 * 1024);
  const [outboundSide, server] = duplexPair(16 * 1024);
  const chunk = new Uint8Array(16 * 1024);
  let produced = 0;
  const total = 100;
  // The remote produces on demand only: every pull is a chunk the relay asked for.
  const remote: Duplex = {
    readable: new ReadableStream<Uint8Array>({
      pull: (c) => {
        if (produced === total) return c.close();
        produced++;
        c.enqueue(chunk.slice());
      },
    }, { highWaterMark: 0 }),
    writable: outboundSide.writable,
    close: () => outboundSide.close(),
  };
  const done = relay(inboundSide, remote, LONG);
  await quiesce();
  // The app has read nothing: the pair's queue (16 KiB) plus the relay's two chunks in hand.
  assert.ok(produced <= 4, `relay pulled ${produced} chunks while the client read none`);
  const got = await drain(app.readable);
  assert.equal(got, total * chunk.byteLength);
  await app.writable.close();
  await server.writable.close();
  assert.equal(await drain(server.readable), 0);
  const r = await done;
  assert.equal(r.down, total * chunk.byteLength);
  assert.equal(r.ended, "eof");
});

Deno.test("relay() ends after connIdle with no traffic either way", async () => {
  const { app, server, done } = wire({ ...LONG, connIdle: 50 });
  const t0 = Date.now();
  const r = await done;
  assert.equal(r.ended, "idle");
  assert.ok(Date.now() - t0 >= 45);
  assert.equal(r.error, undefined);
  // Both outer ends observe the close.
  await drain(app.readable);
  await drain(server.readable);
});

Deno.test("relay() keeps a connection with steady traffic past connIdle", async () => {
  const { app, server, done } = wire({ ...LONG, connIdle: 80 });
  const w = app.writable.getWriter();
  const reader = server.readable.getReader();
  const t0 = Date.now();
  // 8 round trips 25 ms apart: 200 ms of life, never 80 ms idle.
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 25));
    await w.write(enc.encode("x"));
    const { value } = await reader.read();
    assert.equal(value?.byteLength, 1);
  }
  assert.ok(Date.now() - t0 >= 190);
  await w.close();
  assert.equal((await reader.read()).done, true);
  await server.writable.close();
  await drain(app.readable);
  const r = await done;
  assert.equal(r.ended, "eof");
  assert.equal(r.up, 8);
});

Deno.test("relay() gives the downlink downlinkOnly after the uplink ends", async () => {
  const { app, server, done } = wire({ connIdle: 10_000, uplinkOnly: 10_000, downlinkOnly: 40 });
  await app.writable.close();
  assert.equal(await drain(server.readable), 0);
  const t0 = Date.now();
  const r = await done;
  assert.equal(r.ended, "half-closed");
  assert.ok(Date.now() - t0 < 5_000);
  await drain(app.readable);
});

Deno.test("relay() gives the uplink uplinkOnly after the downlink ends", async () => {
  const { app, server, done } = wire({ connIdle: 10_000, uplinkOnly: 40, downlinkOnly: 10_000 });
  await server.writable.close();
  assert.equal(await drain(app.readable), 0);
  const r = await done;
  assert.equal(r.ended, "half-closed");
  await drain(server.readable);
});

Deno.test("relay() with uplinkOnly 0 ends as soon as the downlink ends", async () => {
  const { app, server, done } = wire({ connIdle: 10_000, uplinkOnly: 0, downlinkOnly: 10_000 });
  const sw = server.writable.getWriter();
  await sw.write(enc.encode("bye"));
  await sw.close();
  assert.equal(dec.decode(await readAll(app.readable)), "bye");
  const r = await done;
  assert.equal(r.ended, "eof");
  assert.equal(r.down, 3);
  await drain(server.readable);
});

Deno.test("relay() delivers the whole response when the remote stops taking the upload after completing it (RST_STREAM NO_ERROR after END_STREAM)", async () => {
  const [app, inboundSide] = duplexPair();
  let pushed = 0;
  const body = new Uint8Array(256 * 1024).fill(7);
  const stopUpload = Promise.withResolvers<void>();
  const remote: Duplex = {
    // The response: complete, read out in 16 KiB chunks while the client is slow.
    readable: new ReadableStream({
      pull: (c) => {
        if (pushed >= body.byteLength) return c.close();
        c.enqueue(body.slice(pushed, pushed + 16 * 1024));
        pushed += 16 * 1024;
        // The peer's RST NO_ERROR arrives while most of the response is still buffered here.
        if (pushed === 32 * 1024) stopUpload.resolve();
      },
    }, { highWaterMark: 0 }),
    writable: new WritableStream({
      write: () =>
        stopUpload.promise.then(() =>
          Promise.reject(new TypeError("peer reset stream 1 (NO_ERROR)"))
        ),
    }),
    close: () => {},
  };
  const w = app.writable.getWriter();
  w.write(enc.encode("request")).catch(() => {});
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    for await (const c of app.readable) {
      parts.push(c);
      await new Promise((r) => setTimeout(r, 1));
    }
    return parts.reduce((n, p) => n + p.byteLength, 0);
  })();
  const r = await relay(inboundSide, remote, LONG);
  assert.equal(await reading, body.byteLength);
  assert.equal(r.down, body.byteLength);
  assert.notEqual(r.ended, "cut");
  await w.close().catch(() => {});
});

Deno.test("relay() keeps downlinkOnly off a response still read out after the remote stopped taking the upload", async () => {
  const [app, inboundSide] = duplexPair();
  const body = new Uint8Array(256 * 1024).fill(9);
  let pushed = 0;
  const stopUpload = Promise.withResolvers<void>();
  const remote: Duplex = {
    readable: new ReadableStream({
      pull: (c) => {
        if (pushed >= body.byteLength) return c.close();
        c.enqueue(body.slice(pushed, pushed + 16 * 1024));
        pushed += 16 * 1024;
        if (pushed === 32 * 1024) stopUpload.resolve();
      },
    }, { highWaterMark: 0 }),
    // RST_STREAM NO_ERROR: the stream's writable fails without a write of ours.
    writable: new WritableStream({
      start: (c) => void stopUpload.promise.then(() => c.error(new TypeError("NO_ERROR"))),
    }),
    close: () => {},
  };
  const w = app.writable.getWriter();
  w.write(enc.encode("request")).catch(() => {});
  const reading = (async () => {
    let n = 0;
    for await (const c of app.readable) {
      // A client that stalls far longer than downlinkOnly once the upload has been refused.
      if (n === 64 * 1024) await new Promise((r) => setTimeout(r, 300));
      n += c.byteLength;
    }
    return n;
  })();
  const r = await relay(inboundSide, remote, {
    connIdle: 10_000,
    uplinkOnly: 40,
    downlinkOnly: 40,
  });
  assert.equal(await reading, body.byteLength);
  assert.equal(r.down, body.byteLength);
  assert.equal(r.ended, "eof");
  await w.close().catch(() => {});
});

Deno.test("relay() passes a remote reset on as a cut, not a normal ending", async () => {
  const { app, server, done } = wire();
  const w = app.writable.getWriter();
  await w.write(enc.encode("abc"));
  const reader = server.readable.getReader();
  assert.equal((await reader.read()).value?.byteLength, 3);
  reader.releaseLock();
  server.close();
  const r = await done;
  assert.equal(r.ended, "cut");
  assert.equal(r.cutBy, "remote");
  assert.equal(r.up, 3);
  await w.closed.catch(() => {});
  await drain(app.readable);
});

Deno.test("relay() hands on every byte read, then resets the client, when the remote's read fails (ended 'cut', never a half-close)", async () => {
  const [app, inboundSide] = duplexPair();
  const [outboundSide, server] = duplexPair();
  const events: string[] = [];
  const client: Duplex = {
    readable: inboundSide.readable,
    writable: inboundSide.writable,
    close: () => {
      events.push("close");
      inboundSide.close();
    },
    reset: () => {
      events.push("reset");
      inboundSide.close();
    },
  };
  let pulls = 0;
  const remote: Duplex = {
    readable: new ReadableStream({
      pull: (c) => {
        if (pulls++ < 3) c.enqueue(enc.encode("part"));
        else c.error(new TypeError("bad frame"));
      },
    }, { highWaterMark: 0 }),
    writable: outboundSide.writable,
    close: () => outboundSide.close(),
  };
  const [r, got] = await Promise.all([
    relay(client, remote, LONG),
    readAll(app.readable).catch(
      (err) => err,
    ),
  ]);
  assert.equal(r.ended, "cut");
  assert.equal(r.cutBy, "remote");
  assert.ok(r.error instanceof TypeError);
  assert.equal(r.error.message, "bad frame");
  assert.equal(r.down, 12);
  // The client got all 12 bytes before its side was reset (not closed first).
  assert.equal(events[0], "reset");
  if (got instanceof Uint8Array) assert.equal(dec.decode(got), "partpartpart");
  await drain(server.readable);
});

Deno.test("relay() resets the remote when the client's read fails (ended 'cut' by the client)", async () => {
  const [outboundSide, server] = duplexPair();
  const [app, inboundSide] = duplexPair();
  const events: string[] = [];
  const client: Duplex = {
    readable: new ReadableStream({
      pull: (c) => c.error(new Deno.errors.ConnectionReset("Connection reset by peer")),
    }),
    writable: inboundSide.writable,
    close: () => inboundSide.close(),
  };
  const remote: Duplex = {
    readable: outboundSide.readable,
    writable: outboundSide.writable,
    close: () => {
      events.push("close");
      outboundSide.close();
    },
    reset: () => {
      events.push("reset");
      outboundSide.close();
    },
  };
  const r = await relay(client, remote, LONG);
  assert.equal(r.ended, "cut");
  assert.equal(r.cutBy, "client");
  assert.equal(events[0], "reset");
  await drain(app.readable);
  await drain(server.readable);
});

Deno.test("relay() ends with 'aborted' when the signal aborts", async () => {
  const ac = new AbortController();
  const { app, server, done } = wire({ ...LONG, signal: ac.signal });
  ac.abort();
  const r = await done;
  assert.equal(r.ended, "aborted");
  await drain(app.readable);
  await drain(server.readable);
});

Deno.test("relay() returns at once for an already aborted signal", async () => {
  const ac = new AbortController();
  ac.abort();
  const { app, server, done } = wire({ ...LONG, signal: ac.signal });
  assert.equal((await done).ended, "aborted");
  await drain(app.readable);
  await drain(server.readable);
});

Deno.test("relay() over real sockets: half-close reaches the server, its reply comes back", async () => {
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const payload = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
  // The target echoes everything it read, once it has seen EOF: only works with a real half-close.
  const targetDone = (async () => {
    const c = new ConnDuplex(await target.accept());
    const got = await readAll(c.readable);
    const w = c.writable.getWriter();
    await w.write(got);
    await w.close();
    c.close();
  })();
  const proxyDone = (async () => {
    const inbound = new ConnDuplex(await front.accept());
    const outbound = new ConnDuplex(
      await Deno.connect({ hostname: "127.0.0.1", port: (target.addr as Deno.NetAddr).port }),
    );
    return relay(inbound, outbound, LONG);
  })();
  const client = new ConnDuplex(
    await Deno.connect({ hostname: "127.0.0.1", port: (front.addr as Deno.NetAddr).port }),
  );
  const reading = readAll(client.readable);
  const w = client.writable.getWriter();
  await w.write(payload);
  await w.close();
  const echoed = await reading;
  client.close();
  assert.deepEqual(echoed, payload);
  const r = await proxyDone;
  await targetDone;
  target.close();
  front.close();
  assert.deepEqual({ up: r.up, down: r.down, ended: r.ended }, {
    up: payload.byteLength,
    down: payload.byteLength,
    ended: "eof",
  });
});

Deno.test("isNormalClose() accepts resets and rejects other errors", () => {
  assert.equal(isNormalClose(new Deno.errors.ConnectionReset("x")), true);
  assert.equal(isNormalClose(new Deno.errors.BrokenPipe("x")), true);
  assert.equal(isNormalClose(new DOMException("x", "AbortError")), true);
  assert.equal(isNormalClose(new TypeError("x")), false);
  assert.equal(isNormalClose(new Error("x")), false);
});

Deno.test("relay() ends a client that still sends after its whole response without a RST that would destroy the response's tail", async () => {
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const size = 16 * 1024 * 1024;
  let pushed = 0;
  const remote: Duplex = {
    readable: new ReadableStream({
      pull: (c) => {
        if (pushed >= size) return c.close();
        c.enqueue(new Uint8Array(64 * 1024).fill((pushed >> 16) & 0xff));
        pushed += 64 * 1024;
      },
    }, { highWaterMark: 0 }),
    // The remote stops taking the upload (an h2 server's RST_STREAM NO_ERROR after its response).
    writable: new WritableStream({
      write: () => Promise.reject(new TypeError("peer reset stream 1 (NO_ERROR)")),
    }),
    close: () => {},
  };
  const proxy = (async () => {
    const inbound = new ConnDuplex(await front.accept());
    return relay(inbound, remote, LONG);
  })();
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: (front.addr as Deno.NetAddr).port,
  });
  // The client goes on sending (a next request, say) that nobody reads any more, and reads slowly:
  // much of the response is still in the proxy's send queue when the relay is done.
  const sending = (async () => {
    const b = new Uint8Array(64 * 1024);
    try {
      for (let i = 0; i < 64; i++) await conn.write(b);
    } catch {
      // Closed below.
    }
  })();
  let got = 0;
  let failure: unknown;
  const buf = new Uint8Array(64 * 1024);
  try {
    for (let reads = 0; reads < 100_000; reads++) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += n;
      if (reads % 4 === 0) await new Promise((r) => setTimeout(r, 1));
    }
  } catch (err) {
    failure = err;
  }
  conn.close();
  const r = await proxy;
  await sending;
  front.close();
  assert.equal(failure, undefined);
  assert.equal(got, size);
  assert.deepEqual({ down: r.down, ended: r.ended }, { down: size, ended: "eof" });
});
