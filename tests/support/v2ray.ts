/**
 * Launches the real v2ray 4.34 (`/usr/bin/v2ray`) as a VLESS server for interop tests.
 *
 * The config is generated into a temp dir with absolute certificate paths (v2ray resolves relative
 * paths from its working directory). `start()` resolves once v2ray logs that it started and its
 * port accepts connections, and rejects with v2ray's own output if it exits first. Everything v2ray
 * prints is kept for failure messages (`log`). Dispose (`await using`) kills it and waits for it.
 */

const V2RAY = Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray";
const CERTS = new URL("./certs/", import.meta.url);
/** How long v2ray gets to start; it takes ~50 ms on an idle machine. */
const START_TIMEOUT_MS = 10_000;

export const CA_PEM: string = Deno.readTextFileSync(new URL("ca.pem", CERTS));

export interface V2rayServerOptions {
  /** VLESS user ids (canonical UUID text). */
  clients: string[];
  network: "tcp" | "http" | "ws";
  /** wsSettings.path (network "ws"). */
  wsPath?: string;
  security: "none" | "tls";
  /** httpSettings.path / host (v2ray's defaults "/" and ["www.example.com"] when unset). */
  httpPath?: string;
  httpHost?: string[];
  /** tlsSettings.alpn (v2ray's default offers h2 and http/1.1). */
  alpn?: string[];
  /** Listen on this port (to restart a killed server where clients expect it); default: a free one. */
  port?: number;
  /** The inbound's listen address (default 127.0.0.1). */
  listen?: string;
  /** Run v2ray inside this network namespace (`ip netns exec`; see netns.ts). */
  netns?: string;
  /** policy.levels.0 entries, in seconds (v2ray names: handshake, connIdle, uplinkOnly, downlinkOnly). */
  policy?: Record<string, number>;
}

export class V2rayServer implements AsyncDisposable {
  readonly port: number;
  readonly options: V2rayServerOptions;
  #child: Deno.ChildProcess;
  #dir: string;
  #output = "";
  #status: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>;
  #stopped = false;

  private constructor(
    options: V2rayServerOptions,
    port: number,
    dir: string,
    child: Deno.ChildProcess,
    onOutput: (text: string) => void,
  ) {
    this.options = options;
    this.port = port;
    this.#dir = dir;
    this.#child = child;
    this.#status = child.status;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        this.#output += text;
        onOutput(this.#output);
      }
    };
    this.#pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
  }

  /** Everything v2ray printed so far. */
  get log(): string {
    return this.#output;
  }

  static async start(options: V2rayServerOptions): Promise<V2rayServer> {
    const port = options.port ?? freePort();
    const dir = await Deno.makeTempDir({ prefix: "dray-v2ray-" });
    const configPath = `${dir}/config.json`;
    await Deno.writeTextFile(configPath, JSON.stringify(serverConfig(options, port), null, 2));
    // `ip netns exec` execs v2ray itself, so the child's pid and signals are v2ray's.
    const child = new Deno.Command(options.netns ? "ip" : V2RAY, {
      args: [
        ...(options.netns ? ["netns", "exec", options.netns, V2RAY] : []),
        "-config",
        configPath,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const started = Promise.withResolvers<void>();
    const server = new V2rayServer(options, port, dir, child, (out) => {
      if (/V2Ray \S+ started/.test(out)) started.resolve();
    });
    const timer = setTimeout(() => started.reject(new Error("timed out")), START_TIMEOUT_MS);
    server.#status.then((s) => started.reject(new Error(`exited with code ${s.code}`)));
    try {
      await started.promise;
      // The http transport opens its listener on a goroutine after "started": wait until it accepts.
      await waitForPort(options.listen ?? "127.0.0.1", port, () => server.#status);
    } catch (err) {
      await server.stop();
      throw new Error(`v2ray did not start: ${(err as Error).message}\n${server.log}`);
    } finally {
      clearTimeout(timer);
    }
    return server;
  }

  /** v2ray's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends `signal` (SIGSTOP and SIGCONT to freeze and thaw it). */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Kills v2ray at once (SIGKILL, like a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    await this.stop("SIGKILL");
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      try {
        this.#child.kill(signal);
        // A frozen (SIGSTOPped) v2ray only acts on SIGTERM once it runs again.
        this.#child.kill("SIGCONT");
      } catch {
        // Already exited.
      }
    }
    await this.#status;
    await this.#pumps;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Connects until `port` accepts. v2ray offers no readiness signal beyond its log line, so this is
 * a bounded poll (every 10 ms, at most START_TIMEOUT_MS), failing early if the process exits.
 */
async function waitForPort(
  hostname: string,
  port: number,
  exited: () => Promise<Deno.CommandStatus>,
): Promise<void> {
  let gone = false;
  exited().then(() => (gone = true));
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (let attempt = 0; performance.now() < deadline && !gone; attempt++) {
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error(gone ? "exited while starting" : `port ${port} never accepted`);
}

/** A port that was free a moment ago (v2ray needs a number up front). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function serverConfig(o: V2rayServerOptions, port: number): unknown {
  const certPath = (name: string) => decodeURIComponent(new URL(name, CERTS).pathname);
  const stream: Record<string, unknown> = { network: o.network, security: o.security };
  if (o.security === "tls") {
    stream.tlsSettings = {
      certificates: [{ certificateFile: certPath("server.pem"), keyFile: certPath("server.key") }],
      ...(o.alpn ? { alpn: o.alpn } : {}),
    };
  }
  if (o.network === "ws") stream.wsSettings = { path: o.wsPath ?? "/" };
  if (o.network === "http") {
    stream.httpSettings = {
      ...(o.httpPath !== undefined ? { path: o.httpPath } : {}),
      ...(o.httpHost !== undefined ? { host: o.httpHost } : {}),
    };
  }
  return {
    log: { loglevel: "warning" },
    ...(o.policy ? { policy: { levels: { "0": o.policy } } } : {}),
    inbounds: [{
      listen: o.listen ?? "127.0.0.1",
      port,
      protocol: "vless",
      settings: { clients: o.clients.map((id) => ({ id })), decryption: "none" },
      streamSettings: stream,
    }],
    outbounds: [{ protocol: "freedom" }],
  };
}

/** The 16 bytes of a canonical UUID string. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new SyntaxError(`Cannot parse UUID "${uuid}"`);
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}
