/**
 * The raw-TLS ceiling: a TLS server in its own Deno process speaking the target protocol of
 * tests/support/target.ts (`download N`, `upload N` → sha256 hex, `echo`) directly, with no proxy
 * in between. The benchmark driver is the other Deno process. Prints `{"tls": port}` as its first
 * line, then serves until killed.
 */
import { createHash } from "node:crypto";
import { Pattern } from "../../tests/support/target.ts";

const CHUNK = 64 * 1024;
const MAX_LINE = 256;
const certs = new URL("../../tests/support/certs/", import.meta.url);

const listener = Deno.listenTls({
  hostname: "127.0.0.1",
  port: 0,
  cert: Deno.readTextFileSync(new URL("server.pem", certs)),
  key: Deno.readTextFileSync(new URL("server.key", certs)),
});
console.log(JSON.stringify({ tls: (listener.addr as Deno.NetAddr).port }));

for await (const conn of listener) {
  serve(conn).catch(() => {}).finally(() => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  });
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

async function serve(conn: Deno.TlsConn): Promise<void> {
  const buf = new Uint8Array(CHUNK);
  let have = 0;
  let nl = -1;
  while (nl < 0) {
    if (have >= MAX_LINE) return;
    const n = await conn.read(buf.subarray(have));
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
      await writeAll(conn, p.fill(take === CHUNK ? buf : new Uint8Array(take)));
    }
  } else if (cmd === "upload" && Number.isSafeInteger(size)) {
    const h = createHash("sha256");
    let got = Math.min(rest.byteLength, size);
    h.update(rest.subarray(0, got));
    while (got < size) {
      const n = await conn.read(buf.subarray(0, Math.min(CHUNK, size - got)));
      if (n === null) return;
      h.update(buf.subarray(0, n));
      got += n;
    }
    await writeAll(conn, new TextEncoder().encode(h.digest("hex") + "\n"));
  } else if (cmd === "echo") {
    if (rest.byteLength > 0) await writeAll(conn, rest);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      await writeAll(conn, buf.subarray(0, n));
    }
  }
}
