/** v2ray's per-level timeouts, in milliseconds. */
export interface Policy {
  /** Time allowed to read the proxy request (v2ray `handshake`, default 4 s). */
  handshake: number;
  /** Ms without traffic either way before a relayed connection is closed. */
  connIdle: number;
  /** Ms the uplink may stay idle after the downlink has ended. */
  uplinkOnly: number;
  /** Ms the downlink may stay idle after the uplink has ended. */
  downlinkOnly: number;
}

/**
 * v2ray's level-0 defaults as its code has them since 4.23.4 (features/policy/policy.go:
 * 60 / 300 / 1 / 1 s); its docs' 4 / 300 / 2 / 5 are out of date. The config layer fills the
 * same values (lib/config/types.ts DEFAULT_LEVEL_POLICY).
 */
export const DEFAULT_POLICY: Policy = {
  handshake: 60_000,
  connIdle: 300_000,
  uplinkOnly: 1_000,
  downlinkOnly: 1_000,
};
