/**
 * Cuts the bytes read from a connection into HTTP/2 frames (RFC 9113 §4.1), for the read loop of
 * either role. A frame that arrived whole is handed over as a view into the read chunk; one split
 * across reads is copied together once, into a buffer the splitter reuses for the next such frame.
 *
 * So a payload is valid only while the handler runs: handlers copy what they keep (bodies,
 * header-block fragments), as they must anyway for a read buffer that is reused. A fresh buffer per
 * split frame cost a zeroed allocation per DATA frame on an upload: 64 KiB frames over TLS reads
 * of 16 KiB records are almost all split, so about one GiB of garbage per GiB received.
 */
import { poisonReused } from "../net/buffer_lender.ts";
import { ConnectionError, ErrorCode } from "./errors.ts";
import {
  FRAME_HEADER_SIZE,
  type FrameHeader,
  frameStreamIdAt,
  parseFrameHeader,
  windowUpdateAt,
} from "./frame.ts";

/** Called per frame; returning false stops the splitting of the current chunk (we are closing). */
export type FrameHandler = (header: FrameHeader, payload: Uint8Array) => boolean;

/**
 * Offered every well-formed WINDOW_UPDATE (length 4, increment not 0) that arrived whole, as two
 * numbers (frame.ts's windowUpdateAt); true if it handled it, false to have it go through the {@link FrameHandler} like
 * any frame. A peer that credits each small read (v2ray's Go server sends a WINDOW_UPDATE per
 * 2 KiB its handler reads, conn and stream: ~1 million frames per GiB uploaded) would otherwise
 * cost a header object, a payload view and a parse per frame — most of our upload GC.
 */
export type WindowUpdateHandler = (streamId: number, increment: number) => boolean;

export class FrameSplitter {
  #maxFrameSize: number;
  #head = new Uint8Array(FRAME_HEADER_SIZE);
  #headFill = 0;
  #header: FrameHeader | undefined;
  #partial: Uint8Array | undefined;
  #partialFill = 0;
  /**
   * Backing memory for split frames, grown to the largest seen (at most maxFrameSize); let go
   * whenever a read ends on a frame boundary, so a quiet connection holds none.
   */
  #spare: Uint8Array | undefined;

  /** `maxFrameSize` is our SETTINGS_MAX_FRAME_SIZE: the largest payload we accept. */
  constructor(maxFrameSize: number) {
    this.#maxFrameSize = maxFrameSize;
  }

  /**
   * Feeds one read; calls `onFrame` for every frame it completes (offering whole WINDOW_UPDATEs to
   * `onWindowUpdate` first, if given). Throws `ConnectionError`.
   */
  feed(chunk: Uint8Array, onFrame: FrameHandler, onWindowUpdate?: WindowUpdateHandler): void {
    this.#feed(chunk, onFrame, onWindowUpdate);
    // Ended on a frame boundary: no split frame in progress needs the spare (payloads are only
    // valid during their handler). A bulk transfer mostly ends reads mid-frame and keeps it.
    if (this.#header === undefined && this.#headFill === 0) this.#spare = undefined;
  }

  #feed(chunk: Uint8Array, onFrame: FrameHandler, onWindowUpdate?: WindowUpdateHandler): void {
    let off = 0;
    const len = chunk.byteLength;
    while (off < len) {
      if (this.#header === undefined) {
        if (onWindowUpdate && this.#headFill === 0) {
          const increment = windowUpdateAt(chunk, off);
          if (increment > 0 && onWindowUpdate(frameStreamIdAt(chunk, off), increment)) {
            off += FRAME_HEADER_SIZE + 4;
            continue;
          }
        }
        if (this.#headFill === 0 && len - off >= FRAME_HEADER_SIZE) {
          const h = parseFrameHeader(chunk, off);
          this.#checkFrameSize(h);
          if (len - off - FRAME_HEADER_SIZE >= h.length) {
            // The fast path: the whole frame is in this read.
            const start = off + FRAME_HEADER_SIZE;
            off = start + h.length;
            if (!onFrame(h, chunk.subarray(start, off))) return;
            continue;
          }
          this.#header = h;
          off += FRAME_HEADER_SIZE;
        } else {
          const take = Math.min(FRAME_HEADER_SIZE - this.#headFill, len - off);
          this.#head.set(chunk.subarray(off, off + take), this.#headFill);
          this.#headFill += take;
          off += take;
          if (this.#headFill < FRAME_HEADER_SIZE) return;
          this.#header = parseFrameHeader(this.#head);
          this.#checkFrameSize(this.#header);
          this.#head = new Uint8Array(FRAME_HEADER_SIZE);
          this.#headFill = 0;
        }
        const need = this.#header.length;
        if (!this.#spare || this.#spare.byteLength < need) this.#spare = new Uint8Array(need);
        this.#partial = this.#spare.subarray(0, need);
        // Debug guard (off: a no-op): a payload view kept past its handler reads garbage.
        poisonReused(this.#partial);
        this.#partialFill = 0;
      }
      const take = Math.min(this.#header.length - this.#partialFill, len - off);
      this.#partial!.set(chunk.subarray(off, off + take), this.#partialFill);
      this.#partialFill += take;
      off += take;
      if (this.#partialFill === this.#header.length) {
        const h = this.#header;
        const payload = this.#partial!;
        this.#header = this.#partial = undefined;
        if (!onFrame(h, payload)) return;
      }
    }
  }

  #checkFrameSize(h: FrameHeader): void {
    // RFC 9113 §4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds
    // the size defined in SETTINGS_MAX_FRAME_SIZE".
    if (h.length > this.#maxFrameSize) {
      throw new ConnectionError(
        ErrorCode.FRAME_SIZE_ERROR,
        `frame of ${h.length} bytes (type ${h.type}, stream ${h.streamId}) exceeds our SETTINGS_MAX_FRAME_SIZE ${this.#maxFrameSize}`,
      );
    }
  }
}
