/**
 * Reads RFC 6455 frames off a byte stream that arrives in arbitrary pieces. Pure: `push()` bytes,
 * and the sink hears data, pings, pongs and the Close frame in wire order.
 *
 * A proxied connection is a byte stream, so messages are not gathered into one buffer: the payload
 * of each data frame is handed on as it arrives (a view of the pushed chunk, unmasked in place),
 * and fragments of one message simply follow each other. Reassembly is therefore only bookkeeping:
 * the fragmentation rules of §5.4 are enforced and a message's total size is bounded.
 */
import {
  applyMaskKey,
  type CloseBody,
  type FrameHeader,
  isControl,
  MAX_HEADER_BYTES,
  Opcode,
  parseCloseBody,
  parseFrameHeader,
} from "./frame.ts";

export interface FrameSink {
  /** Payload bytes of a data frame, in order. A view of the pushed chunk. */
  onData(bytes: Uint8Array): void;
  onPing(payload: Uint8Array): void;
  onPong(payload: Uint8Array): void;
  /** The peer's Close frame. Nothing is reported after it. */
  onClose(body: CloseBody): void;
}

export interface FrameParserOptions {
  /**
   * Whose frames we read: a server reads a client's (which must be masked), a client reads a
   * server's (which must not be).
   */
  role: "client" | "server";
  /** Largest data frame payload (RangeError → close 1009 beyond it). Default 16 MiB. */
  maxFrameBytes?: number;
  /** Largest message, all fragments together. Default 64 MiB. */
  maxMessageBytes?: number;
}

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class FrameParser {
  readonly #role: "client" | "server";
  readonly #maxFrame: number;
  readonly #maxMessage: number;
  /** A header split across pushes. */
  readonly #head = new Uint8Array(MAX_HEADER_BYTES);
  #headLength = 0;
  /** The frame whose payload is being read, or undefined between frames. */
  #frame: FrameHeader | undefined;
  #payloadRead = 0;
  /** A control frame's payload (≤125 bytes) gathered across pushes. */
  #control: Uint8Array | undefined;
  /** A data message has begun and its final fragment has not arrived. */
  #inMessage = false;
  #messageBytes = 0;
  #closed = false;
  /** Bytes pushed before this chunk, and where the current step began: for error messages. */
  #offset = 0;
  #where = 0;

  constructor(options: FrameParserOptions) {
    this.#role = options.role;
    this.#maxFrame = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** The peer's Close frame has been read. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Feeds the next bytes of the stream (which become ours: masked payloads are unmasked in
   * place). Throws SyntaxError (close 1002) or RangeError (close 1009) naming the byte offset;
   * bytes after a Close frame are ignored.
   */
  push(chunk: Uint8Array, sink: FrameSink): void {
    let pos = 0;
    const n = chunk.byteLength;
    while (pos < n && !this.#closed) {
      this.#where = this.#offset + pos;
      if (this.#frame === undefined) {
        pos = this.#readHeader(chunk, pos);
        const started = this.#frame as FrameHeader | undefined;
        if (started === undefined) break;
        if (started.payloadLength === 0) this.#endFrame(sink);
        continue;
      }
      const f = this.#frame;
      const take = Math.min(f.payloadLength - this.#payloadRead, n - pos);
      const piece = chunk.subarray(pos, pos + take);
      if (f.mask !== undefined) applyMaskKey(piece, f.mask, this.#payloadRead);
      if (isControl(f.opcode)) {
        this.#control!.set(piece, this.#payloadRead);
      } else {
        sink.onData(piece);
      }
      this.#payloadRead += take;
      pos += take;
      if (this.#payloadRead === f.payloadLength) this.#endFrame(sink);
    }
    this.#offset += n;
  }

  /** Parses a header from the saved bytes plus `chunk` at `pos`; returns the new `pos`. */
  #readHeader(chunk: Uint8Array, pos: number): number {
    let header: FrameHeader | null;
    let used: number;
    if (this.#headLength === 0) {
      header = this.#parse(chunk, pos);
      if (header) {
        used = header.headerLength;
      } else {
        // Incomplete: keep what there is (at most 13 bytes).
        this.#head.set(chunk.subarray(pos), 0);
        this.#headLength = chunk.byteLength - pos;
        return chunk.byteLength;
      }
    } else {
      const had = this.#headLength;
      const add = Math.min(MAX_HEADER_BYTES - had, chunk.byteLength - pos);
      this.#head.set(chunk.subarray(pos, pos + add), had);
      this.#headLength = had + add;
      header = this.#parse(this.#head.subarray(0, this.#headLength), 0);
      if (!header) return pos + add;
      used = header.headerLength - had;
      this.#headLength = 0;
    }
    this.#startFrame(header);
    return pos + used;
  }

  #parse(b: Uint8Array, at: number): FrameHeader | null {
    try {
      return parseFrameHeader(b, at, this.#maxFrame);
    } catch (err) {
      throw this.#wrap(err as Error);
    }
  }

  #startFrame(h: FrameHeader): void {
    // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is not
    // masked." and "A client MUST close a connection if it detects a masked frame."
    if (this.#role === "server" && h.mask === undefined) {
      throw this.#error("client frame is not masked");
    }
    if (this.#role === "client" && h.mask !== undefined) {
      throw this.#error("server frame is masked");
    }
    if (isControl(h.opcode)) {
      this.#control = new Uint8Array(h.payloadLength);
    } else if (h.opcode === Opcode.Continuation) {
      // §5.4: a continuation frame belongs to a message begun by a Text or Binary frame.
      if (!this.#inMessage) throw this.#error("continuation frame without a message to continue");
    } else if (this.#inMessage) {
      // §5.4: "the fragments of one message MUST NOT be interleaved between the fragments of
      // another message" — only control frames may come in between.
      throw this.#error("new data frame inside a fragmented message");
    } else {
      this.#messageBytes = 0;
    }
    if (!isControl(h.opcode)) {
      this.#messageBytes += h.payloadLength;
      if (this.#messageBytes > this.#maxMessage) {
        throw this.#wrap(
          new RangeError(`WebSocket message exceeds ${this.#maxMessage} bytes`),
        );
      }
      this.#inMessage = !h.fin;
    }
    this.#frame = h;
    this.#payloadRead = 0;
  }

  #endFrame(sink: FrameSink): void {
    const f = this.#frame!;
    this.#frame = undefined;
    if (!isControl(f.opcode)) return;
    const payload = this.#control!;
    this.#control = undefined;
    switch (f.opcode) {
      case Opcode.Ping:
        sink.onPing(payload);
        break;
      case Opcode.Pong:
        sink.onPong(payload);
        break;
      case Opcode.Close: {
        let body: CloseBody;
        try {
          body = parseCloseBody(payload);
        } catch (err) {
          throw this.#wrap(err as Error);
        }
        this.#closed = true;
        sink.onClose(body);
        break;
      }
    }
  }

  #error(what: string): SyntaxError {
    return new SyntaxError(`WebSocket protocol error near byte ${this.#where}: ${what}`);
  }

  /** Keeps the error's class (it picks the close code) and adds where it happened. */
  #wrap(err: Error): Error {
    const message = `${err.message} (near byte ${this.#where})`;
    return err instanceof RangeError
      ? new RangeError(message, { cause: err })
      : new SyntaxError(message, { cause: err });
  }
}
