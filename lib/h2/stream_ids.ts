/**
 * Which stream ids are legal where, for either role (RFC 9113 §5.1, §5.1.1): a client opens odd
 * ids, a server even ones, each side in increasing order; ids above the last one a side opened are
 * "idle"; and the ids of streams we reset or that closed are remembered for a while, because the
 * RFC answers late frames on them differently.
 */
import { ConnectionError, ErrorCode, StreamError } from "./errors.ts";

/**
 * Ids of streams we reset (late frames on them are ignored) and of streams that closed (frames on
 * them are STREAM_CLOSED, not frames on an idle stream): the most recent.
 */
const MAX_REMEMBERED_IDS = 1024;

export class StreamIds {
  #isClient: boolean;
  /** RFC 9113 §5.1.1: the highest stream id each side has opened; new ones must exceed it. */
  #lastLocal = 0;
  #lastPeer = 0;
  #reset = new Set<number>();
  #closed = new Set<number>();

  /** `isClient`: we are the client, and odd ids are ours. */
  constructor(isClient: boolean) {
    this.#isClient = isClient;
  }

  /** The highest id the peer has opened: the last stream we processed, for our GOAWAY. */
  get lastPeer(): number {
    return this.#lastPeer;
  }

  /** Ids of our parity are the ones we open. */
  isLocal(id: number): boolean {
    return (id % 2 === 1) === this.#isClient;
  }

  /** We opened stream `id`. */
  openedLocal(id: number): void {
    if (id > this.#lastLocal) this.#lastLocal = id;
  }

  /** We sent RST_STREAM on `id`. */
  reset(id: number): void {
    remember(this.#reset, id);
  }

  /** Stream `id` reached "closed". */
  closed(id: number): void {
    remember(this.#closed, id);
  }

  /**
   * RFC 9113 §5.1: "idle: ... Receiving any frame other than HEADERS or PRIORITY on a stream in
   * this state MUST be treated as a connection error of type PROTOCOL_ERROR." Idle = an id above
   * every one its side has opened so far.
   */
  checkNotIdle(id: number, what: string): void {
    if (id > (this.isLocal(id) ? this.#lastLocal : this.#lastPeer)) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
    }
  }

  /** DATA on a stream that is not open (and not idle): ignored, or a stream error. */
  checkDataOnClosed(id: number): void {
    // RFC 9113 §5.1: "An endpoint MUST ignore frames that it receives on closed streams after it
    // has sent a RST_STREAM frame." Otherwise §6.1: DATA on a stream not "open" or "half-closed
    // (local)" is a stream error of type STREAM_CLOSED.
    if (this.#reset.has(id)) return;
    throw new StreamError(
      id,
      ErrorCode.STREAM_CLOSED,
      `reset stream ${id}: DATA on a closed stream`,
    );
  }

  /**
   * A header block on `id`, which no open stream has (its block is decoded already): true when it
   * opens a new stream of the peer's (then the peer's last id is `id`), false when it is to be
   * ignored; throws for anything else.
   */
  headersOpen(id: number): boolean {
    const local = this.isLocal(id);
    if (local && id > this.#lastLocal) {
      // RFC 9113 §5.1.1: "Streams initiated by a client MUST use odd-numbered stream identifiers;
      // those initiated by the server MUST use even-numbered stream identifiers." Ours are never
      // the peer's to open.
      const [ours, theirs] = this.#isClient ? ["odd", "even"] : ["even", "odd"];
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        `HEADERS on ${ours} stream ${id}: ${
          this.#isClient ? "servers" : "clients"
        } open ${theirs} ones`,
      );
    }
    if (!local && id > this.#lastPeer) {
      this.#lastPeer = id;
      return true;
    }
    // RFC 9113 §5.1: "An endpoint MUST ignore frames that it receives on closed streams after it
    // has sent a RST_STREAM frame".
    if (this.#reset.has(id)) return false;
    // A stream that ended both ways: "for an endpoint that receives any frames after receiving a
    // frame with the END_STREAM flag set, it MUST treat that as a connection error of type
    // STREAM_CLOSED".
    if (this.#closed.has(id)) {
      throw new ConnectionError(ErrorCode.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    }
    // One of ours closed too long ago to remember how: nothing to tell, nothing to do.
    if (local) return false;
    // RFC 9113 §5.1.1: "The identifier of a newly established stream MUST be numerically greater
    // than all streams that the initiating endpoint has opened ... An endpoint that receives an
    // unexpected stream identifier MUST respond with a connection error of type PROTOCOL_ERROR."
    throw new ConnectionError(
      ErrorCode.PROTOCOL_ERROR,
      `HEADERS opening stream ${id} after stream ${this.#lastPeer}: ids must increase`,
    );
  }
}

function remember(ids: Set<number>, id: number): void {
  ids.add(id);
  if (ids.size > MAX_REMEMBERED_IDS) ids.delete(ids.values().next().value!);
}
