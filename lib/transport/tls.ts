import { isIP } from "node:net";
import nodeTls from "node:tls";
import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import { SocketDuplex } from "../net/socket_duplex.ts";
import { connectTcp } from "./tcp.ts";
import type { ServerAddress, Transport } from "./transport.ts";
import { closeQuietly } from "../net/close_quietly.ts";
import { messageOf } from "../error_message.ts";

/** `streamSettings.tlsSettings`, in dray's words. */
export interface TlsOptions {
  /**
   * SNI and the name the certificate must match; default: the server address (an IP is verified
   * but not sent as SNI, which RFC 6066 §3 reserves for host names).
   */
  serverName?: string;
  /** ALPN protocols to offer, e.g. ["h2", "http/1.1"]. */
  alpn?: string[];
  /** Extra trusted CA certificates, PEM text: in addition to the built-in roots, as v2ray. */
  caCerts?: string[];
  /** Trust only `caCerts`, not the built-in roots (v2ray's `disableSystemRoot`). */
  disableSystemRoot?: boolean;
  /** Presented when the server asks for a client certificate (chain and key, PEM text). */
  clientCertificate?: { cert: string; key: string };
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

/**
 * The name to verify, and to send as SNI when it is a domain: serverName, else the server address
 * (an IP address is checked against the certificate but never sent as SNI).
 */
export function tlsServerName(server: ServerAddress, tls: TlsOptions): string {
  if (tls.serverName) return tls.serverName;
  return server.address;
}

/** A TLS session as a Duplex; `read(buf)` when it is a Deno.Conn (see ConnDuplex.read). */
export interface TlsSession {
  duplex: Duplex & { read?(buf: Uint8Array): Promise<number | null> };
  alpn: string | null;
}

/**
 * Dials `server` over TCP, then runs the TLS handshake with SNI = {@link tlsServerName} — so the
 * name can differ from the address dialed — and checks ALPN when required.
 *
 * Deno's TLS (`Deno.startTls`) serves every session it can: it cannot present a client
 * certificate (it ignores cert/key) nor drop its built-in roots (its caCerts are added to them).
 * Sessions that need either run on node:tls, whose `ca` replaces the roots and which presents
 * `cert`/`key` (see {@link usesNodeTls}). Deno's stays the default for the handshake's cost: a
 * node:tls client spent 1.3-2.1x Deno's CPU per connect (measured, 100 sequential connects and a
 * 1-byte echo against Deno and node:tls servers, 5 interleaved blocks: ~0.8-1.1 ms vs 1.1-2.3 ms;
 * 1.3-2.0x even with one cached SecureContext), and the tls transport handshakes per connection.
 */
export function connectTls(server: ServerAddress, options: TlsConnectOptions): Promise<TlsSession> {
  return usesNodeTls(options.tls)
    ? connectNodeTls(server, options)
    : connectDenoTls(server, options).then(({ conn, alpn }) => ({
      duplex: new ConnDuplex(conn),
      alpn,
    }));
}

/** Whether a session with these options runs on node:tls rather than Deno's own TLS. */
export function usesNodeTls(tls: TlsOptions): boolean {
  return tls.disableSystemRoot === true || tls.clientCertificate !== undefined;
}

async function connectDenoTls(
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
    throw alpnMismatch(where, alpn, options.requireAlpn);
  }
  return { conn, alpn };
}

function alpnMismatch(where: string, alpn: string | null, want: string): Error {
  const got = alpn === null ? "no ALPN protocol" : `ALPN "${alpn}"`;
  return new Error(`TLS with ${where}: server negotiated ${got}, want "${want}"`);
}

/** The CAs node:tls should trust; undefined = its default store (Deno's built-in roots). */
function trustedCas(tls: TlsOptions): string[] | undefined {
  const extra = tls.caCerts ?? [];
  if (tls.disableSystemRoot) return extra;
  // node's `ca` replaces the roots: v2ray adds configured CAs to them, so both are passed.
  return extra.length > 0 ? [...nodeTls.rootCertificates, ...extra] : undefined;
}

/** The same session on node:tls: a TCP connect, the handshake, a SocketDuplex (Nagle off). */
function connectNodeTls(server: ServerAddress, options: TlsConnectOptions): Promise<TlsSession> {
  const { tls, signal } = options;
  signal?.throwIfAborted();
  const where = formatHostPort(server.address, server.port);
  const name = tlsServerName(server, tls);
  const alpn = tls.alpn && tls.alpn.length > 0 ? tls.alpn : undefined;
  const connectOptions: nodeTls.ConnectionOptions & { allowHalfOpen: boolean; noDelay: boolean } = {
    host: server.address,
    port: server.port,
    // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName" (node throws
    // on one); an IP is still the name verified, below.
    servername: isIP(name) === 0 ? name : undefined,
    ...(tls.allowInsecure ? {} : {
      checkServerIdentity: (_host: string, cert: nodeTls.PeerCertificate) =>
        nodeTls.checkServerIdentity(name, cert),
    }),
    rejectUnauthorized: tls.allowInsecure !== true,
    ca: trustedCas(tls),
    ...(tls.clientCertificate ? tls.clientCertificate : {}),
    ALPNProtocols: alpn,
    // Our readable ends at the server's close_notify/FIN; we may still write (half-close).
    allowHalfOpen: true,
    noDelay: true,
  };
  const socket = nodeTls.connect(connectOptions);
  return new Promise<TlsSession>((resolve, reject) => {
    let connected = false;
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      if (signal?.aborted) return reject(signal.reason);
      const message = messageOf(err);
      reject(
        new Error(
          connected
            ? `TLS handshake with ${where} failed: ${message}`
            : `TCP connect to ${where} failed: ${message}`,
          { cause: err },
        ),
      );
    };
    const onConnect = () => {
      connected = true;
      // The VLESS header and small interactive writes must not wait for an ACK.
      socket.setNoDelay(true);
    };
    const onAbort = () => fail(signal!.reason);
    const onSecure = () => {
      cleanup();
      const got = typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : null;
      // Wrapped before anything else can happen: SocketDuplex listens for errors from here on.
      const duplex = new SocketDuplex(socket);
      if (options.requireAlpn !== undefined && got !== options.requireAlpn) {
        duplex.close();
        reject(alpnMismatch(where, got, options.requireAlpn));
        return;
      }
      resolve({ duplex, alpn: got });
    };
    const cleanup = () => {
      socket.off("connect", onConnect);
      socket.off("secureConnect", onSecure);
      socket.off("error", fail);
      signal?.removeEventListener("abort", onAbort);
    };
    socket.once("connect", onConnect);
    socket.once("secureConnect", onSecure);
    socket.once("error", fail);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** VLESS over TLS over TCP (`network: "tcp"`, `security: "tls"`): one TLS session per connection. */
export class TlsTransport implements Transport {
  readonly name = "tls";
  readonly tls: TlsOptions;

  constructor(tls: TlsOptions = {}) {
    this.tls = tls;
  }

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    return (await connectTls(server, { tls: this.tls, signal })).duplex;
  }

  close(): void {
    // Nothing pooled: every stream owns its TLS session.
  }
}
