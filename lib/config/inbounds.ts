/**
 * `inbounds[]`: socks, mixed, http, dokodemo-door (tunnel) and vless (server) with their settings.
 * The vless inbound's `streamSettings` are read in stream_settings.ts.
 */
import type {
  Account,
  DokodemoInboundConfig,
  InboundConfig,
  SocksSettings,
  VlessClient,
} from "./types.ts";
import {
  describe,
  isIp,
  join,
  MAX_U32,
  type Obj,
  type Reader,
  readProtocol,
  stripBrackets,
} from "./reader.ts";
import { readSniffing } from "./routing.ts";
import { readInboundStream } from "./stream_settings.ts";
import { readFlow, readUserId } from "./vless_user.ts";

const INBOUND_PROTOCOLS = ["socks", "http", "mixed", "dokodemo-door", "tunnel", "vless"] as const;
const V2RAY_ONLY_INBOUNDS = ["vmess", "trojan", "shadowsocks", "mtproto"];

/** One entry of `inbounds[]`; its tag may still be "" (filled in by the caller). */
export function readInbound(r: Reader, v: unknown, path: string): InboundConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, ["protocol", "port", "listen", "tag", "settings", "streamSettings", "sniffing"], {
    allocate: "port allocation (allocate) is",
    domainOverride: "domainOverride is",
  });
  const sniffing = readSniffing(r, o, path);
  const protocol = readProtocol(r, o, path, INBOUND_PROTOCOLS, V2RAY_ONLY_INBOUNDS);
  const listen = readListen(r, o, path);
  const port = r.port(o, "port", path, true);
  const tag = r.string(o, "tag", path, "");
  const settings = r.optObject(o, "settings", path);
  const sp = join(path, "settings");
  if (protocol === undefined || settings === undefined) return undefined;

  if (protocol !== "vless" && o.streamSettings !== undefined && o.streamSettings !== null) {
    r.unsupported(join(path, "streamSettings"), `streamSettings on a ${protocol} inbound are`);
  }
  const base = {
    tag: tag ?? "",
    listen: listen ?? "",
    port: port ?? 0,
    sniffing: sniffing ?? { enabled: false, destOverride: [] },
  };
  const ok = listen !== undefined && port !== undefined && tag !== undefined &&
    sniffing !== undefined;
  switch (protocol) {
    case "socks":
    case "mixed": {
      const s = readSocksSettings(r, settings, sp);
      return s && ok ? { protocol, ...base, settings: s } : undefined;
    }
    case "http": {
      r.keys(settings, sp, ["accounts", "timeout", "allowTransparent", "userLevel"]);
      const accounts = readAccounts(r, settings, sp);
      const timeout = r.int(settings, "timeout", sp, 0, MAX_U32, 0);
      // v2ray answers origin-form requests with 400 unless allowTransparent; so does dray, always.
      if (r.bool(settings, "allowTransparent", sp)) {
        r.unsupported(
          join(sp, "allowTransparent"),
          "transparent requests (origin-form, without a proxy's absolute URL) are",
        );
      }
      const userLevel = r.int(settings, "userLevel", sp, 0, MAX_U32, 0);
      if (timeout && userLevel) {
        // v2ray 4.34 ignores it there; taking it silently would not do what it says.
        r.problem(
          join(sp, "timeout"),
          "sets connIdle at userLevel 0 only (as in v2ray 4.34); " +
            `use policy.levels.${userLevel}.connIdle for level ${userLevel}`,
        );
        return undefined;
      }
      if (!ok || !accounts || timeout === undefined || userLevel === undefined) return undefined;
      return { protocol, ...base, settings: { accounts, timeout, userLevel } };
    }
    case "dokodemo-door":
    case "tunnel": {
      const s = readDokodemoSettings(r, settings, sp);
      return s && ok ? { protocol: "dokodemo-door", ...base, settings: s } : undefined;
    }
    case "vless": {
      const clients = readVlessClients(r, settings, sp);
      const stream = readInboundStream(r, o, path);
      if (!ok || !clients || !stream) return undefined;
      return { protocol, ...base, settings: { clients, decryption: "none" }, stream };
    }
  }
}

function readListen(r: Reader, o: Obj, path: string): string | undefined {
  const v = r.string(o, "listen", path, "127.0.0.1");
  if (v === undefined) return undefined;
  const p = join(path, "listen");
  if (v === "localhost" || v === "") return "127.0.0.1";
  if (v.startsWith("/") || v.startsWith("@")) return r.unsupported(p, "unix domain sockets are");
  const host = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
  if (isIp(host)) return host;
  return r.problem(p, `must be an IP address, got ${describe(v)}`);
}

/** Two inbounds on the same port conflict when their addresses are equal or either is a wildcard. */

export function checkListenConflicts(r: Reader, inbounds: InboundConfig[]): void {
  const wildcard = (a: string) => a === "0.0.0.0" || a === "::";
  inbounds.forEach((b, j) => {
    for (let i = 0; i < j; i++) {
      const a = inbounds[i];
      if (a.port !== b.port) continue;
      if (a.listen === b.listen || wildcard(a.listen) || wildcard(b.listen)) {
        r.problem(
          `inbounds[${j}].port`,
          `${b.port} is already used by inbounds[${i}] (listen ${a.listen})`,
        );
        break;
      }
    }
  });
}

function readAccounts(r: Reader, o: Obj, path: string): Account[] | undefined {
  const list = r.optArray(o, "accounts", path);
  if (list === undefined) return undefined;
  const out: Account[] = [];
  let bad = false;
  list.forEach((v, i) => {
    const p = `${join(path, "accounts")}[${i}]`;
    const a = r.object(v, p);
    if (a === undefined) return void (bad = true);
    r.keys(a, p, ["user", "pass"]);
    const user = r.requiredString(a, "user", p);
    const pass = r.string(a, "pass", p, "");
    if (user === undefined || pass === undefined) bad = true;
    else out.push({ user, pass });
  });
  return bad ? undefined : out;
}

/**
 * socks and dokodemo-door `timeout`: deprecated in v2ray 4.34, where it still sets connIdle when
 * userLevel is 0. Only 0 (unset) is taken: policy.levels.0.connIdle says the same thing.
 */
function readDeprecatedTimeout(r: Reader, s: Obj, path: string): void {
  if (r.int(s, "timeout", path, 0, MAX_U32, 0)) {
    r.unsupported(
      join(path, "timeout"),
      "the deprecated timeout (use policy.levels.0.connIdle) is",
    );
  }
}

function readSocksSettings(r: Reader, s: Obj, path: string): SocksSettings | undefined {
  r.keys(s, path, ["auth", "accounts", "udp", "ip", "userLevel", "timeout"]);
  const auth = r.choice(s, "auth", path, ["noauth", "password"] as const, "noauth");
  const accounts = readAccounts(r, s, path);
  const udp = r.bool(s, "udp", path);
  const ipRaw = r.string(s, "ip", path, "");
  readDeprecatedTimeout(r, s, path);
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  let ip = ipRaw;
  if (ipRaw && !isIp(ipRaw)) {
    ip = r.problem(join(path, "ip"), `must be an IP address, got ${describe(ipRaw)}`);
  }
  if (auth === "password" && accounts?.length === 0) {
    r.problem(join(path, "accounts"), 'must not be empty when "auth" is "password"');
  }
  if (auth === "noauth" && accounts && accounts.length > 0) {
    r.problem(join(path, "auth"), 'must be "password" when accounts are given');
  }
  if (!auth || !accounts || udp === undefined || ip === undefined || userLevel === undefined) {
    return undefined;
  }
  return { auth, accounts, udp, ip, userLevel };
}

function readDokodemoSettings(
  r: Reader,
  s: Obj,
  path: string,
): DokodemoInboundConfig["settings"] | undefined {
  r.keys(s, path, ["address", "port", "network", "timeout", "userLevel", "followRedirect"]);
  if (s.followRedirect !== undefined && s.followRedirect !== false) {
    r.unsupported(join(path, "followRedirect"), "transparent proxying (followRedirect) is");
  }
  const address = r.requiredString(s, "address", path);
  const port = r.port(s, "port", path);
  readDeprecatedTimeout(r, s, path);
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  const list = r.stringList(s, "network", path);
  let network: Array<"tcp" | "udp"> | undefined = ["tcp"];
  if (list && list.length > 0) {
    const names = list.map((n) => n.trim().toLowerCase());
    if (names.every((n) => n === "tcp" || n === "udp")) {
      network = [...new Set(names)] as Array<"tcp" | "udp">;
    } else {
      network = r.problem(
        join(path, "network"),
        `must be "tcp", "udp" or "tcp,udp", got ${describe(s.network)}`,
      );
    }
  } else if (!list) network = undefined;
  if (!address || !port || !network || userLevel === undefined) return undefined;
  return { address: stripBrackets(address), port, network, userLevel };
}

function readVlessClients(r: Reader, s: Obj, path: string): VlessClient[] | undefined {
  r.keys(s, path, ["clients", "decryption"], {
    fallbacks: "fallbacks are",
    fallback: "fallbacks are",
  });
  const decryption = s.decryption;
  if (decryption !== "none") {
    r.problem(
      join(path, "decryption"),
      decryption === undefined
        ? 'is required and must be "none", as in v2ray'
        : `must be "none", got ${describe(decryption)}`,
    );
  }
  const known = ["id", "level", "email", "flow", "encryption"];
  const clients = r.objectList(s, "clients", path, known, (c, p): VlessClient | undefined => {
    if (c.encryption !== undefined) {
      r.problem(join(p, "encryption"), 'belongs to outbound users; inbounds use "decryption"');
    }
    const id = readUserId(r, c, p);
    const level = r.int(c, "level", p, 0, MAX_U32, 0);
    const email = r.string(c, "email", p, "");
    const flow = readFlow(r, c, p);
    return id && level !== undefined && email !== undefined && flow !== undefined
      ? { id: id.id, idBytes: id.bytes, level, email, flow }
      : undefined;
  });
  return clients && decryption === "none" ? clients : undefined;
}
