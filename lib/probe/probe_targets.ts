/**
 * What `dray probe` probes in a config: every server (`vnext` entry) of every VLESS outbound, one
 * at a time, with that outbound's streamSettings.
 */
import type { Config, VlessOutboundConfig, VlessServer } from "../config/types.ts";

export interface ProbeTarget {
  /** The outbound tag; "tag[i]" when the outbound lists several servers. */
  name: string;
  server: VlessServer;
  outbound: VlessOutboundConfig;
  /** The transport's security: a stalled dial is a TLS stall when "tls". */
  security: "none" | "tls";
}

/** Every VLESS server of `config`, in config order. Other outbounds have no server to probe. */
export function probeTargets(config: Config): ProbeTarget[] {
  const targets: ProbeTarget[] = [];
  for (const outbound of config.outbounds) {
    if (outbound.protocol !== "vless") continue;
    outbound.servers.forEach((server, i) => {
      targets.push({
        name: outbound.servers.length > 1 ? `${outbound.tag}[${i}]` : outbound.tag,
        server,
        outbound,
        security: outbound.stream.security,
      });
    });
  }
  return targets;
}
