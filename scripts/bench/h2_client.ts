/**
 * The client side shared by the HTTP/2 benchmarks (scripts/h2_bench.ts, scripts/h2_server_bench.ts):
 * spawning a server process, dialing it with our H2Connection over TLS, and the transfers.
 * Servers answer `GET /down?n=N` with N bytes and `PUT /up` with the number of body bytes.
 */
import { H2Connection } from "../../lib/h2/connection.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";

const certs = new URL("../../tests/support/certs/", import.meta.url);

export interface SpawnedServer {
  port: number;
  stop(): Promise<void>;
}

/**
 * Runs `deno run -A <args>` and waits for its first stdout line, a JSON object whose first value
 * is the port it listens on (`{"port": 1234}`, `{"tls": 1234}`).
 */
export async function spawnServer(args: string[]): Promise<SpawnedServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill(), 15_000);
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`server ${args.join(" ")} exited before it listened`);
    text += value;
  }
  clearTimeout(deadline);
  const port = Object.values(JSON.parse(text.split("\n")[0]))[0] as number;
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })().catch(() => {});
  return {
    port,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

/** TLS (TCP_NODELAY, ALPN h2, the test CA) to 127.0.0.1:port and an H2Connection on it. */
export async function dial(port: number): Promise<H2Connection> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  const tls = await Deno.startTls(tcp, {
    hostname: "localhost",
    caCerts: [Deno.readTextFileSync(new URL("ca.pem", certs))],
    alpnProtocols: ["h2"],
  });
  const { alpnProtocol } = await tls.handshake();
  if (alpnProtocol !== "h2") throw new Error(`ALPN ${alpnProtocol}`);
  return await H2Connection.connect(new ConnDuplex(tls), { readIdleTimeout: 0 });
}

/** `GET /down?n=N`, checking that exactly N bytes arrive. */
export async function download(conn: H2Connection, n: number): Promise<void> {
  const s = conn.request({
    method: "GET",
    scheme: "https",
    authority: "localhost",
    path: `/down?n=${n}`,
    endStream: true,
  });
  let got = 0;
  for await (const chunk of s.readable) got += chunk.byteLength;
  if (got !== n) throw new Error(`download: got ${got} of ${n} bytes`);
}

/** `PUT /up` with N bytes, checking the server counted all of them. */
export async function upload(conn: H2Connection, n: number): Promise<void> {
  const s = conn.request({ method: "PUT", scheme: "https", authority: "localhost", path: "/up" });
  const writer = s.writable.getWriter();
  const chunk = new Uint8Array(256 * 1024).fill(0x5a);
  for (let off = 0; off < n; off += chunk.byteLength) {
    await writer.write(chunk.subarray(0, Math.min(chunk.byteLength, n - off)));
  }
  await writer.close();
  const reply = await new Response(s.readable).text();
  if (Number(reply) !== n) throw new Error(`upload: server counted ${reply} of ${n} bytes`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
