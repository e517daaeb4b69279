import type { Duplex } from "../net/duplex.ts";

/** A VLESS server as the transport dials it: `address` is an IP literal or a domain. */
export interface ServerAddress {
  address: string;
  port: number;
}

/**
 * How an outbound reaches its server: one method that opens a byte stream. The VLESS pipeline never
 * knows whether the stream is a TCP socket, a TLS session or an HTTP/2 stream in a pooled
 * connection.
 */
export interface Transport {
  /** "tcp", "tls" or "http": the outbound's flow rules depend on it. */
  readonly name: string;
  /** Opens one stream to `server`; rejects with an error naming the server and the cause. */
  open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex>;
  /**
   * Optional: opens a stream to `server` at once when that needs no waiting (a pooled connection
   * with room), else undefined and the caller uses `open()`. The common case of a pooling
   * transport, without the deadline, signal and promises an `open()` attempt carries.
   */
  openNow?(server: ServerAddress): Duplex | undefined;
  /** Drops pooled connections; streams already opened are closed too. */
  close(): void;
  /**
   * Optional, for transports that pool connections (where a stream opening proves nothing about
   * the server): the transport reports what it learns about each server's health. Called once,
   * by the outbound that owns the transport. Without it the outbound judges by open() alone.
   */
  watch?(events: TransportHealthEvents): void;
}

/** What a pooling transport tells its outbound about servers (see `ServerHealth`). */
export interface TransportHealthEvents {
  /** `server` proved alive: a new connection's handshake took `handshakeMs`, or a stream was answered. */
  up(server: ServerAddress, handshakeMs?: number): void;
  /** `server` failed: a dial or handshake, a health check, a stream left unanswered. */
  down(server: ServerAddress, err: Error): void;
  /** `server` is suspect (silent for a while after a stream opened): avoid it for `ms`. */
  suspect?(server: ServerAddress, ms: number): void;
}
