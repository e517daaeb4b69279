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
import { H2Pool } from "../h2/pool.ts";
import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { connectTls, type TlsOptions } from "./tls.ts";
import type { ServerAddress, Transport } from "./transport.ts";

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
  /** Uniform in [0, 1); picks the host. Injectable for tests. */
  random?: () => number;
}

export const DEFAULT_HTTP_HOST = "www.example.com";

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
    this.#pool = new H2Pool({
      dial: (key, signal) => this.#dial(key, signal),
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
    const { conn } = await connectTls(server, { tls: this.#tls, requireAlpn: "h2", signal });
    // The pool's H2Connection reads it into its own buffer (ConnDuplex.read).
    return new ConnDuplex(conn);
  }

  open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    const key = formatHostPort(server.address, server.port);
    this.#servers.set(key, { address: server.address, port: server.port });
    const authority = this.#hosts[Math.floor(this.#random() * this.#hosts.length)];
    return this.#pool.request(key, {
      method: this.#method,
      scheme: "https",
      authority,
      path: this.#path,
      headers: this.#headers,
      // The stream itself fails with "unexpected status N" on any other status (resetting only
      // this stream), so it serves as the tunnel as it is: no wrapper stream per connection.
      expectStatus: 200,
    }, signal);
  }

  close(): void {
    this.#pool.close();
  }
}
