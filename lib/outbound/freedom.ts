import { lookup } from "node:dns/promises";
import { ConnDuplex } from "../net/conn_duplex.ts";
import {
  addressKind,
  type Destination,
  formatDestination,
  formatHostPort,
  unmapIpv4,
} from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { messageOf } from "../error_message.ts";

/**
 * v2ray's freedom `domainStrategy`: AsIs dials a domain as given (the system resolves it); UseIP,
 * UseIPv4 and UseIPv6 look it up first (A and AAAA, A only, AAAA only) and dial one of the
 * addresses at random. When the lookup fails or finds nothing, the domain is dialled as given,
 * as v2ray 4.34 does (proxy/freedom/freedom.go).
 */
export type DomainStrategy = "AsIs" | "UseIP" | "UseIPv4" | "UseIPv6";

/** Where freedom sends everything instead: "" address / 0 port keep the original one. */
export interface Redirect {
  address: string;
  port: number;
}

export interface FreedomOptions {
  tag?: string;
  /** Default "AsIs". */
  domainStrategy?: DomainStrategy;
  /** v2ray's `redirect`: every connection goes here instead (TCP and UDP alike). */
  redirect?: Redirect | null;
  /** Dials TCP; defaults to `Deno.connect`. Tests inject failures and counters here. */
  connect?: (options: Deno.ConnectOptions) => Promise<Deno.Conn>;
  /** Opens a UDP socket; defaults to `Deno.listenDatagram`. */
  listenDatagram?: (options: Deno.UdpListenOptions & { transport: "udp" }) => Deno.DatagramConn;
  /**
   * The addresses of one record type of a domain. The app passes its HostResolver (`dns.hosts`,
   * then getaddrinfo), the one the router decides with, as v2ray 4.34's freedom asks its DNS
   * client; the default is getaddrinfo alone (/etc/hosts honoured).
   */
  lookup?: FreedomLookup;
}

export type FreedomLookup = (host: string, type: "A" | "AAAA") => Promise<string[]>;

/** Datagrams waiting to be read by a slow consumer before new ones are dropped. */
const UDP_QUEUE = 64;

/**
 * Connects directly to the destination (v2ray's `freedom`). TCP goes through `ConnDuplex` for real
 * half-close; UDP gets its own socket per `open()`, one datagram per chunk, accepting replies only
 * from the destination's address.
 */
export class FreedomOutbound implements Outbound {
  readonly tag: string;
  readonly #strategy: DomainStrategy;
  readonly #redirect: Redirect | null;
  #connect: (options: Deno.ConnectOptions) => Promise<Deno.Conn>;
  #listen: (options: Deno.UdpListenOptions & { transport: "udp" }) => Deno.DatagramConn;
  #lookup: FreedomLookup;

  constructor(options: FreedomOptions = {}) {
    this.tag = options.tag ?? "direct";
    this.#strategy = options.domainStrategy ?? "AsIs";
    this.#redirect = options.redirect ?? null;
    this.#connect = options.connect ?? ((o) => Deno.connect(o));
    this.#listen = options.listenDatagram ?? ((o) => Deno.listenDatagram(o));
    this.#lookup = options.lookup ?? lookupSystem;
  }

  async open(requested: Destination, options: OpenOptions = {}): Promise<Duplex> {
    const dest = this.#redirected(requested);
    const where = dest === requested
      ? formatDestination(requested)
      : `${formatDestination(requested)} (redirected to ${formatHostPort(dest.host, dest.port)})`;
    if (dest.port < 1 || dest.port > 65535) {
      throw new RangeError(`Cannot open ${where}: port out of range`);
    }
    if (dest.network === "udp") return await this.#openUdp(dest, where, options);
    try {
      const conn = await this.#connect({
        hostname: await this.#dialHost(dest.host, this.#strategy),
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
      throw new (errorClass(err))(`Cannot connect to ${where}: ${messageOf(err)}`, { cause: err });
    }
  }

  /** v2ray applies `redirect` before anything else: an empty address or port 0 keeps that part. */
  #redirected(dest: Destination): Destination {
    const r = this.#redirect;
    if (r === null) return dest;
    return { network: dest.network, host: r.address || dest.host, port: r.port || dest.port };
  }

  /** The host to dial for `host` under `strategy`: an IP literal, or the domain as given. */
  async #dialHost(host: string, strategy: DomainStrategy): Promise<string> {
    if (strategy === "AsIs" || addressKind(host) !== "domain") return host;
    const types: Array<"A" | "AAAA"> = strategy === "UseIPv4"
      ? ["A"]
      : strategy === "UseIPv6"
      ? ["AAAA"]
      : ["A", "AAAA"];
    const found: string[] = [];
    for (const type of types) {
      try {
        found.push(...await this.#lookup(host, type));
      } catch {
        // No such record, or no answer: v2ray then dials the domain as given.
      }
    }
    return found.length === 0 ? host : found[Math.floor(Math.random() * found.length)];
  }

  async #openUdp(dest: Destination, where: string, options: OpenOptions): Promise<Duplex> {
    // A UDP socket sends to addresses only, so AsIs resolves here too (A first, then AAAA).
    let ip = await this.#dialHost(
      dest.host,
      this.#strategy === "AsIs" ? "UseIPv4" : this.#strategy,
    );
    if (addressKind(ip) === "domain") ip = await this.#dialHost(ip, "UseIPv6");
    if (addressKind(ip) === "domain") {
      throw new Deno.errors.NotFound(`Cannot resolve ${where}: no A or AAAA record`);
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
      unmapIpv4(a.hostname) === unmapIpv4(peer.hostname) && a.port === peer.port;
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

/** getaddrinfo through node:dns, so /etc/hosts answers as it does for the router. */
async function lookupSystem(host: string, type: "A" | "AAAA"): Promise<string[]> {
  const answers = await lookup(host, { all: true, family: type === "A" ? 4 : 6 });
  return answers.map((a) => a.address);
}

/** Keeps the Deno error class (ConnectionRefused, TimedOut…) so inbounds can pick their reply. */
function errorClass(err: unknown): new (message: string, options?: ErrorOptions) => Error {
  if (err instanceof Error && Object.values(Deno.errors).some((c) => err.constructor === c)) {
    return err.constructor as new (message: string, options?: ErrorOptions) => Error;
  }
  if (err instanceof Error && /lookup address/i.test(err.message)) return Deno.errors.NotFound;
  return Error;
}
