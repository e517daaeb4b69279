import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { connectTcp } from "./tcp.ts";
import type { ServerAddress, Transport } from "./transport.ts";
import { closeQuietly } from "../net/close_quietly.ts";

/** `streamSettings.tlsSettings`, in dray's words. */
export interface TlsOptions {
  /** SNI and the name the certificate must match; default: the server address when a domain. */
  serverName?: string;
  /** ALPN protocols to offer, e.g. ["h2", "http/1.1"]. */
  alpn?: string[];
  /**
   * Extra trusted CA certificates, PEM text: trusted in addition to Deno's built-in roots (Deno
   * cannot drop those per connection, so the config refuses v2ray's `disableSystemRoot`).
   */
  caCerts?: string[];
  /**
   * Skip certificate checks. Per connection Deno can only skip the name check; the chain check is
   * skipped for the process by `--unsafely-ignore-certificate-errors=<hosts>`, which main.ts adds
   * for exactly the configured hosts.
   */
  allowInsecure?: boolean;
}

export interface TlsConnectOptions {
  tls: TlsOptions;
  /** Fail unless the server picks this ALPN protocol (the http transport needs "h2"). */
  requireAlpn?: string;
  signal?: AbortSignal;
}

/** The name to send as SNI and verify: serverName, else the address when it is a domain. */
export function tlsServerName(server: ServerAddress, tls: TlsOptions): string {
  if (tls.serverName) return tls.serverName;
  return server.address;
}

/**
 * Dials `server` over TCP, then runs the TLS handshake with SNI = {@link tlsServerName} — so the
 * name can differ from the address dialed — and checks ALPN when required.
 */
export async function connectTls(
  server: ServerAddress,
  options: TlsConnectOptions,
): Promise<{ conn: Deno.TlsConn; alpn: string | null }> {
  const { tls, signal } = options;
  const where = formatHostPort(server.address, server.port);
  const tcp = await connectTcp(server, signal);
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.startTls(tcp, {
      hostname: tlsServerName(server, tls),
      caCerts: tls.caCerts,
      alpnProtocols: tls.alpn && tls.alpn.length > 0 ? tls.alpn : undefined,
      unsafelyDisableHostnameVerification: tls.allowInsecure === true,
    });
  } catch (err) {
    closeQuietly(tcp);
    throw new Error(`TLS setup with ${where} failed: ${messageOf(err)}`, { cause: err });
  }
  const onAbort = () => closeQuietly(conn);
  signal?.addEventListener("abort", onAbort, { once: true });
  let alpn: string | null;
  try {
    alpn = (await conn.handshake()).alpnProtocol;
  } catch (err) {
    closeQuietly(conn);
    if (signal?.aborted) throw signal.reason;
    let message = messageOf(err);
    if (options.requireAlpn !== undefined && /NoApplicationProtocol/.test(message)) {
      message += ` (the server does not offer ALPN "${options.requireAlpn}")`;
    }
    throw new Error(`TLS handshake with ${where} failed: ${message}`, { cause: err });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (options.requireAlpn !== undefined && alpn !== options.requireAlpn) {
    closeQuietly(conn);
    const got = alpn === null ? "no ALPN protocol" : `ALPN "${alpn}"`;
    throw new Error(
      `TLS with ${where}: server negotiated ${got}, want "${options.requireAlpn}"`,
    );
  }
  return { conn, alpn };
}

/** VLESS over TLS over TCP (`network: "tcp"`, `security: "tls"`): one TLS session per connection. */
export class TlsTransport implements Transport {
  readonly name = "tls";
  readonly tls: TlsOptions;

  constructor(tls: TlsOptions = {}) {
    this.tls = tls;
  }

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    const { conn } = await connectTls(server, { tls: this.tls, signal });
    return new ConnDuplex(conn);
  }

  close(): void {
    // Nothing pooled: every stream owns its TLS session.
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
