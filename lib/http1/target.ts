/** Request targets (RFC 9112 §3.2): absolute-form for a proxy, authority-form for CONNECT. */
import { HttpError } from "./message.ts";

export interface AbsoluteTarget {
  host: string;
  port: number;
  /** origin-form: path and query, at least "/". */
  path: string;
}

/** `http://host[:port]/path?q` → its parts; anything else is a 400. */
export function parseAbsoluteTarget(target: string): AbsoluteTarget {
  const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(target);
  if (!m) {
    throw new HttpError(
      400,
      `Cannot proxy request target "${target.slice(0, 60)}": want absolute http:// URI`,
    );
  }
  const authority = m[1].includes("@") ? m[1].slice(m[1].lastIndexOf("@") + 1) : m[1];
  const { host, port } = parseAuthority(authority, 80);
  let path = m[2] || "/";
  if (path.startsWith("?")) path = "/" + path;
  return { host, port, path };
}

/** `host:port`, `[v6]:port`, or a bare host with `defaultPort`. */
export function parseAuthority(
  authority: string,
  defaultPort?: number,
): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+))(?::(\d{1,5}))?$/.exec(authority);
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || port === undefined || port < 1 || port > 65535) {
    throw new HttpError(400, `Cannot parse authority "${authority.slice(0, 60)}"`);
  }
  return { host: (m[1] ?? m[2]).toLowerCase(), port };
}
