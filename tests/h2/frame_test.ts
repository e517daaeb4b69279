import assert from "node:assert/strict";
import { ConnectionError, ErrorCode, StreamError } from "../../lib/h2/errors.ts";
import {
  CONNECTION_PREFACE,
  encodeContinuation,
  encodeData,
  encodeDataHeader,
  encodeGoAway,
  encodeHeaderBlock,
  encodeHeaders,
  encodePing,
  encodePriority,
  encodeRstStream,
  encodeSettings,
  encodeSettingsAck,
  encodeWindowUpdate,
  Flag,
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
  SettingId,
} from "../../lib/h2/frame.ts";

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
const h = (type: number, flags: number, streamId: number, length: number): FrameHeader => ({
  type,
  flags,
  streamId,
  length,
});

function assertEquals(actual: unknown, expected: unknown): void {
  assert.deepStrictEqual(actual, expected);
}

// deno-lint-ignore no-explicit-any
function assertThrows(fn: () => unknown, cls: new (...args: any[]) => Error): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    return err;
  }
  assert.fail(`expected ${cls.name} to be thrown`);
}

function assertCode(
  fn: () => unknown,
  scope: typeof ConnectionError | typeof StreamError,
  code: number,
) {
  const err = assertThrows(fn, scope);
  assertEquals((err as ConnectionError).code, code);
}

Deno.test("CONNECTION_PREFACE is the RFC 9113 §3.4 octets", () => {
  assertEquals(CONNECTION_PREFACE, hex("505249202a20485454502f322e300d0a0d0a534d0d0a0d0a"));
});

Deno.test("parseFrameHeader() reads length, type, flags and ignores the reserved bit", () => {
  const header = parseFrameHeader(hex("00 40 01  00  01  80 00 00 05"));
  assertEquals(header, { length: 0x4001, type: 0, flags: 1, streamId: 5 });
  assertEquals(parseFrameHeader(hex("ff ff ff 09 04 7f ff ff ff"), 0).length, 0xffffff);
  assertEquals(parseFrameHeader(hex("aa 00 00 00 08 00 00 00 00 03"), 1).streamId, 3);
  assertThrows(() => parseFrameHeader(hex("00 00 00 00")), RangeError);
});

Deno.test("encodeData() writes header, flags and padding as the RFC lays them out", () => {
  assertEquals(
    encodeData(3, hex("6162"), { endStream: true }),
    hex("000002 00 01 00000003 6162"),
  );
  assertEquals(
    encodeData(1, hex("61"), { padLength: 2 }),
    hex("000004 00 08 00000001 02 61 0000"),
  );
  assertEquals(encodeDataHeader(7, 16384, false), hex("004000 00 00 00000007"));
});

Deno.test("parseData() strips padding and reports the flow-controlled length", () => {
  const payload = hex("03 616263 000000");
  const frame = parseData(h(0, Flag.PADDED | Flag.END_STREAM, 1, 7), payload);
  assertEquals(frame.data, hex("616263"));
  assertEquals(frame.endStream, true);
  assertEquals(frame.flowLength, 7);
  // The data is a view into the payload, not a copy.
  assertEquals(frame.data.buffer, payload.buffer);
});

Deno.test("parseData() rejects stream 0 and padding >= payload with PROTOCOL_ERROR", () => {
  assertCode(() => parseData(h(0, 0, 0, 1), hex("00")), ConnectionError, ErrorCode.PROTOCOL_ERROR);
  assertCode(
    () => parseData(h(0, Flag.PADDED, 1, 3), hex("03 6161")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parseData(h(0, Flag.PADDED, 1, 0), hex("")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
  assertEquals(parseData(h(0, Flag.PADDED, 1, 3), hex("02 0000")).data.byteLength, 0);
});

Deno.test("parseHeaders() handles padding and the priority fields", () => {
  const payload = hex("02 80000003 0f 8287 0000");
  const frame = parseHeaders(
    h(1, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS, 5, payload.byteLength),
    payload,
  );
  assertEquals(frame.fragment, hex("8287"));
  assertEquals(frame.priority, { exclusive: true, dependency: 3, weight: 16 });
  assertEquals(frame.endHeaders, true);
  assertEquals(frame.endStream, false);
  assertCode(
    () => parseHeaders(h(1, 0, 0, 1), hex("82")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parseHeaders(h(1, Flag.PRIORITY, 1, 3), hex("000000")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
});

Deno.test("encodeHeaders() and encodeHeaderBlock() split a block into CONTINUATION frames", () => {
  assertEquals(
    encodeHeaders(1, hex("8287"), { endStream: true }),
    hex("000002 01 05 00000001 8287"),
  );
  const block = new Uint8Array(40_000).fill(0x41);
  const out = encodeHeaderBlock(3, block, { endStream: true, maxFrameSize: 16384 });
  assertEquals(out.byteLength, 40_000 + 27);
  assertEquals(parseFrameHeader(out, 0), h(FrameType.HEADERS, Flag.END_STREAM, 3, 16384));
  assertEquals(parseFrameHeader(out, 16393), h(FrameType.CONTINUATION, 0, 3, 16384));
  assertEquals(parseFrameHeader(out, 32786), h(FrameType.CONTINUATION, Flag.END_HEADERS, 3, 7232));
  assertEquals(encodeContinuation(3, hex("41"), true), hex("000001 09 04 00000003 41"));
  const one = encodeHeaderBlock(1, new Uint8Array(0), { maxFrameSize: 16384 });
  assertEquals(one, hex("000000 01 04 00000001"));
});

Deno.test("parsePriority() wants 5 bytes (stream FRAME_SIZE_ERROR) on a non-zero stream", () => {
  assertEquals(parsePriority(h(2, 0, 3, 5), hex("00000001 ff")), {
    exclusive: false,
    dependency: 1,
    weight: 256,
  });
  assertEquals(
    encodePriority(3, { exclusive: true, dependency: 1, weight: 1 }),
    hex("000005 02 00 00000003 80000001 00"),
  );
  assertCode(
    () => parsePriority(h(2, 0, 3, 4), hex("00000001")),
    StreamError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
  assertCode(
    () => parsePriority(h(2, 0, 0, 5), hex("00000001 ff")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
});

Deno.test("parseRstStream() reads the code; bad length is FRAME_SIZE_ERROR, stream 0 PROTOCOL_ERROR", () => {
  assertEquals(encodeRstStream(5, ErrorCode.CANCEL), hex("000004 03 00 00000005 00000008"));
  assertEquals(parseRstStream(h(3, 0, 5, 4), hex("00000008")), ErrorCode.CANCEL);
  assertCode(
    () => parseRstStream(h(3, 0, 5, 3), hex("000008")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
  assertCode(
    () => parseRstStream(h(3, 0, 0, 4), hex("00000008")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
});

Deno.test("parseSettings() reads pairs and enforces every §6.5 MUST", () => {
  assertEquals(
    encodeSettings([[SettingId.ENABLE_PUSH, 0], [SettingId.INITIAL_WINDOW_SIZE, 0x400000]]),
    hex("00000c 04 00 00000000 0002 00000000 0004 00400000"),
  );
  assertEquals(encodeSettingsAck(), hex("000000 04 01 00000000"));
  assertEquals(parseSettings(h(4, 0, 0, 12), hex("0003 00000064 00ff 00000001")), {
    ack: false,
    settings: [[3, 100], [0xff, 1]],
  });
  assertEquals(parseSettings(h(4, 1, 0, 0), hex("")), { ack: true, settings: [] });
  const conn = (payload: string, flags = 0, stream = 0) => () =>
    parseSettings(h(4, flags, stream, hex(payload).byteLength), hex(payload));
  assertCode(conn("", 0, 1), ConnectionError, ErrorCode.PROTOCOL_ERROR);
  assertCode(conn("0003 00000064", 1), ConnectionError, ErrorCode.FRAME_SIZE_ERROR);
  assertCode(conn("0003 000000"), ConnectionError, ErrorCode.FRAME_SIZE_ERROR);
  assertCode(conn("0002 00000002"), ConnectionError, ErrorCode.PROTOCOL_ERROR);
  assertCode(conn("0004 80000000"), ConnectionError, ErrorCode.FLOW_CONTROL_ERROR);
  assertCode(conn("0005 00003fff"), ConnectionError, ErrorCode.PROTOCOL_ERROR);
  assertCode(conn("0005 01000000"), ConnectionError, ErrorCode.PROTOCOL_ERROR);
  assertEquals(parseSettings(h(4, 0, 0, 6), hex("0004 7fffffff")).settings, [[4, 0x7fffffff]]);
});

Deno.test("parsePushPromise() reads the promised id past the padding", () => {
  const frame = parsePushPromise(
    h(5, Flag.PADDED | Flag.END_HEADERS, 1, 7),
    hex("01 00000002 82 00"),
  );
  assertEquals(frame.promisedStreamId, 2);
  assertEquals(frame.fragment, hex("82"));
  assertEquals(frame.endHeaders, true);
});

Deno.test("parsePing() wants 8 bytes on stream 0", () => {
  assertEquals(
    encodePing(true, hex("0102030405060708")),
    hex("000008 06 01 00000000 0102030405060708"),
  );
  assertEquals(parsePing(h(6, 1, 0, 8), hex("0102030405060708")).ack, true);
  assertCode(
    () => parsePing(h(6, 0, 1, 8), hex("0102030405060708")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parsePing(h(6, 0, 0, 7), hex("01020304050607")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
  assertThrows(() => encodePing(false, hex("01")), RangeError);
});

Deno.test("parseGoAway() reads last id, code and debug data on stream 0", () => {
  assertEquals(
    encodeGoAway(7, ErrorCode.NO_ERROR, hex("6869")),
    hex("00000a 07 00 00000000 00000007 00000000 6869"),
  );
  const frame = parseGoAway(h(7, 0, 0, 10), hex("80000007 0000000b 6869"));
  assertEquals(frame.lastStreamId, 7);
  assertEquals(frame.code, ErrorCode.ENHANCE_YOUR_CALM);
  assertEquals(frame.debugData, hex("6869"));
  assertCode(
    () => parseGoAway(h(7, 0, 1, 8), hex("00000007 00000000")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parseGoAway(h(7, 0, 0, 7), hex("00000007 000000")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
});

Deno.test("parseWindowUpdate() rejects 0 with the scope of the stream it names", () => {
  assertEquals(encodeWindowUpdate(0, 0xffffff), hex("000004 08 00 00000000 00ffffff"));
  assertEquals(parseWindowUpdate(h(8, 0, 3, 4), hex("ffffffff")), 0x7fffffff);
  assertCode(
    () => parseWindowUpdate(h(8, 0, 3, 4), hex("80000000")),
    StreamError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parseWindowUpdate(h(8, 0, 0, 4), hex("00000000")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
  assertCode(
    () => parseWindowUpdate(h(8, 0, 0, 5), hex("0000000100")),
    ConnectionError,
    ErrorCode.FRAME_SIZE_ERROR,
  );
});

Deno.test("parseContinuation() rejects stream 0", () => {
  assertEquals(parseContinuation(h(9, Flag.END_HEADERS, 1, 1), hex("82")), {
    fragment: hex("82"),
    endHeaders: true,
  });
  assertCode(
    () => parseContinuation(h(9, 0, 0, 1), hex("82")),
    ConnectionError,
    ErrorCode.PROTOCOL_ERROR,
  );
});
