/**
 * The RFC 9113 §5.1 state of one stream, for either role: END_STREAM each way and resets move it
 * towards "closed", and frames the peer may no longer send on it are stream errors.
 */
import { ErrorCode, StreamError } from "./errors.ts";

/**
 * RFC 9113 §5.1 states a stream goes through. "reserved" states need server push, which neither
 * role uses (our client sends SETTINGS_ENABLE_PUSH = 0; our server never pushes).
 */
export type StreamState =
  | "idle"
  | "open"
  | "half-closed-local"
  | "half-closed-remote"
  | "closed";

/** The states of a stream once its HEADERS opened it. */
export type OpenedStreamState = Exclude<StreamState, "idle">;

export class StreamStateMachine {
  #id: number;
  #peerName: string;
  #state: OpenedStreamState;
  /** The options, kept for `onClosed` (called as a method: it may be a shared object's). */
  #events: { onClosed(): void };

  /**
   * `state` is where the opening HEADERS left the stream; `onClosed` is called once it reaches
   * "closed"; `peerName` names the peer in errors ("peer", "client").
   */
  constructor(
    id: number,
    options: { state: OpenedStreamState; peerName: string; onClosed: () => void },
  ) {
    this.#id = id;
    this.#state = options.state;
    this.#peerName = options.peerName;
    this.#events = options;
  }

  get state(): OpenedStreamState {
    return this.#state;
  }

  /** We sent END_STREAM. */
  endLocal(): void {
    this.#set(this.#state === "open" ? "half-closed-local" : "closed");
  }

  /** The peer sent END_STREAM. */
  endRemote(): void {
    this.#set(this.#state === "open" ? "half-closed-remote" : "closed");
  }

  /** Reset or failed. */
  close(): void {
    this.#set("closed");
  }

  /** Throws unless the peer may still send `what` (HEADERS, DATA) on the stream. */
  checkRemoteOpen(what: string): void {
    // RFC 9113 §5.1: in "half-closed (remote)", "If an endpoint receives additional frames, other
    // than WINDOW_UPDATE, PRIORITY, or RST_STREAM, for a stream that is in this state, it MUST
    // respond with a stream error of type STREAM_CLOSED."
    if (this.#state === "half-closed-remote" || this.#state === "closed") {
      throw new StreamError(
        this.#id,
        ErrorCode.STREAM_CLOSED,
        `reset stream ${this.#id}: ${this.#peerName} sent ${what} after END_STREAM`,
      );
    }
  }

  #set(next: OpenedStreamState): void {
    if (this.#state === "closed") return;
    this.#state = next;
    if (next === "closed") this.#events.onClosed();
  }
}
