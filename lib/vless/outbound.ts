/**
 * The VLESS outbound: picks a server and user, dials it through a {@link Transport}, and wraps the
 * stream so that the request header leaves with the first payload and the response header is
 * stripped before the payload reaches the caller.
 *
 * What we do differently from v2ray 4.34, on purpose:
 * - we never wait for the server's response before sending (4.34's http dialer waits for the
 *   response HEADERS, a round trip per connection);
 * - the returned readable ends the moment the server's stream ends (half-close passes straight
 *   through; 4.34's client holds the EOF for about 2 s);
 * - UDP datagrams up to 65535 bytes are carried (4.34 drops those over 2046 bytes silently).
 */
import { giveBack } from "../net/buffer_lender.ts";
import { formatDestination, formatHostPort } from "../net/destination.ts";
import type { Destination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { Logger } from "../log.ts";
import type { OpenOptions, Outbound } from "../outbound/outbound.ts";
import type { ServerAddress, Transport } from "../transport/transport.ts";
import { resolveFlow } from "./flow.ts";
import {
  encodeRequestHeader,
  MUX_HOST,
  ResponseHeaderStripper,
  VLESS_VERSION,
  type VlessCommand,
} from "./header.ts";
import { encodeUdpPacket, UdpPacketDecoder } from "./udp.ts";

export interface VlessUser {
  /** The 16 bytes of the user's UUID. */
  id: Uint8Array;
  flow?: string;
}

export interface VlessServer extends ServerAddress {
  users: VlessUser[];
}

export interface VlessOutboundOptions {
  tag: string;
  /** Every `vnext` entry; connections go round-robin over them. */
  servers: VlessServer[];
  transport: Transport;
  logger?: Logger;
  /** Uniform in [0, 1); picks the user. Injectable for tests. */
  random?: () => number;
  /** Waits between dial attempts. Injectable for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** v2ray dials 5 times: `retry.ExponentialBackoff(5, 200)`. */
export const DIAL_ATTEMPTS = 5;
/** The wait after failed attempt k (0-based) is k × 200 ms: 0, 200, 400, 600 (as v2ray). */
export const DIAL_BACKOFF_STEP_MS = 200;
/** How long the header waits for the client's first bytes, so both leave in one write (as v2ray). */
export const FIRST_PAYLOAD_WAIT_MS = 100;

export class VlessOutbound implements Outbound {
  readonly tag: string;
  readonly #servers: VlessServer[];
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #next = 0;
  readonly #open = new Set<Duplex>();

  constructor(options: VlessOutboundOptions) {
    if (options.servers.length === 0) {
      throw new TypeError("VlessOutbound needs at least one server");
    }
    for (const s of options.servers) {
      if (s.users.length === 0) {
        throw new TypeError(`VLESS server ${formatHostPort(s.address, s.port)} has no users`);
      }
    }
    this.tag = options.tag;
    this.#servers = options.servers;
    this.#transport = options.transport;
    this.#logger = options.logger ?? Logger.silent();
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleep;
  }

  async open(dest: Destination, options: OpenOptions = {}): Promise<Duplex> {
    const { signal } = options;
    const command: VlessCommand = dest.host === MUX_HOST
      ? "mux"
      : dest.network === "udp"
      ? "udp"
      : "tcp";
    const target = formatDestination(dest);
    const failures: string[] = [];
    for (let attempt = 0; attempt < DIAL_ATTEMPTS; attempt++) {
      signal?.throwIfAborted();
      const server = this.#servers[this.#next];
      this.#next = (this.#next + 1) % this.#servers.length;
      const user = server.users[Math.floor(this.#random() * server.users.length)];
      // A refused flow is a configuration error: no point retrying it on another server.
      const flow = resolveFlow(user.flow ?? "", {
        command,
        port: dest.port,
        transport: this.#transport.name,
      });
      const header = encodeRequestHeader({ userId: user.id, command, dest, flow });
      const where = formatHostPort(server.address, server.port);
      let inner: Duplex;
      try {
        inner = await this.#transport.open(server, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const message = err instanceof Error ? err.message : String(err);
        failures.push(`#${attempt + 1} ${where}: ${message}`);
        this.#logger.debug(`vless: dial ${where} for ${target} failed: ${message}`);
        if (attempt + 1 < DIAL_ATTEMPTS) await this.#sleep(attempt * DIAL_BACKOFF_STEP_MS, signal);
        continue;
      }
      this.#logger.debug(`vless: tunneling ${target} via ${where} (${this.#transport.name})`);
      const conn = new VlessConnection(
        inner,
        header,
        command === "udp",
        this.#logger,
        target,
        () => {
          this.#open.delete(conn);
        },
      );
      this.#open.add(conn);
      return conn;
    }
    throw new Error(
      `failed to reach a VLESS server for ${target} after ${DIAL_ATTEMPTS} attempts: ${
        failures.join("; ")
      }`,
    );
  }

  close(): Promise<void> {
    for (const conn of [...this.#open]) conn.close();
    this.#transport.close();
    return Promise.resolve();
  }
}

/**
 * One proxied connection over one transport stream.
 *
 * Writable: the first write carries header + payload in one chunk; if the client writes nothing
 * within {@link FIRST_PAYLOAD_WAIT_MS} the header goes alone, so servers that speak first still get
 * the request. Closing it half-closes the transport stream. Readable: the payload after the
 * response header, ending as soon as the transport stream ends. For UDP, one datagram per chunk
 * both ways, length-framed on the wire.
 */
class VlessConnection implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly #inner: Duplex;
  readonly #onClose: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(
    inner: Duplex,
    header: Uint8Array,
    udp: boolean,
    logger: Logger,
    target: string,
    onClose: () => void,
  ) {
    this.#inner = inner;
    this.#onClose = onClose;
    const writer = inner.writable.getWriter();
    let pendingHeader: Uint8Array | null = header;
    const takeHeader = (): Uint8Array | null => {
      const h = pendingHeader;
      pendingHeader = null;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      return h;
    };
    this.#timer = setTimeout(() => {
      const h = takeHeader();
      // A failure here fails the next write or close too, which is where the caller hears of it.
      if (h) writer.write(h).catch(() => {});
    }, FIRST_PAYLOAD_WAIT_MS);

    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        let data = chunk;
        if (udp) {
          if (chunk.byteLength === 0) return;
          try {
            data = encodeUdpPacket(chunk);
          } catch (err) {
            // UDP is lossy: drop the datagram, keep the association.
            logger.warn(`vless: ${target}: dropped a datagram: ${(err as Error).message}`);
            return;
          }
        }
        const h = takeHeader();
        if (h) {
          const first = new Uint8Array(h.byteLength + data.byteLength);
          first.set(h);
          first.set(data, h.byteLength);
          data = first;
        }
        // A copy was made: the reader may have the chunk's memory back now.
        if (data !== chunk) giveBack(chunk);
        // Wait for room in the transport's queue, not for the bytes to be consumed: backpressure
        // still holds, and a failed write errors the stream, failing the next write or close.
        await writer.ready;
        writer.write(data).catch(() => {});
      },
      close: async () => {
        const h = takeHeader();
        if (h) writer.write(h).catch(() => {});
        await writer.close();
      },
      abort: (reason) => {
        takeHeader();
        writer.abort(reason).catch(() => {});
        this.close();
      },
    });

    const reader = inner.readable.getReader();
    const stripper = new ResponseHeaderStripper(VLESS_VERSION);
    const packets = udp ? new UdpPacketDecoder() : null;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        // Each round consumes one transport chunk; it repeats only while chunks carry no payload
        // (header bytes, partial datagrams), so it ends at EOF at the latest.
        for (;;) {
          let result: ReadableStreamReadResult<Uint8Array>;
          try {
            result = await reader.read();
            if (result.done) {
              stripper.finish();
              packets?.finish();
              controller.close();
              return;
            }
          } catch (err) {
            this.close();
            // A server refusing us (wrong user id) may cut the transport rather than end it
            // cleanly (a TLS close without close_notify, a TCP reset): say what that means.
            if (stripper.header === null && isCut(err)) {
              throw new Error(
                "server closed the connection before sending the VLESS response header " +
                  "(wrong user id, target unreachable, or not a VLESS server)",
                { cause: err },
              );
            }
            throw err;
          }
          let payload: Uint8Array;
          try {
            payload = stripper.push(result.value);
          } catch (err) {
            this.close();
            throw err;
          }
          if (packets) {
            const got = packets.push(payload);
            for (const p of got) controller.enqueue(p);
            if (got.length > 0) return;
          } else if (payload.byteLength > 0) {
            controller.enqueue(payload);
            return;
          }
        }
      },
      cancel: (reason) => {
        reader.cancel(reason).catch(() => {});
        this.close();
      },
    }, { highWaterMark: 0 });
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    this.#closed = true;
    this.#inner.close();
    this.#onClose();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Errors of a transport cut short rather than ended: no TLS close_notify, a TCP reset. */
function isCut(err: unknown): boolean {
  return err instanceof Deno.errors.UnexpectedEof || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe;
}
