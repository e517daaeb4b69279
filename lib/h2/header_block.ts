/**
 * Assembles header blocks from HEADERS and CONTINUATION frames (RFC 9113 §4.3, §6.10) for the read
 * loop of either role, and caps what a peer can make us buffer while a block is incomplete.
 */
import { ConnectionError, ErrorCode } from "./errors.ts";
import { type FrameHeader, FrameType, parseContinuation, parseHeaders } from "./frame.ts";

/** CONTINUATION frames per header block before we call it a flood (CVE-2024-27316 and kin). */
export const MAX_CONTINUATIONS = 64;

/** A complete header block, still HPACK-encoded. */
export interface HeaderBlock {
  streamId: number;
  block: Uint8Array;
  endStream: boolean;
  /** The stream the HEADERS' priority fields make this one depend on; -1 without them. */
  dependency: number;
}

interface PendingBlock {
  streamId: number;
  endStream: boolean;
  dependency: number;
  parts: Uint8Array[];
  size: number;
  frames: number;
}

export class HeaderBlockAssembler {
  #maxSize: number;
  #pending: PendingBlock | undefined;

  /** `maxSize` is our SETTINGS_MAX_HEADER_LIST_SIZE, also the cap on an encoded block. */
  constructor(maxSize: number) {
    this.#maxSize = maxSize;
  }

  /** True while a header block waits for its CONTINUATION frames. */
  get inProgress(): boolean {
    return this.#pending !== undefined;
  }

  /** Throws unless a frame of this type may arrive now; call it for every frame. */
  checkNext(h: FrameHeader): void {
    const p = this.#pending;
    // RFC 9113 §6.10: a header block's frames must be contiguous: "Receipt of any other type of
    // frame or a frame on a different stream MUST be treated as a connection error of type
    // PROTOCOL_ERROR."
    if (p && (h.type !== FrameType.CONTINUATION || h.streamId !== p.streamId)) {
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `expected CONTINUATION on stream ${p.streamId}, got type ${h.type} on stream ${h.streamId}`,
      );
    }
  }

  /**
   * A HEADERS or CONTINUATION frame (`h.type` says which): the whole block once END_HEADERS
   * arrives, else undefined.
   */
  add(h: FrameHeader, payload: Uint8Array): HeaderBlock | undefined {
    return h.type === FrameType.HEADERS
      ? this.#headers(h, payload)
      : this.#continuation(h, payload);
  }

  #headers(h: FrameHeader, payload: Uint8Array): HeaderBlock | undefined {
    const f = parseHeaders(h, payload);
    const dependency = f.priority?.dependency ?? -1;
    if (f.endHeaders) {
      return { streamId: h.streamId, block: f.fragment, endStream: f.endStream, dependency };
    }
    // The fragment is a view of the read buffer, which the next read may reuse: keep a copy.
    this.#pending = {
      streamId: h.streamId,
      endStream: f.endStream,
      dependency,
      parts: [f.fragment.slice()],
      size: f.fragment.byteLength,
      frames: 1,
    };
    this.#checkSize(this.#pending);
    return undefined;
  }

  #continuation(h: FrameHeader, payload: Uint8Array): HeaderBlock | undefined {
    const f = parseContinuation(h, payload);
    const p = this.#pending;
    if (!p) {
      // RFC 9113 §6.10: a CONTINUATION not preceded by HEADERS, PUSH_PROMISE or CONTINUATION
      // without END_HEADERS is "a connection error of type PROTOCOL_ERROR".
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `CONTINUATION on stream ${h.streamId} without a preceding HEADERS`,
      );
    }
    p.parts.push(f.fragment.slice());
    p.size += f.fragment.byteLength;
    p.frames++;
    this.#checkSize(p);
    if (!f.endHeaders) return undefined;
    this.#pending = undefined;
    const block = new Uint8Array(p.size);
    let o = 0;
    for (const part of p.parts) {
      block.set(part, o);
      o += part.byteLength;
    }
    return { streamId: p.streamId, block, endStream: p.endStream, dependency: p.dependency };
  }

  #checkSize(p: PendingBlock): void {
    // A header block larger than the header list we accept, or one spread over many tiny
    // CONTINUATION frames, is a flood: stop buffering it (memory stays flat) and end the
    // connection, as RFC 9113 §10.5.1 allows.
    if (p.size > this.#maxSize || p.frames > MAX_CONTINUATIONS) {
      throw new ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `header block on stream ${p.streamId} exceeds ${
          p.size > this.#maxSize
            ? `${this.#maxSize} bytes`
            : `${MAX_CONTINUATIONS} CONTINUATION frames`
        }`,
      );
    }
  }
}
