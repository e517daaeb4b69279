/**
 * Wires a parsed {@link Config} into running objects: outbounds (VLESS over a transport, freedom,
 * blackhole) and the inbounds that feed them. Routing comes from `routingFor()`: the rules router
 * when there are rules, else the first outbound for everything.
 *
 * `close()` stops accepting everywhere, lets open connections finish for a bounded grace period,
 * then closes what is left, and finally releases the outbounds' pooled connections.
 */
import type {
  Config,
  InboundConfig,
  OutboundConfig,
  StreamConfig,
  TlsClientConfig,
} from "./config/types.ts";
import { levelPolicy } from "./config/types.ts";
import type { Logger } from "./log.ts";
import { formatHostPort } from "./net/destination.ts";
import { Dispatcher } from "./dispatch/dispatcher.ts";
import { Deadlines } from "./net/deadline_queue.ts";
import type { Policy } from "./dispatch/policy.ts";
import { DefaultRouter, type Router } from "./dispatch/router.ts";
import { AssetLocator } from "./routing/asset_locator.ts";
import { type BalancerConfig, buildRouter, type BuiltRouting } from "./routing/build_router.ts";
import { RoutingRouter } from "./dispatch/routing_router.ts";
import { HostResolver, type SystemLookup } from "./routing/host_resolver.ts";
import { formatIp } from "./routing/ip_address.ts";
import { Observatory } from "./probe/observatory.ts";
import { LeastPingStrategy } from "./routing/least_ping_strategy.ts";
import { RoundRobinStrategy } from "./routing/round_robin_strategy.ts";
import type { BalancingStrategy } from "./routing/balancer.ts";
import { ObservedOutbound } from "./outbound/observed_outbound.ts";
import { HttpProxyInbound } from "./inbound/http_proxy.ts";
import { InboundServer } from "./inbound/server.ts";
import { MixedInbound } from "./inbound/mixed.ts";
import { TunnelInbound } from "./inbound/tunnel.ts";
import { VlessInbound } from "./inbound/vless.ts";
import { BlackholeOutbound } from "./outbound/blackhole.ts";
import { SocksInbound } from "./inbound/socks.ts";
import { type FreedomLookup, FreedomOutbound } from "./outbound/freedom.ts";
import type { Outbound } from "./outbound/outbound.ts";
import { TcpTransport } from "./transport/tcp.ts";
import { type TlsOptions, TlsTransport } from "./transport/tls.ts";
import type { Transport } from "./transport/transport.ts";
import { V2rayHttpTransport } from "./transport/v2ray_http.ts";
import { DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_STREAM_TIMEOUT_S } from "./config/stream_settings.ts";
import { WsTransport } from "./transport/ws.ts";
import { VlessOutbound } from "./outbound/vless.ts";
import { HeapTrimmer } from "./heap_trimmer.ts";
import { messageOf } from "./error_message.ts";

/** A running inbound listener: the accept loop of a proxy inbound, or the VLESS HTTP/2 server. */
export interface RunningInbound {
  readonly tag: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Connections (or HTTP/2 streams) being served right now. */
  readonly active: number;
  close(graceMs?: number): Promise<void>;
}

export interface App {
  /** The running inbounds, in config order. */
  readonly inbounds: readonly RunningInbound[];
  readonly outbounds: readonly Outbound[];
  /** Graceful stop; resolves when everything is closed. */
  close(graceMs?: number): Promise<void>;
  /** Settles once the app has stopped (after `close()`); never rejects. */
  readonly done: Promise<void>;
}

/** How long open connections may finish after a stop is asked for (SIGINT/SIGTERM). */
export const DEFAULT_GRACE_MS = 5_000;

export interface StartOptions {
  logger: Logger;
  /** Picks the outbound per connection; default: the first outbound. */
  router?: (outbounds: readonly Outbound[]) => Router;
}

/** Starts every outbound and inbound of `config`. On failure, whatever started is closed again. */
export async function startApp(config: Config, opts: StartOptions): Promise<App> {
  const { logger } = opts;
  // Freedom dials a name at the address the router resolved it to (dns.hosts, then getaddrinfo),
  // as v2ray 4.34's freedom asks its DNS client. The resolver comes with the router, which is
  // built after the outbounds (its balancers read the observatory over them) and before any
  // connection.
  let resolver: HostResolver | undefined;
  const lookup: FreedomLookup = async (host, type) => {
    const ips = await (resolver ??= new HostResolver()).resolve(host);
    const family = type === "A" ? 4 : 6;
    return ips.filter((ip) => ip.family === family).map(formatIp);
  };
  const created = config.outbounds.map((o) => createOutbound(o, logger, lookup));
  const observatory = config.observatory
    ? new Observatory({ ...config.observatory, outbounds: created, logger })
    : undefined;
  // The observatory's subjects report their connections' outcomes to it (passive health).
  const outbounds = observatory
    ? created.map((o) => observatory.status(o.tag) ? new ObservedOutbound(o, observatory) : o)
    : created;
  const inbounds: RunningInbound[] = [];
  let dispatcher: Dispatcher | undefined;
  try {
    const routing = routingFor(config, outbounds, logger, observatory);
    resolver = routing.resolver;
    const router = opts.router?.(outbounds) ?? routing.router;
    const sniffing = new Map(
      config.inbounds.filter((i) => i.sniffing.enabled).map((
        i,
      ) => [i.tag, i.sniffing.destOverride]),
    );
    // Sequential connections would arm and clear a dial timer each: the queues keep theirs.
    dispatcher = new Dispatcher({
      router,
      logger,
      sniffing,
      deadlines: new Deadlines({ keepTimer: true }),
    });
    for (const inbound of config.inbounds) {
      try {
        inbounds.push(await startInbound(inbound, config, dispatcher, logger));
      } catch (err) {
        const where = formatHostPort(inbound.listen, inbound.port);
        throw new Error(
          `Cannot start inbound "${inbound.tag}" on ${where}: ${messageOf(err)}`,
          { cause: err },
        );
      }
    }
  } catch (err) {
    await Promise.all(inbounds.map((s) => s.close(0)));
    await observatory?.close();
    await Promise.all(outbounds.map((o) => o.close()));
    dispatcher?.close();
    throw err;
  }
  for (const s of inbounds) logger.info(`inbound "${s.tag}" listening on port ${s.port}`);
  observatory?.start();
  // Memory a burst of connections freed goes back to the OS (where glibc and FFI allow).
  const trimmer = new HeapTrimmer();
  let closing: Promise<void> | undefined;
  const stopped = Promise.withResolvers<void>();
  return {
    inbounds,
    outbounds,
    done: stopped.promise,
    close(graceMs = DEFAULT_GRACE_MS) {
      closing ??= (async () => {
        trimmer.close();
        await Promise.all(inbounds.map((s) => s.close(graceMs)));
        await observatory?.close();
        await Promise.all(outbounds.map((o) => o.close()));
        // Its connections ended with the inbounds: nothing is left on its shared timers.
        dispatcher!.close();
        stopped.resolve();
      })();
      return closing;
    },
  };
}

/**
 * The routing section built (geo files read, only the codes referenced): throws an Error naming
 * the JSON path when a list, file or regexp is wrong. `dray test` calls it too.
 */
export function buildRouting(
  config: Config,
  options: { lookup?: SystemLookup; observatory?: Observatory } = {},
): BuiltRouting {
  return buildRouter({
    routing: config.routing,
    hosts: config.dns.hosts,
    outboundTags: config.outbounds.map((o) => o.tag),
    assets: new AssetLocator({ configDir: config.routing.configDir }),
    lookup: options.lookup,
    strategyFor: (b) => strategyFor(b, options.observatory),
  });
}

/** A balancer's strategy; the health-aware ones read the observatory (leastPing needs it). */
function strategyFor(b: BalancerConfig, observatory?: Observatory): BalancingStrategy | undefined {
  switch (b.strategy) {
    case "roundRobin":
      return new RoundRobinStrategy(observatory);
    case "leastPing":
      // The config parser refuses leastPing without an observatory.
      return observatory ? new LeastPingStrategy(observatory) : new RoundRobinStrategy();
    default:
      return undefined;
  }
}

/**
 * The first outbound for everything when there are no rules, else the rules router; and the
 * resolver both routing and freedom use (`dns.hosts`, then getaddrinfo).
 */
function routingFor(
  config: Config,
  outbounds: readonly Outbound[],
  logger: Logger,
  observatory: Observatory | undefined,
): { router: Router; resolver: HostResolver } {
  for (const w of config.routing.warnings) logger.warn(w);
  const rules = config.routing.rules.length > 0;
  if (!rules && config.dns.hosts.length === 0) {
    return { router: new DefaultRouter(outbounds), resolver: new HostResolver() };
  }
  const built = buildRouting(config, { observatory });
  for (const [file, codes] of built.geoFiles) logger.info(`routing: ${file}: ${codes.join(", ")}`);
  const router = rules
    ? new RoutingRouter({ rules: built.router, outbounds })
    : new DefaultRouter(outbounds);
  return { router, resolver: built.resolver };
}

/** A user level's timeouts in milliseconds (config holds seconds, as v2ray). */
export function policyFor(config: Config, level: number): Policy {
  const p = levelPolicy(config, level);
  return {
    handshake: p.handshake * 1000,
    connIdle: p.connIdle * 1000,
    uplinkOnly: p.uplinkOnly * 1000,
    downlinkOnly: p.downlinkOnly * 1000,
  };
}

/**
 * An http inbound's policy: its level's, where v2ray 4.34 (proxy/http/server.go) lets `timeout`
 * (seconds) replace connIdle when userLevel is 0 (the parser refuses it at other levels).
 */
export function httpInboundPolicy(
  config: Config,
  s: { timeout: number; userLevel: number },
): Policy {
  const policy = policyFor(config, s.userLevel);
  if (s.timeout > 0 && s.userLevel === 0) policy.connIdle = s.timeout * 1000;
  return policy;
}

async function startInbound(
  inbound: InboundConfig,
  config: Config,
  dispatcher: Dispatcher,
  logger: Logger,
): Promise<RunningInbound> {
  const base = {
    tag: inbound.tag,
    hostname: inbound.listen,
    port: inbound.port,
    dispatcher,
    logger,
  };
  switch (inbound.protocol) {
    case "socks":
    case "mixed": {
      const s = inbound.settings;
      const options = { auth: s.auth, accounts: s.accounts, udp: s.udp, ip: s.ip || undefined };
      return await InboundServer.listen({
        ...base,
        policy: policyFor(config, s.userLevel),
        handler: inbound.protocol === "socks"
          ? new SocksInbound(options)
          : new MixedInbound(options),
      });
    }
    case "dokodemo-door": {
      const s = inbound.settings;
      const tunnel = new TunnelInbound({ address: s.address, port: s.port });
      return await InboundServer.listen({
        ...base,
        policy: policyFor(config, s.userLevel),
        handler: s.network.includes("tcp") ? tunnel : undefined,
        datagramHandler: s.network.includes("udp") ? tunnel : undefined,
      });
    }
    case "http": {
      const s = inbound.settings;
      return await InboundServer.listen({
        ...base,
        policy: httpInboundPolicy(config, s),
        handler: new HttpProxyInbound({ accounts: s.accounts }),
      });
    }
    case "vless": {
      const handler = new VlessInbound({
        clients: inbound.settings.clients.map((c) => ({
          id: c.idBytes,
          level: c.level,
          email: c.email,
        })),
        policyForLevel: (level) => policyFor(config, level),
      });
      // The handshake deadline applies before the user (and so the level) is known: level 0's.
      const policy = policyFor(config, 0);
      const stream = inbound.stream;
      // The first certificate serves every SNI the others do not name (v2ray's rule).
      const [first, ...more] = stream.security === "tls" ? stream.tls.certificates : [];
      const tls = first && {
        cert: first.certificate,
        key: first.key,
        sniCertificates: more.map((c) => ({ cert: c.certificate, key: c.key })),
      };
      // listen(), not the constructor: over TLS it binds a node:tls listener whose sockets have
      // TCP_NODELAY (Deno.listenTls sockets keep Nagle on: ~40 ms per write-write-read, or per new
      // HTTP/2 stream); with http, each HTTP/2 request stream is one connection for the handler,
      // with ws each WebSocket.
      return await InboundServer.listen({
        ...base,
        handler,
        policy,
        tls: tls && stream.security === "tls"
          ? { ...tls, alpnProtocols: stream.tls.alpn }
          : undefined,
        http: stream.network === "http"
          ? { host: stream.http.host, path: stream.http.path }
          : undefined,
        ws: stream.network === "ws"
          ? {
            path: stream.ws.path,
            maxEarlyData: stream.ws.maxEarlyData,
            earlyDataHeaderName: stream.ws.earlyDataHeaderName || undefined,
          }
          : undefined,
        acceptProxyProtocol: stream.acceptProxyProtocol,
      });
    }
  }
}

function createOutbound(o: OutboundConfig, logger: Logger, lookup: FreedomLookup): Outbound {
  switch (o.protocol) {
    case "vless":
      return new VlessOutbound({
        tag: o.tag,
        servers: o.servers.map((s) => ({
          address: s.address,
          port: s.port,
          users: s.users.map((u) => ({ id: u.idBytes, flow: u.flow })),
        })),
        transport: createTransport(o.stream, logger),
        attemptTimeout: (o.stream.timeouts?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_S) * 1000,
        logger,
      });
    case "freedom":
      return new FreedomOutbound({
        tag: o.tag,
        domainStrategy: o.settings.domainStrategy,
        redirect: o.settings.redirect,
        lookup,
      });
    case "blackhole":
      return new BlackholeOutbound({ tag: o.tag, response: o.settings.response });
  }
}

function tlsOptions(tls: TlsClientConfig): TlsOptions {
  return {
    serverName: tls.serverName || undefined,
    alpn: tls.alpn,
    caCerts: tls.caCerts,
    disableSystemRoot: tls.disableSystemRoot,
    clientCertificate: tls.clientCertificate &&
      { cert: tls.clientCertificate.certificate, key: tls.clientCertificate.key },
    allowInsecure: tls.allowInsecure,
  };
}

/** The transport of an outbound's streamSettings (also what `dray probe` dials each server with). */
export function createTransport(stream: StreamConfig, logger?: Logger): Transport {
  if (stream.network === "http") {
    return new V2rayHttpTransport({
      tls: tlsOptions(stream.tls),
      host: stream.http.host,
      path: stream.http.path,
      method: stream.http.method,
      headers: stream.http.headers,
      readIdleTimeout: stream.http.readIdleTimeout * 1000,
      healthCheckTimeout: stream.http.healthCheckTimeout * 1000,
      connectTimeout: (stream.timeouts?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_S) * 1000,
      streamTimeout: (stream.timeouts?.streamTimeout ?? DEFAULT_STREAM_TIMEOUT_S) * 1000,
    });
  }
  if (stream.network === "ws") {
    const { ws } = stream;
    return new WsTransport({
      tls: stream.security === "tls" ? tlsOptions(stream.tls) : undefined,
      path: ws.path,
      headers: ws.headers,
      earlyData: ws.maxEarlyData > 0
        ? { maxBytes: ws.maxEarlyData, headerName: ws.earlyDataHeaderName || undefined }
        : undefined,
      logger,
    });
  }
  if (stream.security === "tls") return new TlsTransport(tlsOptions(stream.tls));
  return new TcpTransport();
}
