import assert from "node:assert/strict";
import { relay } from "../../lib/net/relay.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { detectConnReset } from "../../lib/net/conn_reset.ts";
import { within } from "../support/client_app.ts";
import { readToEndOrError } from "../support/read_end.ts";

const TOTAL = 8 * 1024 * 1024;

/** Byte i of the stream is (i * 7 + (i >> 16)) & 0xff: every 64 KiB looks different. */
function pattern(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const p = offset + i;
    out[i] = (p * 7 + (p >> 16)) & 0xff;
  }
  return out;
}

function checkPattern(offset: number, chunk: Uint8Array): void {
  for (let i = 0; i < chunk.byteLength; i++) {
    const p = offset + i;
    if (chunk[i] !== ((p * 7 + (p >> 16)) & 0xff)) {
      throw new Error(`byte ${p} is ${chunk[i]}, expected ${(p * 7 + (p >> 16)) & 0xff}`);
    }
  }
}

/** A connected TCP pair: [the side we wrap, the peer]. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return [a, b];
}

async function send(conn: Deno.Conn, total: number): Promise<void> {
  const piece = 256 * 1024;
  for (let off = 0; off < total; off += piece) {
    const data = pattern(off, Math.min(piece, total - off));
    for (let w = 0; w < data.byteLength;) w += await conn.write(data.subarray(w));
  }
  conn.closeWrite();
}

Deno.test("ConnDuplex reads a bulk transfer into a few reused buffers when a relay writes its chunks on", async () => {
  const [inA, peerA] = await tcpPair();
  const [outB, peerB] = await tcpPair();
  const a = new ConnDuplex(inA);
  const b = new ConnDuplex(outB);
  try {
    const sending = send(peerA, TOTAL);
    const receiving = (async () => {
      const buf = new Uint8Array(64 * 1024);
      let got = 0;
      for (;;) {
        const n = await peerB.read(buf);
        if (n === null) break;
        checkPattern(got, buf.subarray(0, n));
        got += n;
      }
      await peerB.closeWrite();
      return got;
    })();
    const buffers = new Set<ArrayBufferLike>();
    let reads = 0;
    const inner = a.readable.getReader();
    // The relay's reader of `a`, noting which memory each chunk lives in.
    const reader = {
      read: async () => {
        const r = await inner.read();
        if (!r.done) {
          reads++;
          buffers.add(r.value.buffer);
        }
        return r;
      },
      cancel: (reason?: unknown) => inner.cancel(reason),
      releaseLock: () => inner.releaseLock(),
      closed: inner.closed,
    };
    const client = {
      reader,
      writer: a.writable.getWriter(),
      close: () => a.close(),
      copiesWrites: a.copiesWrites,
    };
    const r = await relay(client, b, {
      connIdle: 30_000,
      uplinkOnly: 30_000,
      downlinkOnly: 30_000,
    });
    await sending;
    assert.equal(await receiving, TOTAL);
    assert.equal(r.up, TOTAL);
    // Fresh memory per read (or a 256 KiB slab per few reads) would show dozens of buffers.
    assert.ok(reads > 32, `only ${reads} reads`);
    assert.ok(buffers.size <= 4, `${buffers.size} buffers for ${reads} reads`);
  } finally {
    a.close();
    b.close();
    peerA.close();
    peerB.close();
  }
});

Deno.test("ConnDuplex chunks that are kept and never written stay intact", async () => {
  const [inA, peerA] = await tcpPair();
  const a = new ConnDuplex(inA);
  try {
    const sending = send(peerA, TOTAL);
    const kept: Uint8Array[] = [];
    for await (const chunk of a.readable) kept.push(chunk);
    await sending;
    let off = 0;
    for (const c of kept) {
      checkPattern(off, c);
      off += c.byteLength;
    }
    assert.equal(off, TOTAL);
  } finally {
    a.close();
    peerA.close();
  }
});

Deno.test("ConnDuplex.read() reads into the caller's buffer and returns null at EOF and once closed", async () => {
  const [inA, peerA] = await tcpPair();
  const a = new ConnDuplex(inA);
  try {
    const sending = send(peerA, TOTAL).then(() => peerA.closeWrite());
    const buf = new Uint8Array(64 * 1024);
    let got = 0;
    for (let reads = 0; reads < TOTAL; reads++) {
      const n = await a.read(buf);
      if (n === null) break;
      checkPattern(got, buf.subarray(0, n));
      got += n;
    }
    await sending;
    assert.equal(got, TOTAL);
    a.close();
    assert.equal(await a.read(buf), null);
  } finally {
    a.close();
    peerA.close();
  }
});

Deno.test("ConnDuplex.reset() sends every byte written, then a RST, though close() follows at once", async () => {
  await detectConnReset();
  const [peer, accepted] = await tcpPair();
  const d = new ConnDuplex(accepted);
  try {
    const reading = readToEndOrError(peer);
    const reader = d.readable.getReader();
    const pendingRead = reader.read();
    const writer = d.writable.getWriter();
    await writer.write(pattern(0, 1024 * 1024));
    d.reset();
    // As the relay does right after: close() and the aborts must not turn the reset into a FIN.
    d.close();
    writer.abort().catch(() => {});
    assert.deepEqual(await within(reading, 30_000, "peer read"), {
      bytes: 1024 * 1024,
      end: "ConnectionReset",
    });
    // Our own pending read ends instead of hanging.
    assert.equal((await within(pendingRead, 30_000, "our read")).done, true);
    await reader.cancel();
  } finally {
    d.close();
    peer.close();
  }
});

Deno.test("ConnDuplex.reset() closes a connection it cannot reset (one Deno dialled): the peer reads EOF", async () => {
  await detectConnReset();
  const [dialled, peer] = await tcpPair();
  const d = new ConnDuplex(dialled);
  try {
    const writer = d.writable.getWriter();
    await writer.write(new Uint8Array(1000));
    d.reset();
    writer.abort().catch(() => {});
    assert.deepEqual(await within(readToEndOrError(peer), 30_000, "peer read"), {
      bytes: 1000,
      end: "EOF",
    });
  } finally {
    d.close();
    peer.close();
  }
});

Deno.test("ConnDuplex with `head` hands those bytes out first, through readable and through read()", async () => {
  const enc = new TextEncoder();
  for (const via of ["readable", "read"] as const) {
    const [inA, peerA] = await tcpPair();
    const a = new ConnDuplex(inA, { head: enc.encode("hello ") });
    try {
      await peerA.write(enc.encode("world"));
      await peerA.closeWrite();
      const chunks: Uint8Array[] = [];
      if (via === "readable") {
        for await (const c of a.readable) chunks.push(c.slice());
      } else {
        // A buffer smaller than the head: it comes out in two pieces.
        const buf = new Uint8Array(4);
        for (let i = 0; i < 100; i++) {
          const n = await a.read(buf);
          if (n === null) break;
          chunks.push(buf.slice(0, n));
        }
      }
      const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
      assert.equal(text, "hello world", via);
    } finally {
      a.close();
      peerA.close();
    }
  }
});
