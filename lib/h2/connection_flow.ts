/**
 * Connection-level flow control for either role (RFC 9113 §5.2, §6.9): the connection's send and
 * receive windows, the send credit a stream's DATA may take, the WINDOW_UPDATE frames that return
 * receive credit, and the peer's WINDOW_UPDATE frames. The per-stream windows live on the streams.
 */
import { ConnectionError, ErrorCode, StreamError } from "./errors.ts";
import { ReceiveWindow, SendWindow } from "./flow.ts";
import { DEFAULT_WINDOW_SIZE, encodeWindowUpdate } from "./frame.ts";
import type { FrameWriter } from "./frame_writer.ts";

/** A stream's sending body as flow control sees it (SendBody): a write may wait for credit. */
export interface CreditWaiter {
  /** True while a write waits for send credit. */
  readonly waitingForWindow: boolean;
  /** The send window may have grown. */
  wakeWindow(): void;
}

/** What the connection's flow control needs of a stream. */
export interface FlowStream {
  readonly id: number;
  /** Send credit the peer gave the stream. */
  readonly sendWindow: SendWindow;
  /** Receive credit we gave the peer for the stream. */
  readonly recvWindow: ReceiveWindow;
  /** Woken, not the stream, when credit arrives: the body is what waits for it. */
  readonly sendBody: CreditWaiter;
}

export class ConnectionFlow {
  #writer: FrameWriter;
  #peerName: string;
  #sendWindow = new SendWindow(DEFAULT_WINDOW_SIZE);
  #recvWindow = new ReceiveWindow(DEFAULT_WINDOW_SIZE);
  /**
   * Streams that asked for credit while the connection window was empty. A connection
   * WINDOW_UPDATE wakes only these: scanning every open stream on each update cost real CPU with
   * hundreds of streams alive (v2ray sends one update per DATA frame).
   */
  #blocked = new Set<FlowStream>();

  /**
   * `windowSize` is our connection receive window; past the default 65535 it is raised with a
   * WINDOW_UPDATE queued now (RFC 9113 §6.9.2: only WINDOW_UPDATE changes the connection window).
   * `peerName` names the peer in errors ("peer", "client").
   */
  constructor(writer: FrameWriter, options: { windowSize: number; peerName: string }) {
    this.#writer = writer;
    this.#peerName = options.peerName;
    const raise = options.windowSize - DEFAULT_WINDOW_SIZE;
    if (raise > 0) {
      this.#recvWindow.grow(raise);
      writer.urgent(encodeWindowUpdate(0, raise));
    }
  }

  /** Takes up to `want` bytes of send credit from the stream's and the connection's windows. */
  reserve(stream: FlowStream, want: number, maxFrameSize: number): number {
    if (this.#sendWindow.size <= 0) this.#blocked.add(stream);
    const n = Math.min(want, stream.sendWindow.size, this.#sendWindow.size, maxFrameSize);
    if (n <= 0) return 0;
    stream.sendWindow.consume(n);
    this.#sendWindow.consume(n);
    return n;
  }

  /** A DATA frame of `flowLength` (padding included) arrived; it must fit the connection window. */
  receive(flowLength: number): void {
    // RFC 9113 §6.9.1: "A sender MUST NOT send a flow-controlled frame with a length that exceeds
    // the space available in either of the flow-control windows advertised by the receiver";
    // overrunning the connection window is a connection FLOW_CONTROL_ERROR.
    if (!this.#recvWindow.receive(flowLength)) {
      throw new ConnectionError(
        ErrorCode.FLOW_CONTROL_ERROR,
        `${this.#peerName} sent ${flowLength} bytes past the connection window (${this.#recvWindow.available} left)`,
      );
    }
  }

  /** `n` received bytes were read or dropped: return them to the connection (and the stream). */
  consumed(stream: FlowStream, n: number, streamToo: boolean): void {
    const conn = this.#recvWindow.consume(n);
    if (conn > 0) this.#writer.urgent(encodeWindowUpdate(0, conn));
    if (streamToo) {
      const s = stream.recvWindow.consume(n);
      if (s > 0) this.#writer.urgent(encodeWindowUpdate(stream.id, s));
    }
  }

  /** Returns `n` bytes of a stream that is gone to the connection window only. */
  credit(n: number): void {
    const inc = this.#recvWindow.consume(n);
    if (inc > 0) this.#writer.urgent(encodeWindowUpdate(0, inc));
  }

  /**
   * Hands a received DATA frame to its stream. If the stream resets over it, the frame's bytes
   * will never be read: they go back to the connection window at once.
   */
  deliver(
    stream: { onData(data: Uint8Array, flowLength: number, endStream: boolean): void },
    f: { data: Uint8Array; flowLength: number; endStream: boolean },
  ): void {
    try {
      stream.onData(f.data, f.flowLength, f.endStream);
    } catch (err) {
      if (err instanceof StreamError) this.credit(f.flowLength);
      throw err;
    }
  }

  /**
   * A WINDOW_UPDATE that arrived whole (FrameSplitter's onWindowUpdate): applies it when it is the
   * common case — credit for the connection or a stream in `streams` — and returns true; false for
   * anything that needs the full path and its checks (a zero increment, a stream not open). The
   * caller has checked the connection may take frames now (after SETTINGS, outside a header block,
   * not closing). Throws as {@link onWindowUpdate}.
   */
  applyWindowUpdate(
    streamId: number,
    increment: number,
    streams: Map<number, FlowStream>,
  ): boolean {
    if (increment === 0 || (streamId !== 0 && !streams.has(streamId))) return false;
    this.onWindowUpdate(streamId, increment, streams);
    return true;
  }

  /**
   * The peer's WINDOW_UPDATE for the connection (stream 0) or one of `streams` (the caller has
   * checked the stream is not idle); wakes the writers it unblocks.
   */
  onWindowUpdate(streamId: number, increment: number, streams: Map<number, FlowStream>): void {
    if (streamId === 0) {
      // RFC 9113 §6.9.1: "If a sender receives a WINDOW_UPDATE that causes a flow-control
      // window to exceed this maximum, it MUST terminate either the stream or the
      // connection, as appropriate" — FLOW_CONTROL_ERROR.
      if (!this.#sendWindow.add(increment)) {
        throw new ConnectionError(
          ErrorCode.FLOW_CONTROL_ERROR,
          `connection send window ${this.#sendWindow.size} + ${increment} exceeds 2^31-1`,
        );
      }
      // Most updates find nobody blocked (v2ray sends one per 2 KiB read): no copy then.
      if (this.#blocked.size === 0) return;
      const blocked = [...this.#blocked];
      this.#blocked.clear();
      // A stream still short of credit asks again and lands back in the set.
      for (const s of blocked) {
        if (s.sendBody.waitingForWindow && streams.get(s.id) === s) s.sendBody.wakeWindow();
      }
      return;
    }
    const stream = streams.get(streamId);
    if (!stream) return;
    if (!stream.sendWindow.add(increment)) {
      throw new StreamError(
        streamId,
        ErrorCode.FLOW_CONTROL_ERROR,
        `reset stream ${streamId}: send window ${stream.sendWindow.size} + ${increment} exceeds 2^31-1`,
      );
    }
    stream.sendBody.wakeWindow();
  }
}
