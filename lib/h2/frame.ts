/**
 * HTTP/2 frames (RFC 9113 §4 and §6): constants, the 9-byte frame header, and one pure
 * encode/parse pair per frame type.
 *
 * Parsers take the already-split header and payload (a view; they never copy) and throw only
 * `ConnectionError` or `StreamError`, with the code the RFC assigns. Encoders return the whole frame,
 * header included. Only `connection.ts` reads or writes the socket.
 */
import { ConnectionError, ErrorCode, StreamError } from "./errors.ts";

/** RFC 9113 §6. */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Flag bits; their meaning depends on the frame type (ACK and END_STREAM share bit 0x1). */
export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** RFC 9113 §6.5.2. */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const FRAME_HEADER_SIZE = 9;
/** RFC 9113 §4.2: the initial and minimum SETTINGS_MAX_FRAME_SIZE. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** RFC 9113 §4.2: the largest frame size a peer may allow, 2^24-1. */
export const MAX_MAX_FRAME_SIZE = 16_777_215;
/** RFC 9113 §6.9.1: 2^31-1, the largest flow-control window. */
export const MAX_WINDOW_SIZE = 2_147_483_647;
/** RFC 9113 §6.9.2: the initial stream and connection window. */
export const DEFAULT_WINDOW_SIZE = 65_535;

/** RFC 9113 §3.4: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". */
export const CONNECTION_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

/** Reads the 9-byte header at `offset` (the caller ensures 9 bytes are there). */
export function parseFrameHeader(buf: Uint8Array, offset = 0): FrameHeader {
  if (buf.byteLength - offset < FRAME_HEADER_SIZE) {
    throw new RangeError(
      `Cannot parse frame header: need 9 bytes at offset ${offset}, have ${
        buf.byteLength - offset
      }`,
    );
  }
  return {
    length: (buf[offset] << 16) | (buf[offset + 1] << 8) | buf[offset + 2],
    type: buf[offset + 3],
    flags: buf[offset + 4],
    // RFC 9113 §4.1: the reserved bit "MUST be ignored when receiving".
    streamId: readUint31(buf, offset + 5),
  };
}

/** Writes a 9-byte frame header into `out` at `offset`. */
export function writeFrameHeader(out: Uint8Array, offset: number, header: FrameHeader): void {
  out[offset] = header.length >>> 16;
  out[offset + 1] = header.length >>> 8;
  out[offset + 2] = header.length;
  out[offset + 3] = header.type;
  out[offset + 4] = header.flags;
  writeUint32(out, offset + 5, header.streamId & 0x7fffffff);
}

function frame(type: number, flags: number, streamId: number, payloadLength: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + payloadLength);
  writeFrameHeader(out, 0, { length: payloadLength, type, flags, streamId });
  return out;
}

function readUint31(b: Uint8Array, o: number): number {
  return ((b[o] & 0x7f) * 0x1000000) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

function readUint32(b: Uint8Array, o: number): number {
  return (b[o] * 0x1000000) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

function writeUint32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

function frameSizeError(what: string, header: FrameHeader): ConnectionError {
  return new ConnectionError(
    ErrorCode.FRAME_SIZE_ERROR,
    `${what} frame on stream ${header.streamId} has invalid length ${header.length}`,
  );
}

function requireStream(what: string, header: FrameHeader): void {
  if (header.streamId === 0) {
    throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} frame on stream 0`);
  }
}

function requireConnection(what: string, header: FrameHeader): void {
  if (header.streamId !== 0) {
    throw new ConnectionError(
      ErrorCode.PROTOCOL_ERROR,
      `${what} frame on stream ${header.streamId}, must be on stream 0`,
    );
  }
}

/**
 * Strips padding (RFC 9113 §6.1, §6.2, §6.6): returns the view between the pad-length byte (and
 * `skip` further bytes) and the padding.
 */
function unpad(what: string, header: FrameHeader, payload: Uint8Array, skip: number): Uint8Array {
  if (!(header.flags & Flag.PADDED)) {
    if (payload.byteLength < skip) throw frameSizeError(what, header);
    // No new view when there is nothing to cut: a DATA frame's payload is its data.
    return skip === 0 ? payload : payload.subarray(skip);
  }
  if (payload.byteLength < 1 + skip) throw frameSizeError(what, header);
  const padLength = payload[0];
  // RFC 9113 §6.1: "If the length of the padding is the length of the frame payload or greater,
  // the recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
  if (padLength > payload.byteLength - 1 - skip) {
    throw new ConnectionError(
      ErrorCode.PROTOCOL_ERROR,
      `${what} frame on stream ${header.streamId}: padding ${padLength} exceeds payload ${payload.byteLength}`,
    );
  }
  return payload.subarray(1 + skip, payload.byteLength - padLength);
}

// ---- DATA (RFC 9113 §6.1) ----

export interface DataFrame {
  /** The data, padding removed (a view into the payload). */
  data: Uint8Array;
  endStream: boolean;
  /** The whole payload length, padding included: what counts against flow control. */
  flowLength: number;
}

export function parseData(header: FrameHeader, payload: Uint8Array): DataFrame {
  // RFC 9113 §6.1: "If a DATA frame is received whose Stream Identifier field is 0x00, the
  // recipient MUST respond with a connection error of type PROTOCOL_ERROR."
  requireStream("DATA", header);
  return {
    data: unpad("DATA", header, payload, 0),
    endStream: (header.flags & Flag.END_STREAM) !== 0,
    flowLength: payload.byteLength,
  };
}

/** Just the 9-byte header of a DATA frame, so the payload can be written from where it is. */
export function encodeDataHeader(streamId: number, length: number, endStream: boolean): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  writeFrameHeader(out, 0, {
    length,
    type: FrameType.DATA,
    flags: endStream ? Flag.END_STREAM : 0,
    streamId,
  });
  return out;
}

export function encodeData(
  streamId: number,
  data: Uint8Array,
  options: { endStream?: boolean; padLength?: number } = {},
): Uint8Array {
  const pad = options.padLength;
  const flags = (options.endStream ? Flag.END_STREAM : 0) | (pad !== undefined ? Flag.PADDED : 0);
  const length = data.byteLength + (pad !== undefined ? 1 + pad : 0);
  const out = frame(FrameType.DATA, flags, streamId, length);
  let o = FRAME_HEADER_SIZE;
  if (pad !== undefined) out[o++] = pad;
  out.set(data, o);
  return out;
}

// ---- HEADERS (RFC 9113 §6.2) ----

export interface Priority {
  exclusive: boolean;
  dependency: number;
  weight: number;
}

export interface HeadersFrame {
  /** The header block fragment (a view). */
  fragment: Uint8Array;
  endStream: boolean;
  endHeaders: boolean;
  priority?: Priority;
}

export function parseHeaders(header: FrameHeader, payload: Uint8Array): HeadersFrame {
  // RFC 9113 §6.2: "If a HEADERS frame is received whose Stream Identifier field is 0x00, the
  // recipient MUST respond with a connection error of type PROTOCOL_ERROR."
  requireStream("HEADERS", header);
  const hasPriority = (header.flags & Flag.PRIORITY) !== 0;
  const body = unpad("HEADERS", header, payload, hasPriority ? 5 : 0);
  const result: HeadersFrame = {
    fragment: body,
    endStream: (header.flags & Flag.END_STREAM) !== 0,
    endHeaders: (header.flags & Flag.END_HEADERS) !== 0,
  };
  if (hasPriority) {
    const o = header.flags & Flag.PADDED ? 1 : 0;
    result.priority = parsePriorityFields(payload, o);
  }
  return result;
}

export function encodeHeaders(
  streamId: number,
  fragment: Uint8Array,
  options: { endStream?: boolean; endHeaders?: boolean } = {},
): Uint8Array {
  const flags = (options.endStream ? Flag.END_STREAM : 0) |
    (options.endHeaders ?? true ? Flag.END_HEADERS : 0);
  const out = frame(FrameType.HEADERS, flags, streamId, fragment.byteLength);
  out.set(fragment, FRAME_HEADER_SIZE);
  return out;
}

/**
 * A whole header block as HEADERS + CONTINUATION frames no larger than `maxFrameSize`, in one
 * buffer (RFC 9113 §4.3: the frames of one block must be contiguous, so one write keeps them so).
 */
export function encodeHeaderBlock(
  streamId: number,
  block: Uint8Array,
  options: { endStream?: boolean; maxFrameSize: number },
): Uint8Array {
  const max = options.maxFrameSize;
  const frames = Math.max(1, Math.ceil(block.byteLength / max));
  const out = new Uint8Array(block.byteLength + frames * FRAME_HEADER_SIZE);
  let o = 0;
  for (let i = 0; i < frames; i++) {
    const part = block.subarray(i * max, Math.min(block.byteLength, (i + 1) * max));
    const last = i === frames - 1;
    const type = i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    let flags = last ? Flag.END_HEADERS : 0;
    if (i === 0 && options.endStream) flags |= Flag.END_STREAM;
    writeFrameHeader(out, o, { length: part.byteLength, type, flags, streamId });
    out.set(part, o + FRAME_HEADER_SIZE);
    o += FRAME_HEADER_SIZE + part.byteLength;
  }
  return out;
}

// ---- PRIORITY (RFC 9113 §6.3) ----

function parsePriorityFields(b: Uint8Array, o: number): Priority {
  return {
    exclusive: (b[o] & 0x80) !== 0,
    dependency: readUint31(b, o),
    weight: b[o + 4] + 1,
  };
}

export function parsePriority(header: FrameHeader, payload: Uint8Array): Priority {
  // RFC 9113 §6.3: "If a PRIORITY frame is received with a stream identifier of 0x00, the
  // recipient MUST respond with a connection error of type PROTOCOL_ERROR."
  requireStream("PRIORITY", header);
  // "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream error of
  // type FRAME_SIZE_ERROR."
  if (payload.byteLength !== 5) {
    throw new StreamError(
      header.streamId,
      ErrorCode.FRAME_SIZE_ERROR,
      `PRIORITY frame on stream ${header.streamId} has invalid length ${payload.byteLength}`,
    );
  }
  return parsePriorityFields(payload, 0);
}

/**
 * RFC 9113 §5.3.1: "A stream cannot depend on itself. An endpoint MUST treat this as a stream
 * error of type PROTOCOL_ERROR." For PRIORITY frames and HEADERS with the PRIORITY flag alike;
 * checked once the frame is otherwise handled (a header block is decoded first, §4.3).
 */
export function checkPriority(streamId: number, priority: { dependency: number }): void {
  if (priority.dependency === streamId) {
    throw new StreamError(
      streamId,
      ErrorCode.PROTOCOL_ERROR,
      `reset stream ${streamId}: its priority makes it depend on itself`,
    );
  }
}

export function encodePriority(streamId: number, priority: Priority): Uint8Array {
  const out = frame(FrameType.PRIORITY, 0, streamId, 5);
  writeUint32(out, 9, (priority.dependency & 0x7fffffff) | (priority.exclusive ? 0x80000000 : 0));
  out[13] = priority.weight - 1;
  return out;
}

// ---- RST_STREAM (RFC 9113 §6.4) ----

export function parseRstStream(header: FrameHeader, payload: Uint8Array): number {
  // RFC 9113 §6.4: "If a RST_STREAM frame is received with a stream identifier of 0x00, the
  // recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
  requireStream("RST_STREAM", header);
  // "A RST_STREAM frame with a length other than 4 octets MUST be treated as a connection error
  // of type FRAME_SIZE_ERROR."
  if (payload.byteLength !== 4) throw frameSizeError("RST_STREAM", header);
  return readUint32(payload, 0);
}

export function encodeRstStream(streamId: number, code: number): Uint8Array {
  const out = frame(FrameType.RST_STREAM, 0, streamId, 4);
  writeUint32(out, 9, code);
  return out;
}

// ---- SETTINGS (RFC 9113 §6.5) ----

export interface SettingsFrame {
  ack: boolean;
  /** In the order received; later values of the same id win (§6.5.3). */
  settings: Array<[number, number]>;
}

export function parseSettings(header: FrameHeader, payload: Uint8Array): SettingsFrame {
  // RFC 9113 §6.5: "If an endpoint receives a SETTINGS frame whose Stream Identifier field is
  // anything other than 0x00, the endpoint MUST respond with a connection error of type
  // PROTOCOL_ERROR."
  requireConnection("SETTINGS", header);
  const ack = (header.flags & Flag.ACK) !== 0;
  // "Receipt of a SETTINGS frame with the ACK flag set and a length field value other than 0 MUST
  // be treated as a connection error of type FRAME_SIZE_ERROR."
  if (ack && payload.byteLength !== 0) throw frameSizeError("SETTINGS ACK", header);
  // "A SETTINGS frame with a length other than a multiple of 6 octets MUST be treated as a
  // connection error of type FRAME_SIZE_ERROR."
  if (payload.byteLength % 6 !== 0) throw frameSizeError("SETTINGS", header);
  const settings: Array<[number, number]> = [];
  for (let o = 0; o < payload.byteLength; o += 6) {
    const id = (payload[o] << 8) | payload[o + 1];
    const value = readUint32(payload, o + 2);
    validateSetting(id, value);
    settings.push([id, value]);
  }
  return { ack, settings };
}

function validateSetting(id: number, value: number): void {
  switch (id) {
    case SettingId.ENABLE_PUSH:
      // §6.5.2: "Any value other than 0 or 1 MUST be treated as a connection error of type
      // PROTOCOL_ERROR."
      if (value > 1) {
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `SETTINGS_ENABLE_PUSH must be 0 or 1, got ${value}`,
        );
      }
      break;
    case SettingId.INITIAL_WINDOW_SIZE:
      // "Values above the maximum flow-control window size of 2^31-1 MUST be treated as a
      // connection error of type FLOW_CONTROL_ERROR."
      if (value > MAX_WINDOW_SIZE) {
        throw new ConnectionError(
          ErrorCode.FLOW_CONTROL_ERROR,
          `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31-1`,
        );
      }
      break;
    case SettingId.MAX_FRAME_SIZE:
      // "Values outside this range MUST be treated as a connection error of type PROTOCOL_ERROR."
      if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) {
        throw new ConnectionError(
          ErrorCode.PROTOCOL_ERROR,
          `SETTINGS_MAX_FRAME_SIZE must be 16384-16777215, got ${value}`,
        );
      }
      break;
      // "An endpoint that receives a SETTINGS frame with any unknown or unsupported identifier
      // MUST ignore that setting."
  }
}

export function encodeSettings(settings: Array<[number, number]>): Uint8Array {
  const out = frame(FrameType.SETTINGS, 0, 0, settings.length * 6);
  let o = FRAME_HEADER_SIZE;
  for (const [id, value] of settings) {
    out[o] = id >>> 8;
    out[o + 1] = id;
    writeUint32(out, o + 2, value);
    o += 6;
  }
  return out;
}

export function encodeSettingsAck(): Uint8Array {
  return frame(FrameType.SETTINGS, Flag.ACK, 0, 0);
}

// ---- PUSH_PROMISE (RFC 9113 §6.6) ----

export interface PushPromiseFrame {
  promisedStreamId: number;
  fragment: Uint8Array;
  endHeaders: boolean;
}

export function parsePushPromise(header: FrameHeader, payload: Uint8Array): PushPromiseFrame {
  requireStream("PUSH_PROMISE", header);
  const body = unpad("PUSH_PROMISE", header, payload, 4);
  const o = header.flags & Flag.PADDED ? 1 : 0;
  return {
    promisedStreamId: readUint31(payload, o),
    fragment: body,
    endHeaders: (header.flags & Flag.END_HEADERS) !== 0,
  };
}

export function encodePushPromise(
  streamId: number,
  promisedStreamId: number,
  fragment: Uint8Array,
): Uint8Array {
  const out = frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, streamId, 4 + fragment.byteLength);
  writeUint32(out, 9, promisedStreamId & 0x7fffffff);
  out.set(fragment, 13);
  return out;
}

// ---- PING (RFC 9113 §6.7) ----

export interface PingFrame {
  ack: boolean;
  /** The 8 opaque bytes (a view). */
  data: Uint8Array;
}

export function parsePing(header: FrameHeader, payload: Uint8Array): PingFrame {
  // RFC 9113 §6.7: "If a PING frame is received with a Stream Identifier field value other than
  // 0x00, the recipient MUST respond with a connection error of type PROTOCOL_ERROR."
  requireConnection("PING", header);
  // "Receipt of a PING frame with a length field value other than 8 MUST be treated as a
  // connection error of type FRAME_SIZE_ERROR."
  if (payload.byteLength !== 8) throw frameSizeError("PING", header);
  return { ack: (header.flags & Flag.ACK) !== 0, data: payload };
}

export function encodePing(ack: boolean, data: Uint8Array): Uint8Array {
  if (data.byteLength !== 8) {
    throw new RangeError(`Cannot encode PING: data must be 8 bytes, got ${data.byteLength}`);
  }
  const out = frame(FrameType.PING, ack ? Flag.ACK : 0, 0, 8);
  out.set(data, FRAME_HEADER_SIZE);
  return out;
}

// ---- GOAWAY (RFC 9113 §6.8) ----

export interface GoAwayFrame {
  lastStreamId: number;
  code: number;
  /** Opaque diagnostic data (a view). */
  debugData: Uint8Array;
}

export function parseGoAway(header: FrameHeader, payload: Uint8Array): GoAwayFrame {
  // RFC 9113 §6.8: "An endpoint MUST treat a GOAWAY frame with a stream identifier other than
  // 0x00 as a connection error of type PROTOCOL_ERROR."
  requireConnection("GOAWAY", header);
  if (payload.byteLength < 8) throw frameSizeError("GOAWAY", header);
  return {
    lastStreamId: readUint31(payload, 0),
    code: readUint32(payload, 4),
    debugData: payload.subarray(8),
  };
}

export function encodeGoAway(
  lastStreamId: number,
  code: number,
  debugData: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = frame(FrameType.GOAWAY, 0, 0, 8 + debugData.byteLength);
  writeUint32(out, 9, lastStreamId & 0x7fffffff);
  writeUint32(out, 13, code);
  out.set(debugData, 17);
  return out;
}

// ---- WINDOW_UPDATE (RFC 9113 §6.9) ----

export function parseWindowUpdate(header: FrameHeader, payload: Uint8Array): number {
  // RFC 9113 §6.9: "A WINDOW_UPDATE frame with a length other than 4 octets MUST be treated as a
  // connection error of type FRAME_SIZE_ERROR."
  if (payload.byteLength !== 4) throw frameSizeError("WINDOW_UPDATE", header);
  const increment = readUint31(payload, 0);
  // "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a flow-control window
  // increment of 0 as a stream error of type PROTOCOL_ERROR; errors on the connection
  // flow-control window MUST be treated as a connection error."
  if (increment === 0) {
    const message = `WINDOW_UPDATE with increment 0 on stream ${header.streamId}`;
    if (header.streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, message);
    throw new StreamError(header.streamId, ErrorCode.PROTOCOL_ERROR, message);
  }
  return increment;
}

/**
 * The allocation-free twin of {@link parseWindowUpdate}, for a frame that arrived whole in a read:
 * the increment of a well-formed WINDOW_UPDATE (length 4) whose header starts at `offset`, or -1
 * when the bytes there are anything else or not all in `buf`. A zero increment comes back as 0,
 * for the full path to reject. The stream id is {@link frameStreamIdAt}.
 */
export function windowUpdateAt(buf: Uint8Array, offset: number): number {
  if (
    buf.byteLength - offset < FRAME_HEADER_SIZE + 4 ||
    buf[offset + 3] !== FrameType.WINDOW_UPDATE ||
    buf[offset] !== 0 || buf[offset + 1] !== 0 || buf[offset + 2] !== 4
  ) {
    return -1;
  }
  return readUint31(buf, offset + FRAME_HEADER_SIZE);
}

/** The stream id of the frame header at `offset` (the caller ensures 9 bytes are there). */
export function frameStreamIdAt(buf: Uint8Array, offset: number): number {
  return readUint31(buf, offset + 5);
}

export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  const out = frame(FrameType.WINDOW_UPDATE, 0, streamId, 4);
  writeUint32(out, 9, increment & 0x7fffffff);
  return out;
}

// ---- CONTINUATION (RFC 9113 §6.10) ----

export interface ContinuationFrame {
  fragment: Uint8Array;
  endHeaders: boolean;
}

export function parseContinuation(header: FrameHeader, payload: Uint8Array): ContinuationFrame {
  // RFC 9113 §6.10: "If a CONTINUATION frame is received with a Stream Identifier field of 0x00,
  // the recipient MUST respond with a connection error of type PROTOCOL_ERROR."
  requireStream("CONTINUATION", header);
  return { fragment: payload, endHeaders: (header.flags & Flag.END_HEADERS) !== 0 };
}

export function encodeContinuation(
  streamId: number,
  fragment: Uint8Array,
  endHeaders: boolean,
): Uint8Array {
  const out = frame(
    FrameType.CONTINUATION,
    endHeaders ? Flag.END_HEADERS : 0,
    streamId,
    fragment.byteLength,
  );
  out.set(fragment, FRAME_HEADER_SIZE);
  return out;
}
