/**
 * Which of several server certificates answers a TLS client, by the name it sent (SNI): the rule
 * of v2ray 4.34, whose inbound hands its certificates to Go's crypto/tls (`BuildNameToCertificate`
 * then `getCertificate`):
 *
 * - every certificate is known by its DNS subjectAltNames, or by its subject CN when it has none;
 *   a later certificate claiming a name takes it from an earlier one;
 * - the SNI, lowercased, is looked up as it is, then with its first label replaced by `*`;
 * - no SNI or no match: the first certificate (Go takes the first the client can use; every
 *   client we meet can use the first).
 *
 * IP addresses are never SNI (RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in
 * HostName"), so IP subjectAltNames play no part.
 */
import { X509Certificate } from "node:crypto";

export interface ServerCertificate {
  /** Certificate chain, PEM; the first certificate in it is the leaf whose names count. */
  cert: string;
  /** Private key, PEM. */
  key: string;
}

export class CertificateSelector {
  readonly certificates: readonly ServerCertificate[];
  readonly #byName = new Map<string, number>();

  /** Throws a TypeError naming the certificate (by index) whose PEM cannot be parsed. */
  constructor(certificates: readonly ServerCertificate[]) {
    if (certificates.length === 0) throw new RangeError("at least one certificate is needed");
    this.certificates = certificates;
    certificates.forEach((c, i) => {
      for (const name of leafNames(c.cert, i)) this.#byName.set(name, i);
    });
  }

  /** The names each certificate answers to (after later ones took theirs), for logs and tests. */
  namesOf(index: number): string[] {
    return [...this.#byName].filter(([, i]) => i === index).map(([name]) => name);
  }

  /** The index of the certificate for `serverName` (the client's SNI; "" or null when none). */
  indexFor(serverName: string | null | undefined): number {
    if (!serverName) return 0;
    const name = serverName.toLowerCase();
    const exact = this.#byName.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf(".");
    // Go replaces the first label even when the name has only one ("localhost" → "*").
    const wildcard = this.#byName.get(dot < 0 ? "*" : `*${name.slice(dot)}`);
    return wildcard ?? 0;
  }
}

/** DNS subjectAltNames of the chain's leaf, or its CN when it has none (as Go). */
function leafNames(pem: string, index: number): string[] {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pem);
  } catch (err) {
    throw new TypeError(`certificate ${index}: cannot parse its PEM`, { cause: err });
  }
  // node formats it as `DNS:a, DNS:b, IP Address:1.2.3.4`; DNS names hold no ", ".
  const dns = (leaf.subjectAltName ?? "")
    .split(", ")
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4));
  if (dns.length > 0) return dns;
  const cn = leaf.subject.split("\n").find((line) => line.startsWith("CN="));
  return cn && cn.length > 3 ? [cn.slice(3)] : [];
}
