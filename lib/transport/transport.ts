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
  /** Drops pooled connections; streams already opened are closed too. */
  close(): void;
}
