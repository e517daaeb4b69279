/**
 * v2ray's "http" transport (also called "h2"): every proxied connection is one HTTP/2 request
 * stream — request body = uplink, response body = downlink — inside a pooled TLS connection.
 *
 * As v2ray's dialer: TLS is required and must negotiate ALPN "h2"; the method is PUT (or the
 * configured one); the path is normalized to start with "/"; `:authority` is a random entry of
 * `host` (default "www.example.com"); `accept-encoding: identity` stops the server compressing;
 * only status 200 opens the tunnel. Unlike v2ray 4.34 we do not wait for the response HEADERS
 * before handing the stream to VLESS: the request header and first payload go out at once, and the
 * status is checked when the response arrives (a non-200 fails this stream only; the pooled
 * connection stays in use).
 */
import type { H2Connection, H2Request } from "../h2/connection.ts";
import { H2Pool } from "../h2/pool.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { connectTls, type TlsOptions } from "./tls.ts";
import { SilenceWatch } from "./silence_watch.ts";
import type { ServerAddress, Transport, TransportHealthEvents } from "./transport.ts";

export interface V2rayHttpTransportOptions {
  /** `tlsSettings`: required, as in v2ray ("TLS must be enabled for http transport"). */
  tls?: TlsOptions;
  /** `httpSettings.host`: `:authority` values, one picked at random per stream. */
  host?: string[];
  /** `httpSettings.path`, normalized to start with "/". */
  path?: string;
  /** `httpSettings.method` (default "PUT"). */
  method?: string;
  /** `httpSettings.headers`: extra request headers (names are lowercased, as HTTP/2 requires). */
  headers?: Record<string, string | string[]>;
  /** `httpSettings.read_idle_timeout` in ms: PING after this long without reading (0 = off). */
  readIdleTimeout?: number;
  /** `httpSettings.health_check_timeout` in ms: drop the connection when a PING goes unanswered. */
  healthCheckTimeout?: number;
  /**
   * The deadline of a new connection in ms: TCP connect + TLS handshake + HTTP/2 SETTINGS
   * (default {@link DEFAULT_CONNECT_TIMEOUT_MS}; 0 = none).
   */
  connectTimeout?: number;
  /**
   * The deadline of a stream in ms: a connection that reads nothing for this long after a stream
   * opened on it is declared dead — its streams fail and new ones go elsewhere (v2ray's server
   * answers a stream's HEADERS before it reads the body, whatever the target does; see
   * SilenceWatch) (default {@link DEFAULT_STREAM_TIMEOUT_MS}; 0 = none).
   */
  streamTimeout?: number;
  /** Uniform in [0, 1); picks the host. Injectable for tests. */
  random?: () => number;
}

export const DEFAULT_HTTP_HOST = "www.example.com";
/** A TLS + HTTP/2 handshake is 2-3 round trips: 4 s leaves room for a 1 s RTT, not for a dead server. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 4000;
/** One round trip on a live connection; 2 s is far beyond what a server that answers needs. */
export const DEFAULT_STREAM_TIMEOUT_MS = 2000;
/** A suspect server is avoided a little past its deadline, so no request lands on it meanwhile. */
const SUSPECT_MARGIN_MS = 100;

/** v2ray's path rule: empty → "/", otherwise a leading "/" is added when missing. */
export function normalizeHttpPath(path: string | undefined): string {
  if (!path) return "/";
  return path.startsWith("/") ? path : `/${path}`;
}

export class V2rayHttpTransport implements Transport {
  readonly name = "http";
  readonly #tls: TlsOptions;
  readonly #hosts: string[];
  readonly #path: string;
  readonly #method: string;
  readonly #headers: Array<[string, string]>;
  readonly #random: () => number;
  readonly #servers = new Map<string, ServerAddress>();
  readonly #pool: H2Pool;
  readonly #streamTimeout: number;
  #events: TransportHealthEvents | undefined;
  readonly #silence = new WeakMap<H2Connection, SilenceWatch>();
  #fixedRequest: H2Request | undefined;

  constructor(options: V2rayHttpTransportOptions) {
    if (!options.tls) throw new TypeError("TLS must be enabled for http transport");
    // The http transport only speaks HTTP/2, so offer exactly "h2" whatever else is configured.
    this.#tls = { ...options.tls, alpn: ["h2"] };
    this.#hosts = options.host && options.host.length > 0 ? options.host : [DEFAULT_HTTP_HOST];
    this.#path = normalizeHttpPath(options.path);
    this.#method = options.method || "PUT";
    this.#random = options.random ?? Math.random;
    this.#headers = [["accept-encoding", "identity"]];
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) {
        this.#headers.push([name.toLowerCase(), v]);
      }
    }
    this.#streamTimeout = options.streamTimeout ?? DEFAULT_STREAM_TIMEOUT_MS;
    this.#pool = new H2Pool({
      dial: (key, signal) => this.#dial(key, signal),
      connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS,
      onConnected: (key, ms) => {
        const server = this.#servers.get(key);
        if (server) this.#events?.up(server, ms);
      },
      onFailed: (key, err) => {
        const server = this.#servers.get(key);
        if (server) this.#events?.down(server, err);
      },
      connection: {
        ...(options.readIdleTimeout !== undefined
          ? { readIdleTimeout: options.readIdleTimeout }
          : {}),
        ...(options.healthCheckTimeout !== undefined
          ? { pingTimeout: options.healthCheckTimeout }
          : {}),
      },
    });
  }

  /** The pool, for tests and stats. */
  get pool(): H2Pool {
    return this.#pool;
  }

  async #dial(key: string, signal?: AbortSignal): Promise<Duplex> {
    const server = this.#servers.get(key);
    if (!server) throw new Error(`http transport: no server known for pool key ${key}`);
    const { duplex } = await connectTls(server, { tls: this.#tls, requireAlpn: "h2", signal });
    // The pool's H2Connection reads it into its own buffer when it can (ConnDuplex.read).
    return duplex;
  }

  watch(events: TransportHealthEvents): void {
    this.#events = events;
  }

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    const key = this.#keyOf(server);
    const { stream, connection } = await this.#pool.open(key, this.#request(), signal);
    this.#opened(connection, server);
    return stream;
  }

  openNow(server: ServerAddress): Duplex | undefined {
    const opened = this.#pool.openNow(this.#keyOf(server), this.#makeRequest);
    if (!opened) return undefined;
    this.#opened(opened.connection, server);
    return opened.stream;
  }

  close(): void {
    this.#pool.close();
  }

  /** The pool key of `server`, which the pool's dial maps back to the server. */
  #keyOf(server: ServerAddress): string {
    const key = formatHostPort(server.address, server.port);
    if (!this.#servers.has(key)) {
      this.#servers.set(key, { address: server.address, port: server.port });
    }
    return key;
  }

  /** A stream's request: the same object every time unless a host is picked per stream. */
  #request(): H2Request {
    if (this.#fixedRequest) return this.#fixedRequest;
    const authority = this.#hosts[Math.floor(this.#random() * this.#hosts.length)];
    const req = {
      method: this.#method,
      scheme: "https",
      authority,
      path: this.#path,
      headers: this.#headers,
      // The stream itself fails with "unexpected status N" on any other status (resetting only
      // this stream), so it serves as the tunnel as it is: no wrapper stream per connection.
      expectStatus: 200,
      // VLESS writes its request header with the first payload, or alone after 100 ms: HEADERS
      // go with it, one write and one TLS record instead of two.
      holdHeaders: true,
    };
    if (this.#hosts.length === 1) this.#fixedRequest = req;
    return req;
  }

  readonly #makeRequest = () => this.#request();

  #opened(connection: H2Connection, server: ServerAddress): void {
    if (this.#streamTimeout > 0) this.#watchFor(connection, server).opened();
  }

  /** The connection's stream-setup deadline (see SilenceWatch), made with its first stream. */
  #watchFor(connection: H2Connection, server: ServerAddress): SilenceWatch {
    let watch = this.#silence.get(connection);
    if (watch) return watch;
    const limit = this.#streamTimeout;
    watch = new SilenceWatch({
      limit,
      lastReadAt: () => connection.lastReadAt,
      onSilent: (waited) => {
        const err = new Error(
          `${formatHostPort(server.address, server.port)} sent nothing for ${
            Math.round(waited)
          } ms after a stream opened (stream deadline ${limit} ms): connection declared dead`,
        );
        this.#events?.down(server, err);
        this.#pool.retire(connection);
      },
      // New streams go to other servers while the deadline decides about this one.
      onSuspect: (left) => this.#events?.suspect?.(server, left + SUSPECT_MARGIN_MS),
    });
    this.#silence.set(connection, watch);
    connection.closed.then(() => watch!.stop());
    return watch;
  }
}
