/**
 * SETTINGS for either role (RFC 9113 §6.5): the options that become our SETTINGS, checked against
 * the ranges RFC 9113 allows, and the peer's SETTINGS that bound what we send.
 */
import { ConnectionError, ErrorCode } from "./errors.ts";
import type { FlowStream } from "./connection_flow.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW_SIZE,
  Flag,
  type FrameHeader,
  FrameType,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW_SIZE,
  SettingId,
} from "./frame.ts";
import type { HpackEncoder } from "./hpack.ts";

/** The options both roles take; each role adds its own. */
export interface LocalSettings {
  /** Our SETTINGS_INITIAL_WINDOW_SIZE. */
  initialWindowSize: number;
  /** Our connection receive window (see `ConnectionFlow`). */
  connectionWindowSize: number;
  /** Our SETTINGS_MAX_FRAME_SIZE. */
  maxFrameSize: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderListSize: number;
}

/**
 * `defaults` overridden by the options given (undefined ones and unknown keys ignored). Throws
 * `RangeError` for a window or frame size RFC 9113 does not allow.
 */
export function resolveSettings<T extends LocalSettings>(defaults: T, options: object): T {
  const o = { ...defaults };
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined && k in defaults) (o as unknown as Record<string, number>)[k] = v;
  }
  // RFC 9113 §6.5.2: "Values above the maximum flow-control window size of 2^31-1 MUST be
  // treated as a connection error"; SETTINGS_MAX_FRAME_SIZE is 2^14 to 2^24-1.
  if (o.initialWindowSize < 0 || o.initialWindowSize > MAX_WINDOW_SIZE) {
    throw new RangeError(`initialWindowSize must be 0 to 2^31-1, got ${o.initialWindowSize}`);
  }
  if (o.connectionWindowSize < DEFAULT_WINDOW_SIZE || o.connectionWindowSize > MAX_WINDOW_SIZE) {
    throw new RangeError(
      `connectionWindowSize must be 65535 to 2^31-1, got ${o.connectionWindowSize}`,
    );
  }
  if (o.maxFrameSize < DEFAULT_MAX_FRAME_SIZE || o.maxFrameSize > MAX_MAX_FRAME_SIZE) {
    throw new RangeError(`maxFrameSize must be 16384 to 16777215, got ${o.maxFrameSize}`);
  }
  return o;
}

/**
 * RFC 9113 §3.4: each side's preface ends in (for a server, is) "a SETTINGS frame [that] MUST be
 * the first frame" it sends; anything else first is an invalid preface, PROTOCOL_ERROR. Call for
 * every frame until the peer's SETTINGS arrived; `peerName` names the peer in the error.
 */
export function requireSettingsFirst(h: FrameHeader, peerName: string): void {
  if (h.type !== FrameType.SETTINGS || (h.flags & Flag.ACK) !== 0) {
    throw new ConnectionError(
      ErrorCode.PROTOCOL_ERROR,
      `first frame from the ${peerName} is type ${h.type}, not SETTINGS`,
    );
  }
}

/** The peer's settings we obey (RFC 9113 §6.5.2 initial values until its SETTINGS arrives). */
export class PeerSettings {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: how many streams we may open. */
  maxConcurrentStreams = Infinity;
  /** SETTINGS_INITIAL_WINDOW_SIZE: the send window of each stream we open. */
  initialWindowSize = DEFAULT_WINDOW_SIZE;
  /** SETTINGS_MAX_FRAME_SIZE: the largest frame we may send. */
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;

  #encoder: HpackEncoder;
  #isClient: boolean;

  /** `encoder` is ours (HEADER_TABLE_SIZE bounds it); `isClient` when we are the client. */
  constructor(encoder: HpackEncoder, options: { isClient: boolean }) {
    this.#encoder = encoder;
    this.#isClient = options.isClient;
  }

  /** Applies a SETTINGS frame's values in order; `streams` are the open streams. */
  apply(settings: Array<[number, number]>, streams: Iterable<FlowStream>): void {
    for (const [id, value] of settings) {
      switch (id) {
        case SettingId.HEADER_TABLE_SIZE:
          this.#encoder.setMaxTableSize(value);
          break;
        case SettingId.ENABLE_PUSH:
          // RFC 9113 §6.5.2: "A client MUST treat receipt of a SETTINGS frame with
          // SETTINGS_ENABLE_PUSH set to 1 as a connection error of type PROTOCOL_ERROR."
          // A server ignores it (the parser checked the value): we never push.
          if (this.#isClient && value === 1) {
            throw new ConnectionError(
              ErrorCode.PROTOCOL_ERROR,
              "server sent SETTINGS_ENABLE_PUSH = 1",
            );
          }
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          this.maxConcurrentStreams = value;
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          // RFC 9113 §6.9.2: the change applies to every open stream's window, which may go
          // negative; "An endpoint MUST treat a change to SETTINGS_INITIAL_WINDOW_SIZE that causes
          // any flow-control window to exceed the maximum size as a connection error of type
          // FLOW_CONTROL_ERROR."
          const delta = value - this.initialWindowSize;
          this.initialWindowSize = value;
          for (const s of streams) {
            if (!s.sendWindow.add(delta)) {
              throw new ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR,
                `SETTINGS_INITIAL_WINDOW_SIZE ${value} overflows the window of stream ${s.id}`,
              );
            }
            if (delta > 0) s.sendBody.wakeWindow();
          }
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          this.maxFrameSize = value;
          break;
      }
    }
  }
}
