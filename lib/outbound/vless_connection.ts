/**
 * One proxied VLESS connection over one transport stream (the client side). Its request header
 * waits for the client's first bytes on its owner's queue (one timer for all its connections).
 */
import type { Deadline, DeadlineQueue } from "../net/deadline_queue.ts";
import { ForwardingWriter } from "../net/forwarding_writer.ts";
import { formatDestination } from "../net/destination.ts";
import type { Destination } from "../net/destination.ts";
import { abortively, type Duplex, type HeldDuplex } from "../net/duplex.ts";
import type { Logger } from "../log.ts";
import { ResponseHeaderStripper, VLESS_VERSION } from "../vless/header.ts";
import { encodeUdpPacket, UdpPacketDecoder } from "../vless/udp.ts";

/** What a connection tells the outbound that made it (VlessOutbound). */
export interface VlessConnectionOwner {
  /** The connection was torn down. */
  closed(conn: VlessConnection): void;
  readonly logger: Logger;
  /**
   * The wait for the client's first bytes (FIRST_PAYLOAD_WAIT_MS), one timer for all of the
   * owner's connections: when it runs out the header goes alone.
   */
  readonly headerWait: DeadlineQueue;
}

/**
 * One proxied connection over one transport stream.
 *
 * Sending: the first write carries header + payload in one chunk; if the client writes nothing
 * within {@link FIRST_PAYLOAD_WAIT_MS} the header goes alone, so servers that speak first still get
 * the request. Closing half-closes the transport stream. Receiving: the payload after the response
 * header, ending as soon as the transport stream ends. For UDP, one datagram per chunk both ways,
 * length-framed on the wire.
 *
 * For TCP and Mux the connection is also a {@link HeldDuplex}: `reader` and `writer` work on the
 * transport stream's own reader and writer — the relay uses them, so no ReadableStream or
 * WritableStream is made per connection, and once the response header is through, reads and
 * writes go straight to the transport. `readable`/`writable` (the only ends for UDP) are streams
 * made on first use. A consumer uses one pair or the other, not both.
 */
export class VlessConnection implements Duplex, Partial<HeldDuplex> {
  /** The header's wait for the first payload, while the header is held. */
  #headerDeadline: Deadline | undefined;
  readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #inner: Duplex;
  readonly #owner: VlessConnectionOwner;
  readonly #dest: Destination;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #stripper = new ResponseHeaderStripper(VLESS_VERSION);
  readonly #packets: UdpPacketDecoder | null;
  #header: Uint8Array | null;
  #closed = false;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /**
   * Writes reach the transport stream as they are (or as a copy, header in front): done with a
   * chunk exactly when the transport is.
   */
  get copiesWrites(): boolean {
    return this.#inner.copiesWrites === true;
  }

  constructor(
    inner: Duplex,
    header: Uint8Array,
    udp: boolean,
    dest: Destination,
    owner: VlessConnectionOwner,
  ) {
    this.#inner = inner;
    this.#header = header;
    this.#dest = dest;
    this.#owner = owner;
    this.#packets = udp ? new UdpPacketDecoder() : null;
    // The transport stream's own held ends when it offers them (an HTTP/2 stream: no
    // ReadableStream or WritableStream made for it), else readers of its streams.
    const held = inner as Partial<HeldDuplex>;
    this.#writer = held.writer ?? inner.writable.getWriter();
    this.#reader = held.reader ?? inner.readable.getReader();
    if (!udp) {
      this.reader = new HeldReader(this, this.#reader);
      this.writer = new HeldWriter(this, this.#writer);
    }
    this.#headerDeadline = owner.headerWait.add(() => this.sendHeaderAlone());
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>(new Source(this), {
      highWaterMark: 0,
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>(new Sink(this));
  }

  /** True once the response header has been read whole: every further chunk is payload. */
  get headerRead(): boolean {
    return this.#stripper.header !== null;
  }

  /**
   * Reads transport chunks until one carries payload (the response header stripped), or EOF.
   * For TCP and Mux; rejects with an explanation when the server cuts us off before the header.
   */
  async readPayload(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const stripper = this.#stripper;
    // Each round consumes one transport chunk; it repeats only while chunks carry header bytes,
    // so it ends at EOF at the latest.
    for (;;) {
      const result = await this.#readInner();
      if (result.done) {
        this.#finish();
        return result;
      }
      let payload: Uint8Array;
      try {
        payload = stripper.header === null ? stripper.push(result.value) : result.value;
      } catch (err) {
        this.close();
        throw err;
      }
      if (payload.byteLength > 0) return { done: false, value: payload };
    }
  }

  async #readInner(): Promise<ReadableStreamReadResult<Uint8Array>> {
    try {
      return await this.#reader.read();
    } catch (err) {
      this.close();
      // A server refusing us (wrong user id) may cut the transport rather than end it cleanly
      // (a TLS close without close_notify, a TCP reset): say what that means.
      if (this.#stripper.header === null && isCut(err)) {
        throw new Error(
          "server closed the connection before sending the VLESS response header " +
            "(wrong user id, target unreachable, or not a VLESS server)",
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** EOF from the transport: fails when it cut a response header or a datagram short. */
  #finish(): void {
    try {
      this.#stripper.finish();
      this.#packets?.finish();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get holdsHeader(): boolean {
    return this.#header !== null;
  }

  #takeHeader(): Uint8Array | null {
    const h = this.#header;
    if (h === null) return null;
    this.#header = null;
    this.#headerDeadline?.cancel();
    this.#headerDeadline = undefined;
    return h;
  }

  sendHeaderAlone(): void {
    const h = this.#takeHeader();
    // A failure here fails the next write or close too, which is where the caller hears of it.
    if (h) this.#writer.write(h).catch(ignore);
  }

  write(chunk: Uint8Array): Promise<void> | undefined {
    let data = chunk;
    if (this.#packets) {
      if (chunk.byteLength === 0) return;
      try {
        data = encodeUdpPacket(chunk);
      } catch (err) {
        // UDP is lossy: drop the datagram, keep the association.
        this.#owner.logger.warn(
          `vless: ${formatDestination(this.#dest)}: dropped a datagram: ${(err as Error).message}`,
        );
        return;
      }
    }
    if (this.#header !== null) data = this.withHeader(data);
    // Wait for room in the transport's queue, not for the bytes to be consumed: backpressure
    // still holds, and a failed write errors the stream, failing the next write or close.
    const writer = this.#writer;
    if ((writer.desiredSize ?? 0) > 0) {
      writer.write(data).catch(ignore);
      return;
    }
    return writer.ready.then(() => {
      writer.write(data).catch(ignore);
    });
  }

  /** The chunk to send for `chunk`: with the request header in front if it is still held. */
  withHeader(chunk: Uint8Array): Uint8Array {
    const h = this.#takeHeader();
    if (h === null) return chunk;
    const first = new Uint8Array(h.byteLength + chunk.byteLength);
    first.set(h);
    first.set(chunk, h.byteLength);
    return first;
  }

  async closeWritable(): Promise<void> {
    const h = this.#takeHeader();
    if (h) this.#writer.write(h).catch(ignore);
    await this.#writer.close();
  }

  abortWritable(reason: unknown): void {
    this.#takeHeader();
    this.#writer.abort(reason).catch(ignore);
    this.close();
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    const packets = this.#packets;
    if (!packets) {
      const result = await this.readPayload();
      if (result.done) controller.close();
      else controller.enqueue(result.value);
      return;
    }
    // Each round consumes one transport chunk; it repeats only while chunks carry no whole
    // datagram (header bytes, partial datagrams), so it ends at EOF at the latest.
    for (;;) {
      const result = await this.#readInner();
      if (result.done) {
        this.#finish();
        controller.close();
        return;
      }
      let payload = result.value;
      if (this.#stripper.header === null) {
        try {
          payload = this.#stripper.push(payload);
        } catch (err) {
          this.close();
          throw err;
        }
      }
      const got = packets.push(payload);
      for (const p of got) controller.enqueue(p);
      if (got.length > 0) return;
    }
  }

  cancelReadable(reason: unknown): void {
    this.#reader.cancel(reason).catch(ignore);
    this.close();
  }

  close(): void {
    this.#end(false);
  }

  /** The abortive close (the relay's, for a side cut short): the transport's reset if it has one. */
  reset(): void {
    this.#end(true);
  }

  #end(abortive: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#takeHeader();
    if (abortive) abortively(this.#inner);
    else this.#inner.close();
    this.#owner.closed(this);
  }
}

/** The writable's sink: VlessConnection's methods, called with the sink as `this`. */
class Sink implements UnderlyingSink<Uint8Array> {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection) {
    this.#conn = conn;
  }
  write(chunk: Uint8Array): Promise<void> | undefined {
    return this.#conn.write(chunk);
  }
  close(): Promise<void> {
    return this.#conn.closeWritable();
  }
  abort(reason: unknown): void {
    this.#conn.abortWritable(reason);
  }
}

/** The readable's source. */
class Source implements UnderlyingDefaultSource<Uint8Array> {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection) {
    this.#conn = conn;
  }
  pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    return this.#conn.pull(controller);
  }
  cancel(reason: unknown): void {
    this.#conn.cancelReadable(reason);
  }
}

/**
 * The relay's reader of a TCP/Mux connection: payload after the response header, then the
 * transport's own reads as they are.
 */
class HeldReader implements ReadableStreamDefaultReader<Uint8Array> {
  readonly #conn: VlessConnection;
  readonly #inner: ReadableStreamDefaultReader<Uint8Array>;
  constructor(conn: VlessConnection, inner: ReadableStreamDefaultReader<Uint8Array>) {
    this.#conn = conn;
    this.#inner = inner;
  }
  get closed(): Promise<void> {
    return this.#inner.closed;
  }
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    return this.#conn.headerRead ? this.#inner.read() : this.#conn.readPayload();
  }
  cancel(reason?: unknown): Promise<void> {
    this.#inner.cancel(reason).catch(ignore);
    this.#conn.close();
    return Promise.resolve();
  }
  releaseLock(): void {
    this.#inner.releaseLock();
  }
}

/**
 * The relay's writer of a TCP/Mux connection: the request header goes in front of the first
 * chunk (or alone, at close or after the first-payload wait); then straight to the transport,
 * whose `ready` is the backpressure.
 */
class HeldWriter extends ForwardingWriter {
  readonly #conn: VlessConnection;
  constructor(conn: VlessConnection, inner: WritableStreamDefaultWriter<Uint8Array>) {
    super(inner);
    this.#conn = conn;
  }
  override write(chunk: Uint8Array): Promise<void> {
    return this.inner.write(this.#conn.holdsHeader ? this.#conn.withHeader(chunk) : chunk);
  }
  override close(): Promise<void> {
    return this.#conn.closeWritable();
  }
  override abort(reason?: unknown): Promise<void> {
    this.#conn.abortWritable(reason);
    return Promise.resolve();
  }
}

function ignore(): void {}

/** Errors of a transport cut short rather than ended: no TLS close_notify, a TCP reset. */
function isCut(err: unknown): boolean {
  return err instanceof Deno.errors.UnexpectedEof || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe;
}
