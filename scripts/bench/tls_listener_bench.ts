/**
 * TlsListener (node:tls, TCP_NODELAY) against Deno.listenTls + ConnDuplex, as dray's server side
 * uses them: bulk throughput each way and write-write-read round trips.
 *
 *   deno run -A scripts/bench/tls_listener_bench.ts [MiB=256] [repeats=3]
 *
 * The servers run in a child process (this file with `serve`), the Deno.connectTls client here.
 * Each server speaks one line: `down N` (it sends N bytes, then EOF), `up N` (it reads N bytes and
 * answers "ok\n"), `ping` (for every byte read it writes 10 bytes twice).
 */
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { TlsListener } from "../../lib/net/tls_listener.ts";

const certs = new URL("../../tests/support/certs/", import.meta.url);
const cert = Deno.readTextFileSync(new URL("server.pem", certs));
const key = Deno.readTextFileSync(new URL("server.key", certs));
const ca = Deno.readTextFileSync(new URL("ca.pem", certs));
const CHUNK = 64 * 1024;

if (Deno.args[0] === "serve") {
  await serveBoth();
} else {
  await drive(Number(Deno.args[0] ?? 256), Number(Deno.args[1] ?? 3));
}

async function serveBoth(): Promise<void> {
  const deno = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const node = await TlsListener.listen({ hostname: "127.0.0.1", port: 0, cert, key });
  console.log(JSON.stringify({ deno: deno.addr.port, node: node.addr.port }));
  (async () => {
    for await (const a of node) serve(a.duplex).catch(() => {});
  })();
  for await (const conn of deno) serve(new ConnDuplex(conn)).catch(() => {});
}

async function serve(d: Duplex): Promise<void> {
  const reader = d.readable.getReader();
  const writer = d.writable.getWriter();
  try {
    let line = "";
    let rest: Uint8Array = new Uint8Array(0);
    while (!line.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) return;
      const nl = value.indexOf(10);
      if (nl < 0) line += new TextDecoder().decode(value);
      else {
        line += new TextDecoder().decode(value.subarray(0, nl + 1));
        rest = value.subarray(nl + 1);
      }
    }
    const [cmd, arg] = line.trim().split(" ");
    const n = Number(arg);
    if (cmd === "down") {
      const buf = new Uint8Array(CHUNK);
      for (let off = 0; off < n; off += CHUNK) {
        await writer.write(buf.subarray(0, Math.min(CHUNK, n - off)));
      }
      await writer.close();
    } else if (cmd === "up") {
      let got = rest.byteLength;
      while (got < n) {
        const { done, value } = await reader.read();
        if (done) return;
        got += value.byteLength;
      }
      await writer.write(new TextEncoder().encode("ok\n"));
      await writer.close();
    } else if (cmd === "ping") {
      for (let pending = rest.byteLength;;) {
        for (let i = 0; i < pending; i++) {
          await writer.write(new Uint8Array(10));
          await writer.write(new Uint8Array(10));
        }
        const { done, value } = await reader.read();
        if (done) break;
        pending = value.byteLength;
      }
      await writer.close();
    }
  } finally {
    d.close();
  }
}

async function drive(mib: number, repeats: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "serve"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await lines.read();
    const ports = JSON.parse(first.value!.split("\n")[0]) as { deno: number; node: number };
    const size = mib * 1024 * 1024;
    const results: Record<string, number[]> = {};
    for (let r = 0; r < repeats; r++) {
      for (const [name, port] of Object.entries(ports)) {
        for (const dir of ["down", "up"] as const) {
          const mibs = await transfer(port, dir, size);
          (results[`${name} ${dir} MiB/s`] ??= []).push(mibs);
        }
        const ms = await pings(port, 20);
        (results[`${name} 20 ping ms`] ??= []).push(ms);
      }
    }
    console.log(`${mib} MiB per transfer, ${repeats} repeats (median; all)`);
    for (const [k, v] of Object.entries(results)) {
      const sorted = [...v].sort((a, b) => a - b);
      console.log(
        `${k.padEnd(20)} ${sorted[sorted.length >> 1].toFixed(1).padStart(8)}  [${
          v.map((x) => x.toFixed(1)).join(", ")
        }]`,
      );
    }
    lines.cancel();
  } finally {
    child.kill();
    await child.status;
  }
}

async function connect(port: number): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
  await conn.handshake();
  return conn;
}

async function transfer(port: number, dir: "down" | "up", size: number): Promise<number> {
  const conn = await connect(port);
  try {
    const started = performance.now();
    await conn.write(new TextEncoder().encode(`${dir} ${size}\n`));
    const buf = new Uint8Array(256 * 1024);
    if (dir === "down") {
      let got = 0;
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += n;
      }
      if (got !== size) throw new Error(`got ${got} of ${size}`);
    } else {
      const chunk = new Uint8Array(CHUNK);
      for (let off = 0; off < size;) {
        off += await conn.write(chunk.subarray(0, Math.min(CHUNK, size - off)));
      }
      const n = await conn.read(buf);
      if (n === null) throw new Error("no reply");
    }
    return size / 1048576 / ((performance.now() - started) / 1000);
  } finally {
    conn.close();
  }
}

async function pings(port: number, count: number): Promise<number> {
  const conn = await connect(port);
  try {
    await conn.write(new TextEncoder().encode("ping\n"));
    const buf = new Uint8Array(64);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      await conn.write(new Uint8Array(1));
      for (let got = 0; got < 20;) {
        const n = await conn.read(buf.subarray(got, 20));
        if (n === null) throw new Error("EOF");
        got += n;
      }
    }
    return performance.now() - started;
  } finally {
    conn.close();
  }
}
