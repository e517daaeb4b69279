import assert from "node:assert/strict";
import { encodeCloseBody, encodeFrame, Opcode } from "../../lib/ws/frame.ts";
import { FrameParser } from "../../lib/ws/frame_parser.ts";
import { concat } from "../support/fake_outbound.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const text = (s: string) => new TextEncoder().encode(s);

/** Runs `wire` through a parser in the given pieces; returns what the sink heard, as strings. */
function parseIn(
  pieces: Uint8Array[],
  role: "client" | "server",
  limits: { maxFrameBytes?: number; maxMessageBytes?: number } = {},
): { events: string[]; data: Uint8Array } {
  const p = new FrameParser({ role, ...limits });
  const events: string[] = [];
  const data: Uint8Array[] = [];
  const sink = {
    onData: (b: Uint8Array) => data.push(b.slice()),
    onPing: (b: Uint8Array) => events.push(`ping:${new TextDecoder().decode(b)}`),
    onPong: (b: Uint8Array) => events.push(`pong:${new TextDecoder().decode(b)}`),
    onClose: (c: { code: number; reason: string }) => events.push(`close:${c.code}:${c.reason}`),
  };
  for (const piece of pieces) p.push(piece.slice(), sink);
  return { events, data: concat(data) };
}

/** A server's stream: a fragmented message with a ping inside, a pong, a one-frame message, Close. */
function serverStream(mask?: Uint8Array): Uint8Array {
  const m = mask ? { mask } : {};
  return concat([
    encodeFrame(Opcode.Binary, text("Hel"), { fin: false, ...m }),
    encodeFrame(Opcode.Ping, text("p1"), m),
    encodeFrame(Opcode.Continuation, text("lo, "), { fin: false, ...m }),
    encodeFrame(Opcode.Continuation, new Uint8Array(0), { fin: false, ...m }),
    encodeFrame(Opcode.Continuation, text("world"), m),
    encodeFrame(Opcode.Pong, text(""), m),
    encodeFrame(Opcode.Text, new Uint8Array(300).fill(0x61), m),
    encodeFrame(Opcode.Binary, new Uint8Array(70_000).fill(0x62), m),
    encodeFrame(Opcode.Close, encodeCloseBody(1000, "done"), m),
    // Anything after Close is ignored.
    encodeFrame(Opcode.Binary, text("late"), m),
  ]);
}

const want = concat([
  text("Hello, world"),
  new Uint8Array(300).fill(0x61),
  new Uint8Array(70_000).fill(0x62),
]);

Deno.test("FrameParser.push() gives the same bytes and events at every split point", () => {
  for (const [role, mask] of [["client", undefined], ["server", MASK]] as const) {
    const wire = serverStream(mask);
    const whole = parseIn([wire], role);
    assert.deepEqual(whole.events, ["ping:p1", "pong:", "close:1000:done"]);
    assert.deepEqual(whole.data, want);
    // Every single split point, then every split into 3 around the small frames at the start.
    for (let cut = 0; cut <= wire.byteLength; cut += cut < 400 ? 1 : 997) {
      const r = parseIn([wire.subarray(0, cut), wire.subarray(cut)], role);
      assert.deepEqual(r.events, whole.events, `${role} cut ${cut}`);
      assert.deepEqual(r.data, want, `${role} cut ${cut}`);
    }
    for (let a = 0; a < 60; a++) {
      for (let b = a; b < 80; b++) {
        const r = parseIn([wire.subarray(0, a), wire.subarray(a, b), wire.subarray(b)], role);
        assert.deepEqual(r.events, whole.events);
        assert.equal(r.data.byteLength, want.byteLength);
      }
    }
    // One byte at a time.
    const bytes = [...wire.subarray(0, 400)].map((x) => new Uint8Array([x]));
    const r = parseIn([...bytes, wire.subarray(400)], role);
    assert.deepEqual(r.data, want);
  }
});

function assertFails(
  wire: Uint8Array,
  role: "client" | "server",
  cls: typeof SyntaxError | typeof RangeError,
  re: RegExp,
  limits = {},
) {
  for (let cut = 0; cut <= Math.min(wire.byteLength, 30); cut++) {
    let caught: unknown;
    try {
      parseIn([wire.subarray(0, cut), wire.subarray(cut)], role, limits);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof cls, `cut ${cut}: ${caught}`);
    assert.match((caught as Error).message, re);
  }
}

Deno.test("FrameParser.push() refuses unmasked client frames at a server and masked server frames at a client", () => {
  assertFails(encodeFrame(Opcode.Binary, text("x")), "server", SyntaxError, /not masked/);
  assertFails(
    encodeFrame(Opcode.Binary, text("x"), { mask: MASK }),
    "client",
    SyntaxError,
    /is masked/,
  );
});

Deno.test("FrameParser.push() takes an all-zero masking key as a mask at a server", () => {
  // The key is random: 0 is as valid as any other, and must not read as "no mask".
  const { data } = parseIn(
    [encodeFrame(Opcode.Binary, text("zero key"), { mask: new Uint8Array(4) })],
    "server",
  );
  assert.deepEqual(data, text("zero key"));
  assertFails(
    encodeFrame(Opcode.Binary, text("x"), { mask: new Uint8Array(4) }),
    "client",
    SyntaxError,
    /is masked/,
  );
});

Deno.test("FrameParser.push() enforces the fragmentation rules of §5.4", () => {
  assertFails(
    encodeFrame(Opcode.Continuation, text("x")),
    "client",
    SyntaxError,
    /without a message/,
  );
  assertFails(
    concat([
      encodeFrame(Opcode.Binary, text("a"), { fin: false }),
      encodeFrame(Opcode.Binary, text("b")),
    ]),
    "client",
    SyntaxError,
    /inside a fragmented message/,
  );
});

Deno.test("FrameParser.push() throws RangeError past the frame and message limits", () => {
  assertFails(
    encodeFrame(Opcode.Binary, new Uint8Array(101)),
    "client",
    RangeError,
    /exceeds 100/,
    {
      maxFrameBytes: 100,
    },
  );
  const parts = concat([
    encodeFrame(Opcode.Binary, new Uint8Array(60), { fin: false }),
    encodeFrame(Opcode.Continuation, new Uint8Array(60)),
  ]);
  let caught: unknown;
  try {
    parseIn([parts], "client", { maxMessageBytes: 100 });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RangeError);
  assert.match((caught as Error).message, /message exceeds 100 bytes \(near byte 62\)/);
});

Deno.test("FrameParser.push() refuses truncated and invalid Close bodies and bad opcodes", () => {
  assertFails(encodeFrame(Opcode.Close, new Uint8Array([3])), "client", SyntaxError, /1 byte/);
  assertFails(encodeFrame(Opcode.Close, encodeCloseBody(1005)), "client", SyntaxError, /1005/);
  assertFails(new Uint8Array([0x83, 0x00]), "client", SyntaxError, /unknown opcode/);
  // An empty Close body is 1005 for the listener (no status), and valid.
  assert.deepEqual(parseIn([encodeFrame(Opcode.Close, new Uint8Array(0))], "client").events, [
    "close:1005:",
  ]);
});

Deno.test("FrameParser.push() survives random bytes: only SyntaxError or RangeError, never a crash", () => {
  // Seeded so a failure can be replayed.
  let seed = 0x2545f491;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  const valid = serverStream();
  for (let i = 0; i < 3000; i++) {
    // Mutate a valid stream, or make noise.
    const wire = i % 2 === 0 ? valid.slice(0, 1 + Math.floor(rand() * 400)) : new Uint8Array(64);
    for (let j = 0; j < 1 + Math.floor(rand() * 6); j++) {
      wire[Math.floor(rand() * wire.byteLength)] = Math.floor(rand() * 256);
    }
    const cut = Math.floor(rand() * wire.byteLength);
    try {
      parseIn([wire.subarray(0, cut), wire.subarray(cut)], rand() < 0.5 ? "client" : "server", {
        maxFrameBytes: 1 << 16,
      });
    } catch (err) {
      assert.ok(err instanceof SyntaxError || err instanceof RangeError, `${err}`);
    }
  }
});
