import { ConnDuplex } from "../net/conn_duplex.ts";
import { addressKind, type Destination, formatDestination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";
import { closeQuietly } from "../net/close_quietly.ts";

export interface FreedomOptions {
  tag?: string;
  /** Dials TCP; defaults to `Deno.connect`. Tests inject failures and counters here. */
  connect?: (options: Deno.ConnectOptions) => Promise<Deno.Conn>;
  /** Opens a UDP socket; defaults to `Deno.listenDatagram`. */
  listenDatagram?: (options: Deno.UdpListenOptions & { transport: "udp" }) => Deno.DatagramConn;
  /** Resolves a domain for UDP destinations; defaults to A then AAAA via `Deno.resolveDns`. */
  resolve?: (host: string) => Promise<string>;
}

/** Datagrams waiting to be read by a slow consumer before new ones are dropped. */
const UDP_QUEUE = 64;

/**
 * Connects directly to the destination (v2ray's `freedom`). TCP goes through `ConnDuplex` for real
 * half-close; UDP gets its own socket per `open()`, one datagram per chunk, accepting replies only
 * from the destination's address.
 */
export class FreedomOutbound implements Outbound {
  readonly tag: string;
  #connect: (options: Deno.ConnectOptions) => Promise<Deno.Conn>;
  #listen: (options: Deno.UdpListenOptions & { transport: "udp" }) => Deno.DatagramConn;
  #resolve: (host: string) => Promise<string>;

  constructor(options: FreedomOptions = {}) {
    this.tag = options.tag ?? "direct";
    this.#connect = options.connect ?? ((o) => Deno.connect(o));
    this.#listen = options.listenDatagram ?? ((o) => Deno.listenDatagram(o));
    this.#resolve = options.resolve ?? resolveHost;
  }

  async open(dest: Destination, options: OpenOptions = {}): Promise<Duplex> {
    if (dest.port < 1 || dest.port > 65535) {
      throw new RangeError(`Cannot open ${formatDestination(dest)}: port out of range`);
    }
    if (dest.network === "udp") return await this.#openUdp(dest, options);
    try {
      const conn = await this.#connect({
        hostname: dest.host,
        port: dest.port,
        transport: "tcp",
        signal: options.signal,
      });
      if (options.signal?.aborted) {
        conn.close();
        throw options.signal.reason;
      }
      // Proxied traffic is often interactive (ssh, request/response); don't let Nagle delay it.
      if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
      return new ConnDuplex(conn);
    } catch (err) {
      throw new (errorClass(err))(`Cannot connect to ${formatDestination(dest)}: ${message(err)}`, {
        cause: err,
      });
    }
  }

  async #openUdp(dest: Destination, options: OpenOptions): Promise<Duplex> {
    let ip: string;
    try {
      ip = addressKind(dest.host) === "domain" ? await this.#resolve(dest.host) : dest.host;
    } catch (err) {
      throw new Error(`Cannot resolve ${formatDestination(dest)}: ${message(err)}`, { cause: err });
    }
    options.signal?.throwIfAborted();
    const v6 = addressKind(ip) === "ipv6";
    const socket = this.#listen({ transport: "udp", hostname: v6 ? "::" : "0.0.0.0", port: 0 });
    return new UdpSocketDuplex(socket, { transport: "udp", hostname: ip, port: dest.port });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One UDP socket talking to one peer, as a Duplex of datagrams. */
class UdpSocketDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  #socket: Deno.DatagramConn;
  #closed = false;

  constructor(socket: Deno.DatagramConn, peer: Deno.NetAddr) {
    this.#socket = socket;
    const same = (a: Deno.NetAddr) =>
      unmap(a.hostname) === unmap(peer.hostname) && a.port === peer.port;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        // Bounded: stray datagrams from other addresses are skipped, at most 1024 per pull.
        for (let i = 0; i < 1024; i++) {
          let data: Uint8Array, from: Deno.Addr;
          try {
            [data, from] = await socket.receive();
          } catch (err) {
            if (this.#closed) return controller.close();
            throw err;
          }
          if (same(from as Deno.NetAddr)) return controller.enqueue(data);
        }
      },
      cancel: () => this.close(),
    }, new CountQueuingStrategy({ highWaterMark: UDP_QUEUE }));
    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        await socket.send(chunk, peer);
      },
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#socket);
  }
}

function unmap(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1] : host;
}

async function resolveHost(host: string): Promise<string> {
  if (host === "localhost") return "127.0.0.1";
  try {
    const a = await Deno.resolveDns(host, "A");
    if (a.length > 0) return a[0];
  } catch {
    // fall through to AAAA
  }
  const aaaa = await Deno.resolveDns(host, "AAAA");
  if (aaaa.length === 0) throw new Deno.errors.NotFound(`no address for ${host}`);
  return aaaa[0];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Keeps the Deno error class (ConnectionRefused, TimedOut…) so inbounds can pick their reply. */
function errorClass(err: unknown): new (message: string, options?: ErrorOptions) => Error {
  if (err instanceof Error && Object.values(Deno.errors).some((c) => err.constructor === c)) {
    return err.constructor as new (message: string, options?: ErrorOptions) => Error;
  }
  if (err instanceof Error && /lookup address/i.test(err.message)) return Deno.errors.NotFound;
  return Error;
}
