/**
 * `streamSettings.tlsSettings` of both sides, and the certificates they carry (PEM files or
 * inline PEM lines).
 */
import type { Config, TlsClientConfig, TlsServerConfig } from "./types.ts";
import { describe, join, type Obj, type Reader } from "./reader.ts";

/**
 * Hosts whose certificates must not be verified: the TLS server name of every vless outbound
 * with `allowInsecure`. Deno can only skip verification process-wide, per host name
 * (`--unsafely-ignore-certificate-errors=HOST,…`), so main.ts passes exactly these.
 */
export function insecureHosts(config: Config): string[] {
  const hosts = new Set<string>();
  for (const o of config.outbounds) {
    if (o.protocol !== "vless" || o.stream.security !== "tls" || !o.stream.tls.allowInsecure) {
      continue;
    }
    hosts.add(o.stream.tls.serverName);
  }
  return [...hosts];
}

const TLS_UNSUPPORTED: Record<string, string> = {
  fingerprint: "uTLS fingerprints are",
  pinnedPeerCertificateChainSha256: "certificate pinning is",
  minVersion: "minVersion is",
  maxVersion: "maxVersion is",
  cipherSuites: "cipherSuites is",
  rejectUnknownSni: "rejectUnknownSni is",
};

/** ALPN offered when tlsSettings.alpn is empty, per network. */
export const DEFAULT_ALPN = { tcp: ["h2", "http/1.1"], http: ["h2"], ws: ["http/1.1"] };

/** The parts of tlsSettings both sides share. */
function readTlsCommon(r: Reader, s: Obj, sp: string, network: "tcp" | "http" | "ws") {
  const section = r.section(s, "tlsSettings", sp, [
    "serverName",
    "allowInsecure",
    "alpn",
    "certificates",
    "disableSystemRoot",
    "enableSessionResumption",
    "allowInsecureCiphers",
  ], TLS_UNSUPPORTED);
  if (section === undefined) return undefined;
  const { o: t, path: tp } = section;
  if (t.enableSessionResumption === true) {
    r.unsupported(join(tp, "enableSessionResumption"), "TLS session resumption is");
  }
  if (t.allowInsecureCiphers === true) r.unsupported(join(tp, "allowInsecureCiphers"), "it is");
  const serverName = r.string(t, "serverName", tp, "");
  const alpnList = r.stringList(t, "alpn", tp);
  // v2ray's defaults: the http transport offers only h2, ws only http/1.1 (its dialer's
  // WithNextProto), otherwise h2 and http/1.1.
  const alpn = alpnList &&
    (alpnList.length > 0 ? alpnList : DEFAULT_ALPN[network]);
  return { t, tp, serverName, alpn };
}

interface ReadCert {
  usage: "encipherment" | "verify";
  certificate: string;
  key: string;
}

function readCertificates(r: Reader, t: Obj, tp: string): ReadCert[] | undefined {
  const list = r.optArray(t, "certificates", tp);
  if (list === undefined) return undefined;
  const out: ReadCert[] = [];
  list.forEach((v, i) => {
    const p = `${join(tp, "certificates")}[${i}]`;
    const c = r.object(v, p);
    if (c === undefined) return;
    r.keys(c, p, ["certificateFile", "certificate", "keyFile", "key", "usage"], {
      ocspStapling: "OCSP stapling is",
      oneTimeLoading: "oneTimeLoading is",
    });
    const usage = r.choice(
      c,
      "usage",
      p,
      ["encipherment", "verify", "issue"] as const,
      "encipherment",
    );
    if (usage === "issue") {
      r.unsupported(join(p, "usage"), 'usage "issue" (issuing certificates on the fly) is');
    }
    const certificate = readPem(
      r,
      c,
      p,
      "certificateFile",
      "certificate",
      /-----BEGIN CERTIFICATE-----/,
    );
    const key = usage === "verify"
      ? ""
      : readPem(r, c, p, "keyFile", "key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    if (usage === "verify" && (c.keyFile !== undefined || c.key !== undefined)) {
      r.problem(p, 'a certificate with usage "verify" is a CA to trust and takes no key');
    }
    if (
      certificate !== undefined && key !== undefined &&
      (usage === "encipherment" || usage === "verify")
    ) {
      out.push({ usage, certificate, key });
    }
  });
  return out.length === list.length ? out : undefined;
}

/** PEM text from `<fileKey>` (a path) or `<textKey>` (an array of lines, as v2ray takes it). */
function readPem(
  r: Reader,
  c: Obj,
  p: string,
  fileKey: string,
  textKey: string,
  marker: RegExp,
): string | undefined {
  const file = c[fileKey];
  const text = c[textKey];
  const hasFile = file !== undefined && file !== null && file !== "";
  const hasText = text !== undefined && text !== null;
  if (hasFile && hasText) return r.problem(p, `give either ${fileKey} or ${textKey}, not both`);
  let pem: string | undefined;
  let where: string;
  if (hasFile) {
    where = join(p, fileKey);
    if (typeof file !== "string") {
      return r.problem(where, `must be a string, got ${describe(file)}`);
    }
    pem = r.file(file, where);
    if (pem === undefined) return undefined;
  } else if (hasText) {
    where = join(p, textKey);
    if (typeof text === "string") pem = text;
    else if (Array.isArray(text) && text.every((x) => typeof x === "string")) pem = text.join("\n");
    else return r.problem(where, `must be an array of PEM lines, got ${describe(text)}`);
  } else {
    return r.problem(p, `needs ${fileKey} or ${textKey}`);
  }
  if (!marker.test(pem)) {
    const kind = textKey === "key" ? "private key" : "certificate";
    return r.problem(where, `does not contain a PEM ${kind}`);
  }
  return pem;
}

export function readTlsClient(
  r: Reader,
  s: Obj,
  sp: string,
  network: "tcp" | "http" | "ws",
  addresses: string[],
): TlsClientConfig | undefined {
  const common = readTlsCommon(r, s, sp, network);
  if (common === undefined) return undefined;
  const { t, tp, alpn } = common;
  const allowInsecure = r.bool(t, "allowInsecure", tp);
  const disableSystemRoot = r.bool(t, "disableSystemRoot", tp);
  const certs = readCertificates(r, t, tp);
  let serverName = common.serverName;
  if (serverName === "") {
    // v2ray verifies each server against its own address; one resolved name per outbound keeps
    // the config simple to consume, so several distinct addresses need an explicit serverName.
    if (addresses.length > 1) {
      return r.problem(
        join(tp, "serverName"),
        "is required when vnext lists servers with different addresses",
      );
    }
    serverName = addresses[0];
  }
  if (
    serverName === undefined || !alpn || allowInsecure === undefined ||
    disableSystemRoot === undefined || !certs
  ) return undefined;
  const caCerts = certs.filter((c) => c.usage === "verify").map((c) => c.certificate);
  if (disableSystemRoot && caCerts.length === 0) {
    // v2ray would trust nothing and fail every handshake; say so now.
    return r.problem(
      join(tp, "disableSystemRoot"),
      'needs a certificate with usage "verify" to trust (nothing else would be)',
    );
  }
  const clientCerts = certs.filter((c) => c.usage === "encipherment");
  if (clientCerts.length > 1) {
    // Go offers the first the server's CertificateRequest accepts; node:tls takes one.
    const second = certs.indexOf(clientCerts[1]);
    return r.unsupported(
      `${join(tp, "certificates")}[${second}]`,
      'more than one client certificate (usage "encipherment") is',
    );
  }
  const client = clientCerts[0];
  return {
    serverName,
    allowInsecure,
    alpn,
    caCerts,
    disableSystemRoot,
    ...(client ? { clientCertificate: { certificate: client.certificate, key: client.key } } : {}),
  };
}

/** tlsSettings of a vless inbound: at least one certificate with its key; no CAs to verify. */
export function readTlsServer(
  r: Reader,
  s: Obj,
  sp: string,
  network: "tcp" | "http" | "ws",
): TlsServerConfig | undefined {
  const common = readTlsCommon(r, s, sp, network);
  if (common === undefined) return undefined;
  const { t, tp, alpn, serverName } = common;
  for (const key of ["allowInsecure", "disableSystemRoot"]) {
    if (t[key] === true) r.problem(join(tp, key), "applies to outbounds only");
  }
  const certs = readCertificates(r, t, tp);
  if (!certs || !alpn || serverName === undefined) return undefined;
  if (certs.some((c) => c.usage === "verify")) {
    return r.unsupported(
      join(tp, "certificates"),
      'client certificate verification (usage "verify" on an inbound) is',
    );
  }
  if (certs.length === 0) {
    return r.problem(
      join(tp, "certificates"),
      "needs a certificate and key (certificateFile and keyFile) for a TLS inbound",
    );
  }
  if (network === "http" && (alpn.length !== 1 || alpn[0] !== "h2")) {
    // The HTTP/2 server offers only "h2" (v2ray offers what alpn lists, and fails on the rest).
    return r.problem(
      join(tp, "alpn"),
      `the http transport serves only "h2", got ${JSON.stringify(alpn)}`,
    );
  }
  return {
    certificates: certs.map(({ certificate, key }) => ({ certificate, key })),
    alpn,
    serverName,
  };
}
