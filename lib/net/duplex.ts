/**
 * A bidirectional byte stream, shaped like the `readable`/`writable` half of `Deno.Conn`.
 *
 * Closing `writable` is a half-close (the peer sees EOF, we can still read). `close()` tears down
 * both directions at once and never throws. Every layer of dray — inbound connections, outbound
 * connections, HTTP/2 streams, TLS sockets — is passed around as a `Duplex`.
 *
 * For a UDP-carrying Duplex (network "udp"), every chunk is exactly one datagram, both ways.
 */
export interface Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  close(): void;
  /**
   * Abortive close: the peer sees the connection reset (TCP RST, RST_STREAM) instead of an EOF.
   * How a relay tells one side that the other side's stream was cut short. Absent where the
   * transport cannot say so; `abortively()` then closes. (ConnDuplex has it, and closes with a FIN
   * where conn_reset.ts cannot reset its conn.)
   */
  reset?(): void;
  /**
   * True when `writable` is done with a chunk's memory once its write resolves (a socket: the
   * bytes were copied into the kernel or the TLS session), so a writer may reuse that buffer for
   * its next write. False or absent for writables that keep the chunk (an in-memory pipe hands the
   * very array to its reader).
   */
  readonly copiesWrites?: boolean;
}

/**
 * A Duplex whose reader and writer someone already holds: a proxy handshake read and wrote
 * through them, and hands them on as they are. Releasing a stream lock builds a TypeError with a
 * stack trace for the released reader's or writer's `closed` promise (~12 µs each, measured, and
 * kept alive as long as the connection); handing the locked ends on costs nothing.
 */
export interface HeldDuplex {
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  close(): void;
  /** As {@link Duplex.copiesWrites}, for `writer`. */
  readonly copiesWrites?: boolean;
  /** As Duplex.reset. */
  reset?(): void;
}

/** Resets `d` where it can (Duplex.reset), else closes it. Never throws. */
export function abortively(d: Duplex | HeldDuplex): void {
  if (d.reset) d.reset();
  else d.close();
}
