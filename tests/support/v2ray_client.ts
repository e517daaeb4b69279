/**
 * Launches the real v2ray 4.34 as a VLESS CLIENT for interop tests of dray's server: a SOCKS5
 * inbound (UDP enabled) → a vless outbound over tcp, tcp+tls or http+tls to a given port.
 *
 * TLS trusts only tests/support/certs/ca.pem (`usage: "verify"`, `disableSystemRoot`), with
 * serverName "localhost" unless `serverName` says otherwise. `start()` resolves once v2ray logs that it started and the SOCKS port
 * accepts; it rejects with v2ray's output if v2ray exits first. Dispose to kill it and wait.
 */
import { freePort } from "./v2ray.ts";

const V2RAY = Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray";
const START_TIMEOUT_MS = 10_000;

export interface V2rayClientOptions {
  /** The VLESS server's port on 127.0.0.1. */
  serverPort: number;
  /** VLESS user id (canonical UUID text). */
  id: string;
  network: "tcp" | "http" | "ws";
  /** wsSettings.path (network "ws"). */
  wsPath?: string;
  security: "none" | "tls";
  httpHost?: string[];
  httpPath?: string;
  /** tlsSettings.serverName (SNI and the name verified); default "localhost". */
  serverName?: string;
}

export class V2rayClient implements AsyncDisposable {
  readonly socksPort: number;
  #child: Deno.ChildProcess;
  #dir: string;
  #output = "";
  #pumps: Promise<void>;
  #stopped = false;

  private constructor(socksPort: number, dir: string, child: Deno.ChildProcess) {
    this.socksPort = socksPort;
    this.#dir = dir;
    this.#child = child;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.#output += text;
    };
    this.#pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
  }

  /** Everything v2ray printed so far. */
  get log(): string {
    return this.#output;
  }

  static async start(options: V2rayClientOptions): Promise<V2rayClient> {
    const socksPort = freePort();
    const dir = await Deno.makeTempDir({ prefix: "dray-v2ray-client-" });
    const configPath = `${dir}/config.json`;
    await Deno.writeTextFile(configPath, JSON.stringify(clientConfig(options, socksPort), null, 2));
    const child = new Deno.Command(V2RAY, {
      args: ["-config", configPath],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const client = new V2rayClient(socksPort, dir, child);
    let exited = false;
    child.status.then(() => (exited = true));
    const deadline = performance.now() + START_TIMEOUT_MS;
    try {
      // Bounded poll: v2ray offers no readiness signal beyond its log line and an open port.
      for (let i = 0; performance.now() < deadline; i++) {
        if (exited) throw new Error("exited while starting");
        if (/V2Ray \S+ started/.test(client.log) && (await accepts(socksPort))) return client;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error("timed out");
    } catch (err) {
      await client.stop();
      throw new Error(`v2ray client did not start: ${(err as Error).message}\n${client.log}`);
    }
  }

  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
    await this.#child.status;
    await this.#pumps;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

async function accepts(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

function clientConfig(o: V2rayClientOptions, socksPort: number): unknown {
  const ca = decodeURIComponent(new URL("./certs/ca.pem", import.meta.url).pathname);
  const stream: Record<string, unknown> = { network: o.network, security: o.security };
  if (o.security === "tls") {
    stream.tlsSettings = {
      serverName: o.serverName ?? "localhost",
      disableSystemRoot: true,
      certificates: [{ certificateFile: ca, usage: "verify" }],
    };
  }
  if (o.network === "ws") stream.wsSettings = { path: o.wsPath ?? "/" };
  if (o.network === "http") {
    stream.httpSettings = {
      ...(o.httpHost ? { host: o.httpHost } : {}),
      ...(o.httpPath ? { path: o.httpPath } : {}),
    };
  }
  return {
    log: { loglevel: "warning" },
    inbounds: [{
      listen: "127.0.0.1",
      port: socksPort,
      protocol: "socks",
      settings: { auth: "noauth", udp: true, ip: "127.0.0.1" },
    }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: [{
          address: "127.0.0.1",
          port: o.serverPort,
          users: [{ id: o.id, encryption: "none" }],
        }],
      },
      streamSettings: stream,
    }],
  };
}
