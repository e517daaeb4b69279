/**
 * The HTTP/2 server benchmark: our H2Connection client against three servers over TLS on
 * loopback, each in its own process —
 *   deno-serve  Deno.serve (hyper; what V2rayHttpServer used before; Nagle on),
 *   ours-node   H2ServerConnection on TlsListener (node:tls, TCP_NODELAY; InboundServer.listen with http),
 *   ours-deno   H2ServerConnection on Deno.listenTls (Nagle on; for comparison only).
 *
 *   deno run -A scripts/h2_server_bench.ts [--size 256] [--repeats 3] [--servers a,b] [--json f]
 *
 * Per server: one stream's download and upload throughput (MiB/s, byte counts checked) and the
 * median time of a small request whose body is sent before the response HEADERS (the case that
 * paid a delayed ACK under Nagle). Figures are medians of the repeats.
 */
import { parseArgs } from "node:util";
import { H2Connection } from "../lib/h2/connection.ts";
import { H2ServerConnection, type H2ServerStream } from "../lib/h2/server_connection.ts";
import { ConnDuplex } from "../lib/net/conn_duplex.ts";
import type { Duplex } from "../lib/net/duplex.ts";
import { TlsListener } from "../lib/net/tls_listener.ts";
import {
  dial,
  download,
  median,
  type SpawnedServer,
  spawnServer,
  upload,
} from "./bench/h2_client.ts";
import { benchEndpoints } from "./bench/h2_endpoints.ts";

const certs = new URL("../tests/support/certs/", import.meta.url);
const MiB = 1024 * 1024;
const SERVERS = ["deno-serve", "ours-node", "ours-deno"] as const;
type ServerKind = (typeof SERVERS)[number];
const block = new Uint8Array(256 * 1024).map((_, i) => (i * 31 + 7) & 0xff);

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "string" },
      size: { type: "string", default: "256" },
      repeats: { type: "string", default: "3" },
      servers: { type: "string", default: SERVERS.join(",") },
      json: { type: "string" },
    },
  });
  if (values.serve) await serve(values.serve as ServerKind);
  else {
    const results = [];
    for (const kind of values.servers.split(",") as ServerKind[]) {
      results.push(await benchServer(kind, Number(values.size), Number(values.repeats)));
    }
    console.log(format(results));
    if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(results, null, 2) + "\n");
  }
}

// ---- the server processes: /down?n=N sends N bytes; /up counts the body and replies the count

function ours(stream: H2ServerStream): void {
  const url = new URL(stream.request.path, "https://x");
  void (async () => {
    const w = stream.writable.getWriter();
    if (url.pathname === "/down") {
      stream.respond(200);
      for (let left = Number(url.searchParams.get("n")); left > 0;) {
        const n = Math.min(left, block.byteLength);
        await w.write(block.subarray(0, n));
        left -= n;
      }
    } else {
      let total = 0;
      for await (const c of stream.readable) total += c.byteLength;
      stream.respond(200);
      await w.write(new TextEncoder().encode(String(total)));
    }
    await w.close();
  })().catch((err) => {
    console.error(`stream ${stream.id}: ${err?.message ?? err}`);
    stream.close();
  });
}

async function serve(kind: ServerKind): Promise<void> {
  const cert = Deno.readTextFileSync(new URL("server.pem", certs));
  const key = Deno.readTextFileSync(new URL("server.key", certs));
  if (kind === "deno-serve") {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
      onListen: ({ port }) => console.log(JSON.stringify({ port })),
    }, benchEndpoints);
    Deno.addSignalListener("SIGTERM", () => server.shutdown());
    await server.finished;
    return;
  }
  let accept: () => Promise<Duplex>;
  let close: () => void;
  let port: number;
  if (kind === "ours-node") {
    const l = await TlsListener.listen({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
      alpnProtocols: ["h2"],
    });
    accept = async () => (await l.accept()).duplex;
    close = () => l.close();
    port = l.addr.port;
  } else {
    const l = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key, alpnProtocols: ["h2"] });
    accept = async () => new ConnDuplex(await l.accept());
    close = () => l.close();
    port = l.addr.port;
  }
  console.log(JSON.stringify({ port }));
  Deno.addSignalListener("SIGTERM", () => {
    close();
    Deno.exit(0);
  });
  for (;;) {
    let d: Duplex;
    try {
      d = await accept();
    } catch {
      return;
    }
    H2ServerConnection.accept(d, ours, { readIdleTimeout: 0 }).catch(() => {});
  }
}

// ---- the client

function spawn(kind: ServerKind): Promise<SpawnedServer> {
  return spawnServer([new URL(import.meta.url).pathname, "--serve", kind]);
}

/** A small request whose body goes out right behind its HEADERS; ms until the reply ends. */
async function smallRequest(conn: H2Connection): Promise<number> {
  const t0 = performance.now();
  const s = conn.request({ method: "PUT", scheme: "https", authority: "localhost", path: "/up" });
  const w = s.writable.getWriter();
  await w.write(new Uint8Array(100));
  await w.close();
  const reply = await new Response(s.readable).text();
  if (reply !== "100") throw new Error(`small request: server counted ${reply}`);
  return performance.now() - t0;
}

interface Result {
  server: ServerKind;
  sizeMiB: number;
  downloadMiBs: number;
  uploadMiBs: number;
  smallRequestMs: number;
}

async function benchServer(kind: ServerKind, sizeMiB: number, repeats: number): Promise<Result> {
  const bytes = sizeMiB * MiB;
  const server = await spawn(kind);
  const down: number[] = [];
  const up: number[] = [];
  const small: number[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      const conn = await dial(server.port);
      try {
        let t0 = performance.now();
        await download(conn, bytes);
        down.push(bytes / MiB / ((performance.now() - t0) / 1000));
        t0 = performance.now();
        await upload(conn, bytes);
        up.push(bytes / MiB / ((performance.now() - t0) / 1000));
        for (let i = 0; i < 20; i++) small.push(await smallRequest(conn));
      } finally {
        conn.close();
        await conn.closed;
      }
    }
  } finally {
    await server.stop();
  }
  return {
    server: kind,
    sizeMiB,
    downloadMiBs: median(down),
    uploadMiBs: median(up),
    smallRequestMs: median(small),
  };
}

function format(results: Result[]): string {
  const lines = [
    `HTTP/2 over TLS on loopback, our client, one stream, ${results[0]?.sizeMiB} MiB each way`,
    "server        download MiB/s  upload MiB/s  small request ms",
  ];
  for (const r of results) {
    lines.push(
      `${r.server.padEnd(12)}  ${r.downloadMiBs.toFixed(0).padStart(14)}  ${
        r.uploadMiBs.toFixed(0).padStart(12)
      }  ${r.smallRequestMs.toFixed(2).padStart(16)}`,
    );
  }
  return lines.join("\n");
}
