/** `outbounds[]`: vless (client), freedom and blackhole with their settings. */
import type { FreedomOutboundConfig, OutboundConfig, VlessServer, VlessUser } from "./types.ts";
import {
  describe,
  join,
  MAX_U32,
  type Obj,
  type Reader,
  readProtocol,
  stripBrackets,
} from "./reader.ts";
import { readOutboundStream } from "./stream_settings.ts";
import { readFlow, readUserId } from "./vless_user.ts";

const OUTBOUND_PROTOCOLS = ["vless", "freedom", "blackhole"] as const;
const V2RAY_ONLY_OUTBOUNDS = [
  "vmess",
  "trojan",
  "shadowsocks",
  "socks",
  "http",
  "dns",
  "mtproto",
  "loopback",
];

/** One entry of `outbounds[]`; its tag may still be "" (filled in by the caller). */
export function readOutbound(r: Reader, v: unknown, path: string): OutboundConfig | undefined {
  const o = r.object(v, path);
  if (o === undefined) return undefined;
  r.keys(o, path, ["protocol", "tag", "settings", "streamSettings", "mux"], {
    proxySettings: "proxy chaining (proxySettings) is",
    sendThrough: "sendThrough is",
  });
  r.disabledOnly(o, "mux", path, "mux is");
  const protocol = readProtocol(r, o, path, OUTBOUND_PROTOCOLS, V2RAY_ONLY_OUTBOUNDS);
  const tag = r.string(o, "tag", path, "");
  const settings = r.optObject(o, "settings", path);
  const sp = join(path, "settings");
  if (protocol === undefined || settings === undefined) return undefined;
  if (protocol !== "vless" && o.streamSettings !== undefined && o.streamSettings !== null) {
    r.unsupported(join(path, "streamSettings"), `streamSettings on a ${protocol} outbound are`);
  }
  switch (protocol) {
    case "vless": {
      const servers = readVnext(r, settings, sp);
      // The stream is checked even when vnext is broken, so one run reports both.
      const stream = readOutboundStream(r, o, path, rawAddresses(settings));
      if (!servers || !stream || tag === undefined) return undefined;
      return { protocol, tag, servers, stream };
    }
    case "freedom": {
      const s = readFreedomSettings(r, settings, sp);
      return s && tag !== undefined ? { protocol, tag, settings: s } : undefined;
    }
    case "blackhole": {
      r.keys(settings, sp, ["response"]);
      const resp = r.section(settings, "response", sp, ["type"]);
      if (resp === undefined) return undefined;
      const type = r.choice(resp.o, "type", resp.path, ["none", "http"] as const, "none");
      if (!type || tag === undefined) return undefined;
      return { protocol, tag, settings: { response: type } };
    }
  }
}

/** The addresses vnext lists, as far as they can be read: for TLS and Host defaults. */
function rawAddresses(settings: Obj): string[] {
  const list = Array.isArray(settings.vnext) ? settings.vnext : [];
  const out = new Set<string>();
  for (const v of list) {
    const a = (v as Obj | null)?.address;
    if (typeof a === "string" && a !== "") out.add(stripBrackets(a));
  }
  return [...out];
}

function readVnext(r: Reader, s: Obj, path: string): VlessServer[] | undefined {
  r.keys(s, path, ["vnext"]);
  return r.objectList(s, "vnext", path, ["address", "port", "users"], (o, p) => {
    const address = r.requiredString(o, "address", p);
    const port = r.port(o, "port", p);
    const users = readVlessUsers(r, o, p);
    return address && port && users ? { address: stripBrackets(address), port, users } : undefined;
  });
}

function readVlessUsers(r: Reader, o: Obj, path: string): VlessUser[] | undefined {
  const known = ["id", "flow", "encryption", "level", "email"];
  return r.objectList(o, "users", path, known, (u, p): VlessUser | undefined => {
    const id = readUserId(r, u, p);
    const flow = readFlow(r, u, p);
    // As for freedom's userLevel: v2ray's outbound-side idle timer would use this level.
    const level = r.int(u, "level", p, 0, MAX_U32, 0);
    if (level) r.unsupported(join(p, "level"), "a policy level for a vless outbound user is");
    // v2ray uses an outbound user's email only for statistics; it changes nothing on the wire.
    r.string(u, "email", p, "");
    const enc = u.encryption;
    let ok = true;
    if (enc !== "none") {
      ok = false;
      r.problem(
        join(p, "encryption"),
        enc === undefined
          ? 'is required and must be "none", as in v2ray'
          : `must be "none", got ${describe(enc)}`,
      );
    }
    return id && flow !== undefined && level === 0 && ok
      ? { id: id.id, idBytes: id.bytes, flow, encryption: "none" }
      : undefined;
  });
}

const DOMAIN_STRATEGIES = ["AsIs", "UseIP", "UseIPv4", "UseIPv6"] as const;

function readFreedomSettings(
  r: Reader,
  s: Obj,
  path: string,
): FreedomOutboundConfig["settings"] | undefined {
  r.keys(s, path, ["domainStrategy", "redirect", "timeout", "userLevel"]);
  const domainStrategy = r.choice(s, "domainStrategy", path, DOMAIN_STRATEGIES, "AsIs");
  // v2ray runs a second idle timer on the outbound side with the policy of this level (and
  // `timeout` as its connIdle when the level is 0). dray's one timer per connection follows the
  // inbound's level, so anything but the defaults is refused rather than ignored.
  const userLevel = r.int(s, "userLevel", path, 0, MAX_U32, 0);
  if (userLevel) {
    r.unsupported(join(path, "userLevel"), "a policy level for freedom (the inbound's applies) is");
  }
  const timeout = r.int(s, "timeout", path, 0, MAX_U32, 0);
  if (timeout) {
    r.unsupported(
      join(path, "timeout"),
      "freedom's own idle timeout (set policy.levels.N.connIdle for the inbound's level) is",
    );
  }
  const raw = r.string(s, "redirect", path, "");
  let redirect: FreedomOutboundConfig["settings"]["redirect"] | undefined = null;
  if (raw) {
    const colon = raw.lastIndexOf(":");
    const host = stripBrackets(colon < 0 ? raw : raw.slice(0, colon));
    const portText = colon < 0 ? "" : raw.slice(colon + 1);
    const port = portText === "" ? 0 : Number(portText);
    if (colon < 0 || !/^\d*$/.test(portText) || port > 65535) {
      redirect = r.problem(
        join(path, "redirect"),
        `must be "host:port" (either may be empty), got ${describe(raw)}`,
      );
    } else {
      // v2ray keeps the original address when the redirect's is empty or 0.0.0.0.
      redirect = { address: host === "0.0.0.0" ? "" : host, port };
    }
  }
  if (!domainStrategy || userLevel !== 0 || timeout !== 0 || redirect === undefined) {
    return undefined;
  }
  return { domainStrategy, redirect };
}
