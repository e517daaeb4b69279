/**
 * PING for either role (RFC 9113 §6.7): answers the peer's PINGs, and checks the peer is alive by
 * sending one of ours after a read-idle spell — a peer that vanished without a FIN (a NAT forgot
 * us, a laptop slept) would otherwise hold the connection and its streams forever.
 */
import { ConnectionError, ErrorCode } from "./errors.ts";
import { encodePing } from "./frame.ts";
import type { FrameWriter } from "./frame_writer.ts";

export interface HealthCheckOptions {
  /** Send a PING after this long without reading anything; 0 = off. */
  readIdleTimeout: number;
  /** Fail when that PING is not answered within this. */
  pingTimeout: number;
  /** Called once when the peer did not answer in time. */
  onFailure: (err: ConnectionError) => void;
}

export class HealthCheck {
  #writer: FrameWriter;
  #opts: HealthCheckOptions;
  #lastRead = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #pingData: Uint8Array | undefined;
  #stopped = false;

  constructor(writer: FrameWriter, options: HealthCheckOptions) {
    this.#writer = writer;
    this.#opts = options;
  }

  /** When something last arrived from the peer (performance.now() ms; 0 before the start). */
  get lastRead(): number {
    return this.#lastRead;
  }

  /** Something arrived from the peer. */
  read(): void {
    this.#lastRead = performance.now();
  }

  /** Starts watching (once the peer's SETTINGS arrived). */
  start(): void {
    this.#lastRead = performance.now();
    this.#arm(this.#opts.readIdleTimeout);
  }

  /** A PING frame from the peer. */
  onPing(f: { ack: boolean; data: Uint8Array }): void {
    if (!f.ack) {
      // RFC 9113 §6.7: "Receivers of a PING frame that does not include an ACK flag MUST send
      // a PING frame with the ACK flag set in response, with an identical frame payload."
      this.#writer.urgent(encodePing(true, f.data));
    } else if (this.#pingData && f.data.every((b, i) => b === this.#pingData![i])) {
      this.#pingData = undefined;
      clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
      this.#arm(this.#opts.readIdleTimeout);
    }
  }

  /** Stops for good (the connection is closing). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#pingTimer);
    this.#idleTimer = this.#pingTimer = undefined;
  }

  #arm(ms: number): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#opts.readIdleTimeout <= 0 || this.#stopped) return;
    this.#idleTimer = setTimeout(() => this.#idleCheck(), Math.max(1, ms));
  }

  #idleCheck(): void {
    this.#idleTimer = undefined;
    if (this.#stopped || this.#pingData) return;
    const idle = performance.now() - this.#lastRead;
    const timeout = this.#opts.readIdleTimeout;
    if (idle < timeout) {
      this.#arm(timeout - idle);
      return;
    }
    // Nothing read for readIdleTimeout: ask the peer to prove it is alive.
    this.#pingData = crypto.getRandomValues(new Uint8Array(8));
    this.#writer.urgent(encodePing(false, this.#pingData));
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = undefined;
      this.#opts.onFailure(
        new ConnectionError(
          ErrorCode.INTERNAL_ERROR,
          `health check failed: no PING ACK within ${this.#opts.pingTimeout} ms after ${timeout} ms idle`,
        ),
      );
    }, this.#opts.pingTimeout);
  }
}
