/**
 * The RFC 6455 §4 opening handshake as HTTP/1.1 messages: the client's Upgrade request and the
 * server's 101 answer, built and checked. Pure; the heads are parsed by the HTTP/1 codec.
 */
import { createHash } from "node:crypto";
import {
  encodeHead,
  getHeader,
  type Headers,
  headerTokens,
  HttpError,
  type RequestHead,
  type ResponseHead,
} from "../http1/message.ts";

/** §1.3: the GUID appended to the client's key before hashing. */
const KEY_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** §4.2.2: the value of Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + KEY_GUID).digest("base64");
}

/**
 * §4.1: "The request MUST include a header field with the name |Sec-WebSocket-Key|. The value of
 * this header field MUST be a nonce consisting of a randomly selected 16-byte value that has been
 * base64-encoded".
 */
export function newClientKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

export interface UpgradeRequest {
  /** Request target: path and query, starting with "/". */
  path: string;
  /** The Host header. */
  host: string;
  key: string;
  /** Extra headers (wsSettings.headers without Host, the early-data header). */
  headers?: Headers;
}

/** Header names we set ourselves; a configured header of the same name is left out. */
const OWN_HEADERS = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
]);

/** The client's opening request (§4.1), as bytes. */
export function encodeUpgradeRequest(r: UpgradeRequest): Uint8Array {
  const headers: Headers = [
    ["Host", r.host],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", r.key],
    ["Sec-WebSocket-Version", "13"],
  ];
  for (const [name, value] of r.headers ?? []) {
    if (!OWN_HEADERS.has(name.toLowerCase())) headers.push([name, value]);
  }
  return encodeHead(`GET ${r.path} HTTP/1.1`, headers);
}

/**
 * Checks the server's answer (§4.1, "the client MUST validate the server's response as
 * follows"); throws an Error naming what was wrong (the status and reason for a refusal).
 * `protocol` is the Sec-WebSocket-Protocol we offered, if any.
 */
export function checkUpgradeResponse(head: ResponseHead, key: string, protocol?: string): void {
  // "If the status code received from the server is not 101, the client handles the response
  // per HTTP [RFC2616] procedures."
  if (head.status !== 101) {
    throw new Error(`WebSocket upgrade refused: HTTP ${head.status} ${head.reason}`.trim());
  }
  // "If the response lacks an |Upgrade| header field or the |Upgrade| header field contains a
  // value that is not an ASCII case-insensitive match for the value "websocket", the client
  // MUST _Fail the WebSocket Connection_." Likewise Connection must contain "Upgrade".
  if (!hasToken(getHeader(head.headers, "upgrade"), "websocket")) {
    throw new Error("WebSocket upgrade failed: the 101 response has no Upgrade: websocket");
  }
  if (!hasToken(getHeader(head.headers, "connection"), "upgrade")) {
    throw new Error("WebSocket upgrade failed: the 101 response has no Connection: Upgrade");
  }
  // "If the response lacks a |Sec-WebSocket-Accept| header field or the |Sec-WebSocket-Accept|
  // contains a value other than the base64-encoded SHA-1 of the concatenation of the
  // |Sec-WebSocket-Key| ... the client MUST _Fail the WebSocket Connection_."
  const accept = getHeader(head.headers, "sec-websocket-accept");
  if (accept !== acceptKey(key)) {
    throw new Error(
      `WebSocket upgrade failed: Sec-WebSocket-Accept is ${
        accept === undefined ? "missing" : `"${accept.slice(0, 40)}"`
      }, not the hash of our key`,
    );
  }
  // "If the response includes a |Sec-WebSocket-Extensions| header field and this header field
  // indicates the use of an extension that was not present in the client's handshake ... the
  // client MUST _Fail the WebSocket Connection_." We offer none.
  const extensions = getHeader(head.headers, "sec-websocket-extensions");
  if (extensions) {
    throw new Error(`WebSocket upgrade failed: server chose extensions "${extensions}"`);
  }
  // "If the response includes a |Sec-WebSocket-Protocol| header field and this header field
  // indicates the use of a subprotocol that was not present in the client's handshake ... the
  // client MUST _Fail the WebSocket Connection_." A server may leave out the one we offered (the
  // early-data carrier): v2ray's and Xray's servers echo it, a CDN in front may not.
  const chosen = getHeader(head.headers, "sec-websocket-protocol");
  if (chosen !== undefined && chosen !== protocol) {
    throw new Error(`WebSocket upgrade failed: server chose subprotocol "${chosen.slice(0, 40)}"`);
  }
}

/** What the server needs from a valid opening request. */
export interface UpgradeRequestInfo {
  key: string;
  /** The raw Sec-WebSocket-Protocol value, if any. */
  protocol: string | undefined;
}

/**
 * Checks a client's opening request (§4.2.1); throws HttpError with the status to answer:
 * 400 for a malformed or non-upgrade request, 426 (with Sec-WebSocket-Version: 13) for another
 * version. The path is the caller's to check.
 */
export function parseUpgradeRequest(head: RequestHead): UpgradeRequestInfo {
  // §4.2.1: "An HTTP/1.1 or higher GET request".
  if (head.method !== "GET" || head.version !== "1.1") {
    throw new HttpError(400, `Not a WebSocket upgrade: ${head.method} HTTP/${head.version}`);
  }
  // "A |Host| header field containing the server's authority."
  if (!getHeader(head.headers, "host")) {
    throw new HttpError(400, "WebSocket upgrade request has no Host");
  }
  // "An |Upgrade| header field containing the value "websocket"" and "A |Connection| header
  // field that includes the token "Upgrade""
  if (!hasToken(getHeader(head.headers, "upgrade"), "websocket")) {
    throw new HttpError(400, "Not a WebSocket upgrade: no Upgrade: websocket");
  }
  if (!hasToken(getHeader(head.headers, "connection"), "upgrade")) {
    throw new HttpError(400, "Not a WebSocket upgrade: no Connection: Upgrade");
  }
  // "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded, is 16
  // bytes in length."
  const key = getHeader(head.headers, "sec-websocket-key") ?? "";
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) {
    throw new HttpError(400, `WebSocket upgrade request has a bad Sec-WebSocket-Key "${key}"`);
  }
  // "A |Sec-WebSocket-Version| header field, with a value of 13." §4.4: otherwise answer with
  // the versions we speak (426 Upgrade Required, as Go's servers do).
  const version = getHeader(head.headers, "sec-websocket-version");
  if (version !== "13") {
    throw new HttpError(426, `WebSocket version "${version ?? ""}" is not 13`);
  }
  return { key, protocol: getHeader(head.headers, "sec-websocket-protocol") };
}

/** The server's 101 answer (§4.2.2), echoing `protocol` when given. */
export function encodeUpgradeResponse(key: string, protocol?: string): Uint8Array {
  const headers: Headers = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", acceptKey(key)],
  ];
  if (protocol !== undefined) headers.push(["Sec-WebSocket-Protocol", protocol]);
  return encodeHead("HTTP/1.1 101 Switching Protocols", headers);
}

function hasToken(value: string | undefined, token: string): boolean {
  return headerTokens(value).includes(token);
}
