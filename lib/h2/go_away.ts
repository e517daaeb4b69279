/**
 * GOAWAY for either role (RFC 9113 §6.8): the frame we send when an error or a close ends the
 * connection, and how a peer's GOAWAY debug data reads in our messages.
 */
import { ConnectionError, ErrorCode } from "./errors.ts";
import { encodeGoAway } from "./frame.ts";

/** How long our last GOAWAY may take to reach a peer that stopped reading. */
export const GOAWAY_WRITE_MS = 1_000;

/** The error code a connection ended by `err` goes away with. */
export function goAwayCode(err: Error): number {
  return err instanceof ConnectionError ? err.code : ErrorCode.INTERNAL_ERROR;
}

/**
 * RFC 9113 §5.4.1: "An endpoint that encounters a connection error SHOULD first send a GOAWAY
 * frame ... with the stream identifier of the last stream that it successfully received from its
 * peer." The debug data is our message (200 characters at most), none for a clean close.
 */
export function encodeGoAwayFor(lastStreamId: number, err: Error): Uint8Array {
  const code = goAwayCode(err);
  const debug = new TextEncoder().encode(
    code === ErrorCode.NO_ERROR ? "" : err.message.slice(0, 200),
  );
  return encodeGoAway(lastStreamId, code, debug);
}

/** A peer's debug data as our messages quote it: `, "text"` (its first 256 bytes), or "". */
export function describeDebugData(debugData: Uint8Array): string {
  return debugData.byteLength > 0
    ? `, "${new TextDecoder().decode(debugData.subarray(0, 256))}"`
    : "";
}
