/**
 * The raw-TLS ceiling: TLS servers in their own Deno process speaking the target protocol of
 * tests/support/target.ts (`download N`, `upload N` → sha256 hex, `echo`) directly, with no proxy
 * in between. The benchmark driver is the other Deno process. Prints
 * `{"tls": port, "tlsNoDelay": port}` as its first line, then serves until killed.
 *
 * Two listeners, because neither is the best at everything:
 * - `tls` (Deno.listenTls) is the fastest bulk TLS Deno has (~600 MiB/s each way here, against
 *   ~350–700 for node:tls), so the throughput ceiling uses it;
 * - `tlsNoDelay` (node:tls with setNoDelay) is for latency: a connection accepted by
 *   Deno.listenTls offers no setNoDelay(), and with Nagle's algorithm on, its post-handshake
 *   session tickets and small replies wait for the client's delayed ACK — 40–90 ms per new
 *   connection here, which is a stall, not a ceiling.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import tls from "node:tls";
import { Pattern } from "../../tests/support/target.ts";

const CHUNK = 64 * 1024;
const MAX_LINE = 256;
const certs = new URL("../../tests/support/certs/", import.meta.url);
const cert = Deno.readTextFileSync(new URL("server.pem", certs));
const key = Deno.readTextFileSync(new URL("server.key", certs));

/** The part of a connection the protocol needs (a Deno.Conn has it as is). */
interface Stream {
  read(buf: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
}

const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
const nodeServer = tls.createServer({ cert, key }, (socket) => {
  socket.setNoDelay(true);
  serve(nodeStream(socket)).catch(() => {});
});
await new Promise<void>((resolve) => nodeServer.listen(0, "127.0.0.1", resolve));
console.log(JSON.stringify({
  tls: (listener.addr as Deno.NetAddr).port,
  tlsNoDelay: (nodeServer.address() as { port: number }).port,
}));
for await (const conn of listener) serve(conn).catch(() => {});

function nodeStream(socket: tls.TLSSocket): Stream {
  const input: AsyncIterator<Uint8Array> = socket[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  return {
    async read(buf) {
      if (pending.byteLength === 0) {
        const next = await input.next();
        if (next.done) return null;
        pending = next.value;
      }
      const n = Math.min(buf.byteLength, pending.byteLength);
      buf.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return n;
    },
    async write(data) {
      // A copy: node may hold on to the buffer until it is flushed, and callers reuse theirs.
      if (!socket.write(data.slice())) await once(socket, "drain");
      return data.byteLength;
    },
    close() {
      socket.end(() => socket.destroy());
    },
  };
}

async function writeAll(s: Stream, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await s.write(data.subarray(off));
}

async function serve(s: Stream): Promise<void> {
  try {
    await serveCommand(s);
  } finally {
    try {
      s.close();
    } catch {
      // Closed already.
    }
  }
}

async function serveCommand(s: Stream): Promise<void> {
  const buf = new Uint8Array(CHUNK);
  let have = 0;
  let nl = -1;
  while (nl < 0) {
    if (have >= MAX_LINE) return;
    const n = await s.read(buf.subarray(have));
    if (n === null) return;
    have += n;
    nl = buf.subarray(0, have).indexOf(10);
  }
  const [cmd, arg] = new TextDecoder().decode(buf.subarray(0, nl)).trim().split(" ");
  const rest = buf.slice(nl + 1, have);
  const size = Number(arg);
  if (cmd === "download" && Number.isSafeInteger(size)) {
    const p = new Pattern();
    for (let off = 0; off < size; off += CHUNK) {
      const take = Math.min(CHUNK, size - off);
      await writeAll(s, p.fill(take === CHUNK ? buf : new Uint8Array(take)));
    }
  } else if (cmd === "upload" && Number.isSafeInteger(size)) {
    const h = createHash("sha256");
    let got = Math.min(rest.byteLength, size);
    h.update(rest.subarray(0, got));
    while (got < size) {
      const n = await s.read(buf.subarray(0, Math.min(CHUNK, size - got)));
      if (n === null) return;
      h.update(buf.subarray(0, n));
      got += n;
    }
    await writeAll(s, new TextEncoder().encode(h.digest("hex") + "\n"));
  } else if (cmd === "echo") {
    if (rest.byteLength > 0) await writeAll(s, rest);
    for (;;) {
      const n = await s.read(buf);
      if (n === null) return;
      await writeAll(s, buf.subarray(0, n));
    }
  }
}
