import { toError } from "../error_message.ts";
import { unwatchAbort, watchAbort } from "./abort_watch.ts";
import { giveBack } from "./buffer_lender.ts";
import { abortively, type Duplex, type HeldDuplex } from "./duplex.ts";
import { LINGER_MS } from "./lingering_close.ts";
import { waitAtMost } from "./wait_at_most.ts";
import { IdleTimer } from "./idle_timer.ts";
import type { Deadlines } from "./deadline_queue.ts";

/**
 * Copies bytes both ways between an inbound connection and an outbound one, the heart of every
 * proxied connection.
 *
 * Backpressure: each direction is a plain loop that reads one chunk, waits for the destination's
 * `writer.ready`, and hands the chunk over. At most two chunks per direction are held by the relay
 * at a time (one being written, one read and waiting for `ready`), plus whatever the two streams
 * queue themselves (`ConnDuplex`: reads of up to 64 KiB with a zero-size read queue and a one-chunk
 * write queue). So a TCP connection costs at most ~4 chunks = 256 KiB of buffering in the relay,
 * and a client that stops reading stops us reading from the remote, which slows the remote down.
 *
 * Timeouts follow v2ray's policy: one activity timer for the whole connection. While both
 * directions are open it fires after `connIdle` ms with no bytes either way. When the uplink
 * (client → remote) reaches EOF, the timer is reset to `downlinkOnly`; when the downlink does, to
 * `uplinkOnly`; a zero `uplinkOnly`/`downlinkOnly` ends the connection right then. A direction
 * ended by its destination (which stopped taking bytes) changes no limit. `connIdle <= 0` (or
 * Infinity) disables the idle limit.
 */
/**
 * The reason a finished relay's streams are cancelled and aborted with. One shared, never-thrown
 * value: nothing reports it (isNormalClose() treats Interrupted as a normal ending).
 */
const RELAY_ENDED = new Deno.errors.Interrupted("relay ended");

export interface RelayOptions {
  /** Ms without traffic either way before the connection is closed. */
  connIdle: number;
  /** Ms the uplink may stay idle after the downlink has ended. */
  uplinkOnly: number;
  /** Ms the downlink may stay idle after the uplink has ended. */
  downlinkOnly: number;
  /** Aborting tears both sides down (shutdown). */
  signal?: AbortSignal;
  /** Where the idle timer's checks go (the dispatcher's queues); default a timer of its own. */
  deadlines?: Deadlines;
}

/**
 * How long a cut-short direction waits for its last write to reach the destination before the
 * destination is reset (a reader that stopped reading must not hold the relay forever).
 */
const CUT_FLUSH_MS = 5_000;

/**
 * Why the relay ended. "cut": one side's stream failed before its end (an HTTP/2 stream reset
 * before END_STREAM, a TCP reset, a TLS stream cut without close_notify): what it delivered was
 * handed on, then the other side was reset (`abortively`), never half-closed as if at EOF.
 */
export type RelayEnding = "eof" | "idle" | "half-closed" | "aborted" | "reset" | "error" | "cut";

export interface RelayResult {
  /** Bytes copied client → remote. */
  up: number;
  /** Bytes copied remote → client. */
  down: number;
  /**
   * Set for failures that are not a normal ending (resets and broken pipes are normal), and for
   * "cut": the error that cut the stream short.
   */
  error?: Error;
  ended: RelayEnding;
  /** With "cut": whose stream was cut ("remote": the downlink, "client": the uplink). */
  cutBy?: "client" | "remote";
}

/**
 * Relays until both directions reach EOF, the policy timers fire, `signal` aborts, or either side
 * fails. EOF on one side is passed on as a half-close of the other side's writable. A read that
 * fails is not an EOF: the bytes read before it are written on, then the other side is reset
 * (ended "cut"), so a truncated download never looks complete. Both duplexes are closed when the
 * relay ends. Never throws.
 *
 * Lent buffers (buffer_lender.ts) come back here and only here: once a write to a side that
 * `copiesWrites` has resolved, its chunk is given back to whoever lent it. Readers, framers and
 * transports in between never call the pool; one that keeps a chunk passes on a copy.
 */
export async function relay(
  client: Duplex | HeldDuplex,
  remote: Duplex | HeldDuplex,
  opts: RelayOptions,
): Promise<RelayResult> {
  const state = { up: 0, down: 0 };
  let ended: RelayEnding | undefined;
  let error: Error | undefined;
  let cutBy: "client" | "remote" | undefined;
  let timer: IdleTimer | undefined;
  const finished = Promise.withResolvers<void>();
  /** Directions still copying. */
  let open = 2;

  const upReader = readerOf(client);
  const upWriter = writerOf(remote);
  const downReader = readerOf(remote);
  const downWriter = writerOf(client);

  const teardown = (why: RelayEnding, err?: unknown) => {
    if (ended !== undefined) return;
    ended = why;
    if (err !== undefined && !isNormalClose(err)) {
      ended = "error";
      error = toError(err);
    }
    timer?.stop();
    if (opts.signal) unwatchAbort(opts.signal, onAbort);
    if (ended === "eof" && eofPassed.down && over.up && !sourceEnded.up) {
      // The client has its whole response and our FIN, but what it sent since the remote stopped
      // taking the upload (an h2 server's RST_STREAM NO_ERROR after its response, see copy()) is
      // unread: closing a socket with input unread sends a RST, and a RST discards what is still in
      // the send queue — the response's tail (measured: 3.5 of 16 MiB lost to a slow client that
      // went on sending, the relay logging "eof" with every byte written). The client gets
      // LINGER_MS to read it and close, while what it sends is read and dropped.
      remote.close();
      drainThenClose(client, upReader).then(release);
      return;
    }
    client.close();
    remote.close();
    release();
  };

  /**
   * The source of direction `key` failed: after its last write has landed (bounded), the
   * destination is reset and the source closed.
   */
  const cutShort = async (
    key: "up" | "down",
    err: unknown,
    lastWrite: Promise<void> | undefined,
  ) => {
    if (ended !== undefined) return;
    ended = "cut";
    error = toError(err);
    timer?.stop();
    if (opts.signal) unwatchAbort(opts.signal, onAbort);
    // The other direction stops at its next step (ended is set); its reader is cancelled below.
    if (lastWrite) await waitAtMost(lastWrite.catch(() => {}), CUT_FLUSH_MS);
    const [source, dest] = key === "down" ? [remote, client] : [client, remote];
    abortively(dest);
    source.close();
    release();
  };

  /**
   * Cancels/aborts, so pending reads and writes settle even on a Duplex whose close() is lazy.
   * With a reason: aborting a WritableStream without one makes its AbortSignal build a
   * DOMException, stack trace and all (~10 µs each, two per connection).
   */
  const release = () => {
    for (
      const p of [
        upReader.cancel(RELAY_ENDED),
        downReader.cancel(RELAY_ENDED),
        upWriter.abort(RELAY_ENDED),
        downWriter.abort(RELAY_ENDED),
      ]
    ) {
      p.catch(() => {});
    }
    finished.resolve();
  };

  // After one direction's EOF, the uplinkOnly/downlinkOnly limit running out is how v2ray ends a
  // connection whose other side never closes: a normal ending, not a stall.
  const onIdle = () => teardown(open === 1 ? "half-closed" : "idle");

  const onAbort = () => teardown("aborted");
  if (opts.signal?.aborted) {
    teardown("aborted");
  } else {
    if (opts.signal) watchAbort(opts.signal, onAbort);
    timer = new IdleTimer(opts.connIdle, onIdle, opts.deadlines);
  }

  /** `nextTimeout` undefined: the limit stays (see `reset` in copy()). */
  const directionDone = (nextTimeout: number | undefined) => {
    if (ended !== undefined) return;
    if (--open === 0) return teardown("eof");
    if (nextTimeout === undefined) return;
    // A zero limit ends the connection as soon as one direction has.
    if (nextTimeout <= 0) return teardown("eof");
    timer?.set(nextTimeout);
  };

  /** Directions that are over (EOF passed on, or their destination stopped taking bytes). */
  const over = { up: false, down: false };
  /** Directions whose source gave its EOF, and those that passed it on (the destination's FIN). */
  const sourceEnded = { up: false, down: false };
  const eofPassed = { up: false, down: false };
  const finish = (key: "up" | "down", nextTimeout: number | undefined) => {
    if (over[key]) return;
    over[key] = true;
    directionDone(nextTimeout);
  };

  const copy = async (
    reader: ReadableStreamDefaultReader<Uint8Array>,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    key: "up" | "down",
    copies: boolean,
  ): Promise<void> => {
    // A destination that stops taking bytes ends this direction only. The other may still have
    // bytes to deliver: a server that resets its stream with NO_ERROR after a complete response
    // (RFC 9113 §8.1: "stop sending the request") fails our uplink writes, while the response it
    // completed is still being read out to a slow client — tearing everything down here dropped
    // that response's tail and passed a FIN on (issue 13, bug 3). A destination that is really
    // gone fails its other direction's reads too, which ends that one ("cut").
    // The other direction keeps its limit (connIdle): uplinkOnly/downlinkOnly follow an EOF. That
    // response may wait seconds on a slow client, with nothing read meanwhile: 512 parallel
    // downloads through a loaded client lost up to 12 per run to a 1 s downlinkOnly, each cut
    // short with a FIN.
    const reset = () => {
      if (ended === undefined) finish(key, undefined);
    };
    // A write failure surfaces on the next `ready`/`closed`; catch it so it is never unhandled.
    writer.closed.catch(reset);
    /** The last write handed over: a cut waits for it before resetting the destination. */
    let lastWrite: Promise<void> | undefined;
    // One chunk per call, so that nothing names the last chunk while the loop waits for the next:
    // an idle connection spends its life suspended in `reader.read()`, and a suspended frame
    // holding the previous chunk kept its buffer alive (~3 KiB per idle proxied connection).
    const step = async (): Promise<boolean> => {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        // Not an EOF: never pass it on as a half-close.
        if (ended === undefined) {
          if (key === "up") cutBy = "client";
          else cutBy = "remote";
          cutShort(key, err, lastWrite);
        }
        return false;
      }
      if (r.done) sourceEnded[key] = true;
      if (ended !== undefined || r.done || over[key]) return false;
      timer?.touch();
      // The destination nearly always has room (one chunk is written at a time): only wait for
      // `ready` when it has none, instead of a turn of the microtask queue per chunk.
      if (!((writer.desiredSize ?? 0) > 0)) {
        await writer.ready;
        if (ended !== undefined || over[key]) return false;
      }
      const chunk = r.value;
      state[key] += chunk.byteLength;
      lastWrite = writer.write(chunk);
      if (copies) lastWrite.then(() => giveBack(chunk), reset);
      else lastWrite.catch(reset);
      return true;
    };
    while (await step());
    if (ended !== undefined || over[key]) return;
    // EOF from the source: pass it on as a half-close (TCP FIN) to the destination.
    await writer.close();
    eofPassed[key] = true;
  };

  const run = (
    reader: ReadableStreamDefaultReader<Uint8Array>,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    key: "up" | "down",
    copies: boolean,
    nextTimeout: () => number,
  ) =>
    copy(reader, writer, key, copies).then(
      () => finish(key, nextTimeout()),
      () => finish(key, nextTimeout()),
    );

  if (ended === undefined) {
    // After the uplink ends the downlink gets `downlinkOnly`, and the other way round.
    run(upReader, upWriter, "up", remote.copiesWrites === true, () => opts.downlinkOnly);
    run(downReader, downWriter, "down", client.copiesWrites === true, () => opts.uplinkOnly);
  }
  await finished.promise;
  const result: RelayResult = { up: state.up, down: state.down, ended: ended ?? "eof" };
  if (error) result.error = error;
  if (cutBy) result.cutBy = cutBy;
  return result;
}

/**
 * Reads and drops what `side` still sends (its chunks given back), until its EOF, a failed read
 * or LINGER_MS, then closes it. Never rejects.
 */
async function drainThenClose(
  side: Duplex | HeldDuplex,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<void> {
  const drain = async () => {
    try {
      // Bounded by LINGER_MS; the count is a second bound.
      for (let reads = 0; reads < 1_000_000; reads++) {
        const r = await reader.read();
        if (r.done) return;
        giveBack(r.value);
      }
    } catch {
      // A reset is an ending too.
    }
  };
  await waitAtMost(drain(), LINGER_MS);
  side.close();
}

/** The held reader if the side offers one (a Duplex may offer both), else a new one. */
function readerOf(d: Duplex | HeldDuplex): ReadableStreamDefaultReader<Uint8Array> {
  return (d as Partial<HeldDuplex>).reader ?? (d as Duplex).readable.getReader();
}

function writerOf(d: Duplex | HeldDuplex): WritableStreamDefaultWriter<Uint8Array> {
  return (d as Partial<HeldDuplex>).writer ?? (d as Duplex).writable.getWriter();
}

/**
 * True for the ways a connection normally ends from the other side: resets, broken pipes, a
 * resource closed under us, an aborted or canceled stream. These are not errors worth logging.
 */
export function isNormalClose(err: unknown): boolean {
  if (err === undefined || err === null) return true;
  if (
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.BadResource ||
    err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.UnexpectedEof
  ) return true;
  if (err instanceof DOMException && err.name === "AbortError") return true;
  return false;
}
