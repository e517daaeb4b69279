/**
 * Binding a `node:net` or `node:tls` server as `Deno.listen` binds: the one place TcpListener and
 * TlsListener bind, so both fail with Deno's error classes and report later errors the same way.
 */
import type net from "node:net";

export interface ListenServerOptions {
  hostname: string;
  /** 0 picks a free port (see the returned address). */
  port: number;
  /** Server errors after listening (accept failing with EMFILE…), for the caller's log. */
  onError?: (err: Error) => void;
}

/**
 * Listens and resolves with the bound address; rejects as `Deno.listen` would (e.g.
 * `Deno.errors.AddrInUse`), with the server closed. Errors after that go to `onError`, never thrown:
 * a failing logger must not take the listener down either.
 */
export async function listenServer(
  server: net.Server,
  opts: ListenServerOptions,
): Promise<{ hostname: string; port: number }> {
  const listening = Promise.withResolvers<void>();
  const onListenError = (err: Error) => listening.reject(toDenoError(err));
  server.once("error", onListenError);
  server.listen({ host: opts.hostname, port: opts.port }, () => listening.resolve());
  try {
    await listening.promise;
  } catch (err) {
    server.close();
    throw err;
  }
  server.off("error", onListenError);
  server.on("error", (err: Error) => {
    try {
      opts.onError?.(err);
    } catch {
      // The caller's logger failing must not take the listener down.
    }
  });
  const a = server.address();
  if (a === null || typeof a === "string") {
    server.close();
    throw new TypeError(`Cannot listen on ${opts.hostname}:${opts.port}: no TCP address`);
  }
  return { hostname: a.address, port: a.port };
}

/** Node's bind errors carry a code; callers of a Deno-shaped listener expect Deno's classes. */
export function toDenoError(err: Error): Error {
  const code = (err as { code?: string }).code;
  const message = err.message;
  switch (code) {
    case "EADDRINUSE":
      return new Deno.errors.AddrInUse(message, { cause: err });
    case "EADDRNOTAVAIL":
      return new Deno.errors.AddrNotAvailable(message, { cause: err });
    case "EACCES":
    case "EPERM":
      return new Deno.errors.PermissionDenied(message, { cause: err });
    default:
      return err;
  }
}
