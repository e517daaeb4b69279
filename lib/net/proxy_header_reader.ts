/**
 * Reads the PROXY protocol header off a freshly accepted connection (a node socket, or a
 * `Deno.Conn`), before anything else (TLS, HTTP) sees its bytes — where v2ray 4.34 reads it: its
 * `acceptProxyProtocol` wraps the system listener, under TLS and the WebSocket upgrade.
 */
import type { Socket } from "node:net";
import { parseProxyHeader, type ProxyHeader } from "./proxy_protocol.ts";

export interface ReadProxyHeaderOptions {
  /** The header must be complete within this many ms. */
  timeoutMs: number;
}

/**
 * Resolves with the header once it is complete, leaving the socket paused with the bytes after
 * the header put back (`unshift`) for whoever reads next: `resume()` it, or hand it to a TLS
 * server. Rejects with `Deno.errors.InvalidData` when the socket does not start with a valid
 * header, its cause saying why (SyntaxError naming the byte offset, TimedOut, UnexpectedEof, the
 * socket's error); the caller closes the socket.
 */
export function readProxyHeader(
  socket: Socket,
  options: ReadProxyHeaderOptions,
): Promise<ProxyHeader> {
  const { promise, resolve, reject: rejectWith } = Promise.withResolvers<ProxyHeader>();
  const reject = (cause: Error) =>
    rejectWith(new Deno.errors.InvalidData("no valid PROXY protocol header", { cause }));
  let buffered = new Uint8Array(0);
  const finish = () => {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.off("error", onError);
  };
  const onData = (chunk: Uint8Array) => {
    const bytes = buffered.length === 0 ? chunk : concat(buffered, chunk);
    let header: ProxyHeader | null;
    try {
      header = parseProxyHeader(bytes);
    } catch (err) {
      finish();
      socket.pause();
      reject(err as Error);
      return;
    }
    if (header === null) {
      // A header is at most 107 (v1) or 16 + 65535 (v2) bytes: the parser bounds this.
      buffered = bytes.slice();
      return;
    }
    finish();
    socket.pause();
    if (header.byteLength < bytes.length) socket.unshift(bytes.subarray(header.byteLength));
    resolve(header);
  };
  const onEnd = () => {
    finish();
    reject(
      new Deno.errors.UnexpectedEof(
        `connection ended after ${buffered.length} bytes of a PROXY protocol header`,
      ),
    );
  };
  const onError = (err: Error) => {
    finish();
    reject(err);
  };
  const timer = setTimeout(() => {
    finish();
    socket.pause();
    reject(
      new Deno.errors.TimedOut(
        `no complete PROXY protocol header within ${options.timeoutMs} ms ` +
          `(${buffered.length} bytes)`,
      ),
    );
  }, options.timeoutMs);
  socket.on("data", onData);
  socket.on("end", onEnd);
  socket.on("error", onError);
  return promise;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A header read off a `Deno.Conn`, and the bytes that came after it in the same reads. */
export interface ConnProxyHeader {
  header: ProxyHeader;
  /** The connection's own first bytes (possibly none): whoever reads next must see them first. */
  rest: Uint8Array;
}

/**
 * As readProxyHeader(), for a `Deno.Conn`: resolves with the header and the bytes read past it
 * (a Deno.Conn cannot take bytes back; ConnDuplex's `head` can). Rejects with
 * `Deno.errors.InvalidData` as readProxyHeader() does; the caller closes the conn, which also
 * ends a read still pending after a timeout.
 */
export async function readConnProxyHeader(
  conn: Deno.Conn,
  options: ReadProxyHeaderOptions,
): Promise<ConnProxyHeader> {
  const failed = (cause: Error) =>
    new Deno.errors.InvalidData("no valid PROXY protocol header", { cause });
  let buffered: Uint8Array = new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() =>
      reject(
        new Deno.errors.TimedOut(
          `no complete PROXY protocol header within ${options.timeoutMs} ms ` +
            `(${buffered.length} bytes)`,
        ),
      ), options.timeoutMs);
  });
  const reading = (async (): Promise<ConnProxyHeader> => {
    // A v2 header's fixed part and a v1 line both fit; a longer v2 header takes more reads.
    const buf = new Uint8Array(4096);
    // Each read adds at least one byte and the parser decides within 16 + 65535 of them.
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        throw new Deno.errors.UnexpectedEof(
          `connection ended after ${buffered.length} bytes of a PROXY protocol header`,
        );
      }
      const bytes = concat(buffered, buf.subarray(0, n));
      const header = parseProxyHeader(bytes);
      if (header !== null) return { header, rest: bytes.slice(header.byteLength) };
      buffered = bytes;
    }
  })();
  try {
    return await Promise.race([reading, timedOut]);
  } catch (err) {
    // The read still pending after a timeout fails once the caller closes the conn.
    reading.catch(() => {});
    throw failed(err as Error);
  } finally {
    clearTimeout(timer);
  }
}
