/**
 * HTTP/2 error codes and the two error scopes of RFC 9113 §5.4.
 *
 * A `ConnectionError` ends the whole connection (GOAWAY with its code, every stream fails); a
 * `StreamError` resets one stream (RST_STREAM with its code). Both record who started it: `"local"`
 * when we detected the problem, `"peer"` when the peer sent GOAWAY/RST_STREAM. Only
 * `connection.ts` catches them and turns them into frames.
 */

/** RFC 9113 §7. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** `"CANCEL"` for 0x8; unknown codes (which RFC 9113 §7 says must not trigger special behaviour) as hex. */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) if (value === code) return name;
  return `0x${code.toString(16)}`;
}

export type Initiator = "local" | "peer";

export class ConnectionError extends Error {
  readonly code: number;
  readonly initiator: Initiator;
  constructor(code: number, message: string, options?: { initiator?: Initiator; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "ConnectionError";
    this.code = code;
    this.initiator = options?.initiator ?? "local";
  }
}

export class StreamError extends Error {
  readonly code: number;
  readonly streamId: number;
  readonly initiator: Initiator;
  constructor(
    streamId: number,
    code: number,
    message: string,
    options?: { initiator?: Initiator; cause?: unknown },
  ) {
    super(message, { cause: options?.cause });
    this.name = "StreamError";
    this.streamId = streamId;
    this.code = code;
    this.initiator = options?.initiator ?? "local";
  }
}
