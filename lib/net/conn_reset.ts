/**
 * A TCP reset (RST) for an accepted `Deno.Conn`, through libc: what lets plain TCP inbounds accept
 * on `Deno.listen` and still tell a client that the stream it was reading was cut short.
 *
 * Deno has no abortive close: `conn.close()` shuts the write side down (FIN) before it closes, and
 * SO_LINGER 0 does not help (the FIN is already out). Linux offers another way: `connect()` with
 * an address of family AF_UNSPEC on a connected TCP socket disconnects it (tcp_disconnect), sending
 * a RST from the states where the peer still expects data (ESTABLISHED, CLOSE_WAIT, FIN_WAIT*). The
 * socket stays Deno's: our pending read fails with ConnectionReset, a write with BrokenPipe, and
 * `conn.close()` afterwards sends nothing (its shutdown gets ENOTCONN) and frees the fd once.
 *
 * The fd comes from `Deno.internal.fd`, an own symbol Deno puts on accepted connections (not on
 * `Deno.connect`'s): internal, so detectConnReset() checks it on a real connection once, and a
 * test fails loudly if a Deno upgrade drops it.
 *
 * Needs Linux and `--allow-ffi`. libc is opened only while a reset is under way (and once to see
 * that it loads): a DynamicLibrary held for good would cost ~3 MiB of RSS (measured, the first
 * bound symbol of a process) before any stream was ever cut.
 */

/**
 * How long a reset waits for the kernel's send queue to empty before the RST discards it. A
 * reading client on loopback takes megabytes in milliseconds; a slow remote one may still lose
 * the tail, but sees the reset either way — never an EOF. The node:net fallback (SocketDuplex),
 * which cannot see the queue, always waits this long.
 */
export const RESET_DELAY_MS = 500;

/** Whether connections accepted by `Deno.listen` can be reset here, and if not, why not. */
export type ConnResetSupport = { supported: true } | { supported: false; reason: string };

/** linux/sockios.h SIOCOUTQ (= TIOCOUTQ, 0x5411 on x86_64 and aarch64). */
const SIOCOUTQ = 0x5411n;
/** A struct sockaddr of family AF_UNSPEC (0): all zeros, as long as a sockaddr_in. */
const AF_UNSPEC_ADDR = new Uint8Array(16);
/** The first pauses between looks at the send queue double from this, up to MAX_POLL_MS. */
const FIRST_POLL_MS = 1;
const MAX_POLL_MS = 32;

const LIBC_SYMBOLS = {
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int ioctl(int fd, unsigned long request, ...): one pointer argument after the request.
  ioctl: { parameters: ["i32", "usize", "buffer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

let detection: Promise<ConnResetSupport> | undefined;
/** Set once detection succeeded: the symbol under which an accepted Deno.Conn keeps its fd. */
let fdSymbol: symbol | undefined;
/** Open while resets are under way, closed when the last one ends. */
let libc: Libc | undefined;
let resetsUnderWay = 0;

/**
 * Finds out once per process whether accepted connections can be reset: Linux, FFI granted,
 * libc loadable, and a connection accepted from `Deno.listen` (a throwaway one on loopback)
 * carrying its fd. Never rejects.
 */
export function detectConnReset(): Promise<ConnResetSupport> {
  detection ??= detect().then((support) => support, (err) => ({
    supported: false,
    reason: `probing a loopback connection failed: ${(err as Error).message}`,
  }));
  return detection;
}

async function detect(): Promise<ConnResetSupport> {
  if (Deno.build.os !== "linux") {
    return { supported: false, reason: `not Linux (${Deno.build.os})` };
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { supported: false, reason: "FFI is not granted (--allow-ffi)" };
  }
  try {
    Deno.dlopen("libc.so.6", {}).close();
  } catch (err) {
    return { supported: false, reason: `libc.so.6 cannot be loaded: ${(err as Error).message}` };
  }
  const symbol = await acceptedFdSymbol();
  if (symbol === undefined) {
    return { supported: false, reason: "an accepted Deno.Conn carries no fd (Deno.internal.fd)" };
  }
  fdSymbol = symbol;
  return { supported: true };
}

/** The symbol under which a connection accepted on loopback keeps a numeric fd, if any. */
async function acceptedFdSymbol(): Promise<symbol | undefined> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, accepted] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  try {
    const symbol = Object.getOwnPropertySymbols(accepted)
      .find((s) => s.description === "Deno.internal.fd");
    if (symbol === undefined) return undefined;
    const fd = (accepted as unknown as Record<symbol, unknown>)[symbol];
    return Number.isSafeInteger(fd) && (fd as number) >= 0 ? symbol : undefined;
  } finally {
    client.close();
    accepted.close();
  }
}

/** The fd of an accepted connection once detection succeeded; undefined otherwise. */
function fdOf(conn: Deno.Conn): number | undefined {
  if (fdSymbol === undefined) return undefined;
  const fd = (conn as unknown as Record<symbol, unknown>)[fdSymbol];
  return typeof fd === "number" ? fd : undefined;
}

/** Whether resetConn() can send a RST on `conn` (detection succeeded, `conn` has an fd). */
export function canResetConn(conn: Deno.Conn): boolean {
  return fdOf(conn) !== undefined;
}

/**
 * Sends a TCP RST on `conn` once its send queue is empty, or after `maxWaitMs` (default
 * RESET_DELAY_MS) with whatever is left discarded; resolves whether the RST went out (false where
 * `conn` cannot be reset, see canResetConn()). Does not close `conn`: the caller does, afterwards,
 * and must not close it before this settles (the fd could be reused by then).
 *
 * The queue waited for is SIOCOUTQ: bytes written and not yet acknowledged by the peer, not only
 * the unsent ones (SIOCOUTQNSD). tcp_disconnect() purges the retransmit queue along with the write
 * queue, so a segment sent but lost would never be sent again; once the peer has ACKed every byte,
 * they are in its kernel, and Linux lets the peer's reader take what it received before reporting
 * the reset. A peer that stops reading fills its window and keeps the count above 0: the bound
 * holds then.
 */
export async function resetConn(
  conn: Deno.Conn,
  options: { maxWaitMs?: number } = {},
): Promise<boolean> {
  const fd = fdOf(conn);
  if (fd === undefined) return false;
  const lib = openLibc();
  if (lib === undefined) return false;
  try {
    const deadline = performance.now() + (options.maxWaitMs ?? RESET_DELAY_MS);
    const queued = new Int32Array(1);
    const queuedBytes = new Uint8Array(queued.buffer);
    let pause = FIRST_POLL_MS;
    for (;;) {
      // -1: not a connected TCP socket any more (reset by the peer meanwhile): nothing to wait for.
      if (lib.symbols.ioctl(fd, SIOCOUTQ, queuedBytes) !== 0 || queued[0] <= 0) break;
      const left = deadline - performance.now();
      if (left <= 0) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
      pause = Math.min(pause * 2, MAX_POLL_MS);
    }
    return lib.symbols.connect(fd, AF_UNSPEC_ADDR, AF_UNSPEC_ADDR.byteLength) === 0;
  } finally {
    closeLibc();
  }
}

function openLibc(): Libc | undefined {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
    } catch {
      // Loaded at detection; failing now leaves a plain close to the caller.
      return undefined;
    }
  }
  resetsUnderWay++;
  return libc;
}

function closeLibc(): void {
  if (--resetsUnderWay > 0) return;
  libc?.close();
  libc = undefined;
}
