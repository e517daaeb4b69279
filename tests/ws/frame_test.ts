import assert from "node:assert/strict";
import {
  applyMask,
  CloseCode,
  closeCodeFor,
  encodeCloseBody,
  encodeFrame,
  Opcode,
  parseCloseBody,
  parseFrameHeader,
} from "../../lib/ws/frame.ts";

const hello = new TextEncoder().encode("Hello");
const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

Deno.test("encodeFrame() matches the RFC 6455 §5.7 examples", () => {
  // A single-frame unmasked text message.
  assert.deepEqual([...encodeFrame(Opcode.Text, hello)], [
    0x81,
    0x05,
    0x48,
    0x65,
    0x6c,
    0x6c,
    0x6f,
  ]);
  // A single-frame masked text message.
  assert.deepEqual(
    [...encodeFrame(Opcode.Text, hello, { mask: MASK })],
    [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
  );
  // A fragmented unmasked text message.
  assert.deepEqual([...encodeFrame(Opcode.Text, hello.subarray(0, 3), { fin: false })], [
    0x01,
    0x03,
    0x48,
    0x65,
    0x6c,
  ]);
  assert.deepEqual([...encodeFrame(Opcode.Continuation, hello.subarray(3))], [
    0x80,
    0x02,
    0x6c,
    0x6f,
  ]);
  // Unmasked Ping and masked Pong.
  assert.deepEqual([...encodeFrame(Opcode.Ping, hello)].slice(0, 2), [0x89, 0x05]);
  assert.deepEqual(
    [...encodeFrame(Opcode.Pong, hello, { mask: MASK })],
    [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
  );
  // 256 bytes binary: 16-bit length; 64 KiB binary: 64-bit length.
  assert.deepEqual([...encodeFrame(Opcode.Binary, new Uint8Array(256)).subarray(0, 4)], [
    0x82,
    0x7e,
    0x01,
    0x00,
  ]);
  assert.deepEqual([...encodeFrame(Opcode.Binary, new Uint8Array(65536)).subarray(0, 10)], [
    0x82,
    0x7f,
    0,
    0,
    0,
    0,
    0,
    0x01,
    0x00,
    0x00,
  ]);
});

Deno.test("parseFrameHeader() reads every length form and the mask, null until complete", () => {
  for (const size of [0, 125, 126, 65535, 65536, 100_000]) {
    for (const mask of [undefined, MASK]) {
      const f = encodeFrame(Opcode.Binary, new Uint8Array(size), { mask });
      const headerLength = f.byteLength - size;
      for (let cut = 0; cut < headerLength; cut++) {
        assert.deepEqual(parseFrameHeader(f.subarray(0, cut), 0, 1 << 20), null, `cut ${cut}`);
      }
      const h = parseFrameHeader(f, 0, 1 << 20)!;
      assert.deepEqual(h.payloadLength, size);
      assert.deepEqual(h.headerLength, headerLength);
      assert.deepEqual(h.fin, true);
      assert.deepEqual(h.opcode, Opcode.Binary);
      assert.deepEqual(h.mask, mask && 0x37fa213d);
    }
  }
});

Deno.test("parseFrameHeader() throws SyntaxError for reserved bits, bad opcodes, bad control frames", () => {
  const cases: Array<[number[], RegExp]> = [
    [[0xc2, 0x00], /reserved bits/],
    [[0x83, 0x00], /unknown opcode 0x03/],
    [[0x8b, 0x00], /unknown opcode 0x0b/],
    [[0x89, 0x7e, 0x00, 0x7e], /control frame 0x09 has 126 bytes/],
    [[0x08, 0x00], /control frame 0x08 is fragmented/],
    [[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1], /most significant bit/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => parseFrameHeader(new Uint8Array(bytes), 0, 1 << 20), SyntaxError);
    try {
      parseFrameHeader(new Uint8Array(bytes), 0, 1 << 20);
    } catch (err) {
      if (!re.test((err as Error).message)) throw new Error(`${(err as Error).message} !~ ${re}`);
    }
  }
});

Deno.test("parseFrameHeader() throws RangeError (close 1009) for a data frame over the limit", () => {
  const f = encodeFrame(Opcode.Binary, new Uint8Array(2000));
  assert.throws(() => parseFrameHeader(f, 0, 1999), RangeError);
  assert.deepEqual(closeCodeFor(new RangeError("x")), CloseCode.TooBig);
  assert.deepEqual(closeCodeFor(new SyntaxError("x")), CloseCode.ProtocolError);
});

Deno.test("applyMask() XORs every byte with the key at any alignment, length and phase", () => {
  const data = crypto.getRandomValues(new Uint8Array(1031));
  for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 1031]) {
    for (let offset = 0; offset < 8; offset++) {
      for (const phase of [0, 1, 2, 3]) {
        const buf = new Uint8Array(1040).fill(0xee);
        const view = buf.subarray(offset, offset + length);
        view.set(data.subarray(0, length));
        applyMask(view, MASK, phase);
        const want = data.subarray(0, length).map((b, i) => b ^ MASK[(phase + i) & 3]);
        assert.deepEqual(view, want, `length ${length}, offset ${offset}, phase ${phase}`);
        // Nothing around the view is touched.
        assert.ok(buf.subarray(0, offset).every((b) => b === 0xee));
        assert.ok(buf.subarray(offset + length).every((b) => b === 0xee));
        applyMask(view, MASK, phase);
        assert.deepEqual(view, data.subarray(0, length));
      }
    }
  }
});

Deno.test("parseCloseBody() reads code and reason, and refuses 1-byte bodies and reserved codes", () => {
  assert.deepEqual(parseCloseBody(encodeCloseBody(1000, "bye")), { code: 1000, reason: "bye" });
  assert.deepEqual(parseCloseBody(new Uint8Array(0)), { code: CloseCode.NoStatus, reason: "" });
  assert.throws(() => parseCloseBody(new Uint8Array([0x03])), SyntaxError);
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) {
    assert.throws(() => parseCloseBody(encodeCloseBody(code)), SyntaxError, `code ${code}`);
  }
  assert.throws(() => parseCloseBody(new Uint8Array([0x03, 0xe8, 0xff])), SyntaxError);
  // A long reason is cut so the body fits a control frame (125 bytes).
  assert.deepEqual(encodeCloseBody(1000, "x".repeat(500)).byteLength <= 125, true);
});
