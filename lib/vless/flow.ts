/**
 * VLESS flow rules: which flow goes on the wire for a request, or why the request is refused.
 *
 * The XTLS flows (`xtls-rprx-origin`, `xtls-rprx-direct`, and their `-udp443` variants) only work
 * with `security: "xtls"`, which dray's transports do not offer: like v2ray we refuse them for TCP
 * with its exact message, refuse them for Mux, and for UDP send no flow at all (UDP is never
 * spliced) while stopping UDP/443 (QUIC) unless the `-udp443` variant allows it.
 * `xtls-rprx-vision` needs TLS directly over TCP, so it is refused over the http transport.
 */
import type { VlessCommand } from "./header.ts";

export const FLOW_ORIGIN = "xtls-rprx-origin";
export const FLOW_DIRECT = "xtls-rprx-direct";
export const FLOW_VISION = "xtls-rprx-vision";

export interface FlowContext {
  command: VlessCommand;
  /** Destination port (UDP/443 is QUIC). */
  port: number;
  /** The transport's name: "tcp", "tls" or "http". */
  transport: string;
}

/** Returns the flow to send in the request addons; throws an Error explaining a refusal. */
export function resolveFlow(flow: string, ctx: FlowContext): string {
  if (flow === "") return "";
  let base = flow;
  let allowUdp443 = false;
  if (flow === `${FLOW_ORIGIN}-udp443` || flow === `${FLOW_DIRECT}-udp443`) {
    allowUdp443 = true;
    // v2ray cuts the suffix off before anything else sees the flow.
    base = flow.slice(0, 16);
  }
  if (base === FLOW_ORIGIN || base === FLOW_DIRECT) {
    switch (ctx.command) {
      case "mux":
        throw new Error(`${base} doesn't support Mux`);
      case "udp":
        if (!allowUdp443 && ctx.port === 443) throw new Error(`${base} stopped UDP/443`);
        return "";
      case "tcp":
        // No dray transport is XTLS, so TCP with an XTLS flow can never work.
        throw new Error(`failed to use ${base}, maybe "security" is not "xtls"`);
    }
  }
  if (flow === FLOW_VISION || flow === `${FLOW_VISION}-udp443`) {
    if (ctx.transport === "http") {
      throw new Error(
        `${flow} needs TLS directly over TCP (network "tcp", security "tls"); ` +
          `it cannot run over the "http" transport`,
      );
    }
    if (ctx.transport !== "tls") {
      throw new Error(`${flow} needs security "tls" over network "tcp"`);
    }
    throw new Error(`${flow} is not supported by dray yet; use an empty flow`);
  }
  throw new Error(`unknown VLESS flow "${flow}"`);
}
