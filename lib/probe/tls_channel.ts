/**
 * TLS to the probe's target inside a proxied connection. Deno's own TLS (`Deno.startTls`) only
 * takes a `Deno.Conn`, never an arbitrary stream; node:tls `connect({ socket })` takes any node
 * Duplex, so the proxied channel is adapted to one and the TLS session read back as a channel.
 * Certificates are verified as usual, against `serverName`: by the system roots, or by `caCerts`.
 */
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Duplex as NodeDuplex } from "node:stream";
import type { ByteChannel } from "./byte_channel.ts";

export interface TlsChannelOptions {
  /** SNI and the name the certificate must carry. */
  serverName: string;
  /**
   * Trust only these CAs (PEM) instead of the system roots, as curl's --cacert: node:tls's `ca`
   * replaces the default roots.
   */
  caCerts?: string[];
}

/** Runs a TLS handshake over `inner` and returns the session as a channel. */
export function connectTlsChannel(
  inner: ByteChannel,
  opts: TlsChannelOptions,
): Promise<ByteChannel> {
  const socket = new NodeDuplex({
    read() {
      inner.read().then(
        (chunk) => this.push(chunk),
        (err) => this.destroy(err),
      );
    },
    write(chunk: Uint8Array, _encoding, callback) {
      inner.write(chunk).then(() => callback(), callback);
    },
    final(callback) {
      callback();
    },
    destroy(err, callback) {
      inner.close();
      callback(err);
    },
  });
  const tls = tlsConnect({
    socket,
    servername: opts.serverName,
    ...(opts.caCerts && opts.caCerts.length > 0 ? { ca: opts.caCerts } : {}),
    ALPNProtocols: ["http/1.1"],
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      tls.destroy();
      socket.destroy();
      reject(err);
    };
    tls.once("error", onError);
    tls.once("secureConnect", () => {
      tls.off("error", onError);
      resolve(new TlsSocketChannel(tls, socket));
    });
  });
}

class TlsSocketChannel implements ByteChannel {
  readonly #tls: TLSSocket;
  readonly #socket: NodeDuplex;
  readonly #chunks: AsyncIterator<Uint8Array>;

  constructor(tls: TLSSocket, socket: NodeDuplex) {
    this.#tls = tls;
    this.#socket = socket;
    this.#chunks = tls[Symbol.asyncIterator]();
  }

  write(chunk: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tls.write(chunk, (err) => err ? reject(err) : resolve());
    });
  }

  async read(): Promise<Uint8Array | null> {
    const { done, value } = await this.#chunks.next();
    return done ? null : value;
  }

  close(): void {
    this.#tls.destroy();
    this.#socket.destroy();
  }
}
