/**
 * UDP over VLESS (command 2): every datagram travels as a 2-byte big-endian length then its bytes,
 * in both directions. On a byte stream packets may arrive coalesced or split at any point, so the
 * decoder reassembles them; each emitted chunk is exactly one datagram.
 *
 * v2ray 4.34 silently drops packets over 2046 bytes (its buffer size minus the length prefix); we
 * carry anything the length field can describe (65535) and reject larger datagrams with a RangeError
 * that the caller logs.
 */

/** The largest datagram the 2-byte length prefix can describe. */
export const MAX_UDP_PACKET = 65535;

/** Frames one datagram. Throws RangeError when it is larger than {@link MAX_UDP_PACKET}. */
export function encodeUdpPacket(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + checkSize(payload).byteLength);
  out[0] = payload.byteLength >> 8;
  out[1] = payload.byteLength & 0xff;
  out.set(payload, 2);
  return out;
}

function checkSize(payload: Uint8Array): Uint8Array {
  if (payload.byteLength > MAX_UDP_PACKET) {
    throw new RangeError(
      `UDP datagram of ${payload.byteLength} bytes does not fit VLESS's 2-byte length (max ${MAX_UDP_PACKET})`,
    );
  }
  return payload;
}

/** Reassembles length-prefixed datagrams from arbitrarily cut chunks. */
export class UdpPacketDecoder {
  #buf = new Uint8Array(0);

  /** Bytes held for a packet that is not complete yet. */
  get pending(): number {
    return this.#buf.byteLength;
  }

  /** Returns every datagram completed by `chunk` (each a fresh copy or a view of `chunk`). */
  push(chunk: Uint8Array): Uint8Array[] {
    let bytes = chunk;
    if (this.#buf.byteLength > 0) {
      bytes = new Uint8Array(this.#buf.byteLength + chunk.byteLength);
      bytes.set(this.#buf);
      bytes.set(chunk, this.#buf.byteLength);
    }
    const out: Uint8Array[] = [];
    let off = 0;
    while (bytes.byteLength - off >= 2) {
      const length = (bytes[off] << 8) | bytes[off + 1];
      if (bytes.byteLength - off - 2 < length) break;
      out.push(bytes.subarray(off + 2, off + 2 + length));
      off += 2 + length;
    }
    // Keep the incomplete tail as a copy so a large read buffer is not pinned by a few bytes.
    this.#buf = off === bytes.byteLength ? new Uint8Array(0) : bytes.slice(off);
    return out;
  }

  /** Call at end of stream: throws when a packet was cut off. */
  finish(): void {
    if (this.#buf.byteLength === 0) return;
    const want = this.#buf.byteLength >= 2 ? 2 + ((this.#buf[0] << 8) | this.#buf[1]) : 2;
    throw new Error(
      `VLESS UDP stream ended inside a packet: got ${this.#buf.byteLength} of ${want} bytes`,
    );
  }
}

export interface UdpEncoderOptions {
  /**
   * Called with the RangeError for a datagram too large to frame; the datagram is dropped and the
   * stream goes on (UDP is lossy). Without it the stream errors.
   */
  onReject?: (error: RangeError) => void;
}

/**
 * Datagrams in, framed bytes out. Empty datagrams are skipped, as v2ray skips them: its reader
 * would hand the target a zero-length write.
 */
export class UdpPacketEncoderStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(options: UdpEncoderOptions = {}) {
    super({
      transform(chunk, controller) {
        if (chunk.byteLength === 0) return;
        try {
          controller.enqueue(encodeUdpPacket(chunk));
        } catch (err) {
          if (!(err instanceof RangeError) || !options.onReject) throw err;
          options.onReject(err);
        }
      },
    });
  }
}

/** Framed bytes in, one datagram per chunk out. */
export class UdpPacketDecoderStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    const decoder = new UdpPacketDecoder();
    super({
      transform(chunk, controller) {
        for (const packet of decoder.push(chunk)) controller.enqueue(packet);
      },
      flush() {
        decoder.finish();
      },
    });
  }
}
