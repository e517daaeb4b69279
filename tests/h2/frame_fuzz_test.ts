/**
 * Random and truncated input into the frame parsers and into a live connection: only
 * `ConnectionError`/`StreamError` may come out, nothing hangs, memory stays bounded.
 * Seeded, bounded in iterations; a failure prints the seed and iteration to replay it.
 */
import assert from "node:assert/strict";
import { ConnectionError, StreamError } from "../../lib/h2/errors.ts";
import {
  FRAME_HEADER_SIZE,
  type FrameHeader,
  FrameType,
  parseContinuation,
  parseData,
  parseFrameHeader,
  parseGoAway,
  parseHeaders,
  parsePing,
  parsePriority,
  parsePushPromise,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
} from "../../lib/h2/frame.ts";
import { H2Connection } from "../../lib/h2/connection.ts";
import { H2Peer } from "../support/h2_peer.ts";

/** mulberry32: a small seeded PRNG so failures replay exactly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PARSERS: Record<number, (h: FrameHeader, p: Uint8Array) => unknown> = {
  [FrameType.DATA]: parseData,
  [FrameType.HEADERS]: parseHeaders,
  [FrameType.PRIORITY]: parsePriority,
  [FrameType.RST_STREAM]: parseRstStream,
  [FrameType.SETTINGS]: parseSettings,
  [FrameType.PUSH_PROMISE]: parsePushPromise,
  [FrameType.PING]: parsePing,
  [FrameType.GOAWAY]: parseGoAway,
  [FrameType.WINDOW_UPDATE]: parseWindowUpdate,
  [FrameType.CONTINUATION]: parseContinuation,
};

function randomBytes(rand: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}

Deno.test("frame parsers throw only ConnectionError/StreamError on random and truncated frames", () => {
  const seed = 0xd1a7;
  const rand = prng(seed);
  let errors = 0;
  for (let i = 0; i < 50_000; i++) {
    const type = (rand() * 11) | 0;
    const parse = PARSERS[type];
    if (!parse) continue;
    // Mostly small payloads near the interesting sizes (0, 4, 5, 6, 8), sometimes larger.
    const len = rand() < 0.8 ? (rand() * 12) | 0 : (rand() * 300) | 0;
    const payload = randomBytes(rand, len);
    const truncate = rand() < 0.3 ? (rand() * (len + 1)) | 0 : len;
    const body = payload.subarray(0, truncate);
    const header: FrameHeader = {
      type,
      flags: (rand() * 256) | 0,
      streamId: rand() < 0.3 ? 0 : (rand() * 10) | 0,
      length: body.byteLength,
    };
    try {
      parse(header, body);
    } catch (err) {
      errors++;
      assert.ok(
        err instanceof ConnectionError || err instanceof StreamError,
        `seed ${seed} iteration ${i}: type ${type} threw ${err}`,
      );
    }
  }
  assert.ok(errors > 1000, "the fuzzer reached the error paths");
});

Deno.test("parseFrameHeader() reads any 9 bytes and refuses fewer with RangeError only", () => {
  const rand = prng(42);
  for (let i = 0; i < 10_000; i++) {
    const b = randomBytes(rand, FRAME_HEADER_SIZE);
    const h = parseFrameHeader(b);
    assert.ok(h.length >= 0 && h.length < 2 ** 24);
    assert.ok(h.streamId >= 0 && h.streamId < 2 ** 31);
    assert.throws(() => parseFrameHeader(b.subarray(0, (rand() * 9) | 0)), RangeError);
  }
});

Deno.test("H2Connection survives random frames and bytes: it ends with a ConnectionError or stays up, never hangs", async () => {
  const seed = 0x5eed;
  const rand = prng(seed);
  let protocolFailures = 0;
  for (let round = 0; round < 150; round++) {
    const { client, peer } = H2Peer.pair();
    const [conn] = await Promise.all([
      H2Connection.connect(client, { readIdleTimeout: 0, pingTimeout: 2000 }),
      peer.handshake(),
    ]);
    const stream = conn.request({
      method: "GET",
      scheme: "https",
      authority: "fuzz",
      path: "/",
      endStream: rand() < 0.5,
    });
    try {
      for (let k = 0; k < 20; k++) {
        if (rand() < 0.15) {
          // Raw garbage, possibly ending mid-frame.
          await peer.write(randomBytes(rand, (rand() * 64) | 0));
        } else {
          const type = (rand() * 12) | 0;
          const len = (rand() * 24) | 0;
          await peer.send(
            type,
            (rand() * 256) | 0,
            rand() < 0.3 ? 0 : (rand() * 6) | 0,
            randomBytes(rand, len),
          );
        }
      }
    } catch {
      // The client closed the connection: writes fail, which is fine.
    }
    conn.close();
    const err = await conn.closed;
    assert.ok(
      err instanceof ConnectionError && !/internal error/.test(err.message),
      `seed ${seed} round ${round}: closed with ${err}`,
    );
    if ((err as ConnectionError).initiator === "local" && (err as ConnectionError).code !== 0) {
      protocolFailures++;
    }
    const streamErr = await stream.response.then(() => undefined, (e) => e);
    assert.ok(
      streamErr === undefined || streamErr instanceof ConnectionError ||
        streamErr instanceof StreamError,
      `seed ${seed} round ${round}: stream failed with ${streamErr}`,
    );
    peer.close();
  }
  assert.ok(protocolFailures > 50, `only ${protocolFailures} rounds hit a connection error`);
});
