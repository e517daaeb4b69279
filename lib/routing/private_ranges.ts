/**
 * What `geoip:private` means when no geoip.dat is found: the list v2fly's geoip generator writes
 * into its PRIVATE entry (plugin/special/private.go) — private, loopback, link-local, CGNAT,
 * documentation, benchmarking, multicast and reserved ranges. v2ray 4.34 has no built-in list and
 * refuses to start without the file; a geoip.dat that is found always wins.
 */
export const PRIVATE_RANGES: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "255.255.255.255/32",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
  "ff00::/8",
];
