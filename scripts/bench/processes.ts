/**
 * The processes a benchmark run starts and stops: the target server, the raw-TLS peer, and v2ray
 * or dray as a VLESS server or as a SOCKS5 → VLESS client. Every one is a separate OS process (so
 * /proc can tell its CPU time and memory apart), listens on loopback, and is killed by `stop()`.
 *
 * Both implementations read the same v2ray JSON config: VLESS over http (h2) + TLS, or over
 * WebSocket + TLS when asked (`Transport`), the test certificates from tests/support/certs/ by absolute path (v2ray resolves relative paths from its
 * working directory), logs at "warning" with the access log off.
 */
const REPO = new URL("../../", import.meta.url);
const CERTS = new URL("tests/support/certs/", REPO);
const V2RAY = Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray";
/** dray's entry point; DRAY_MAIN=<path to another checkout's main.ts> measures that tree instead. */
const DRAY_MAIN = Deno.env.get("DRAY_MAIN");
/**
 * V8 flags for dray, as `deno task start` and `deno task compile` pass them (see deno.json);
 * DRAY_V8_FLAGS overrides them ("" for none) to measure a different setting.
 */
export const V8_FLAGS = Deno.env.get("DRAY_V8_FLAGS") ?? startTaskV8Flags();

function startTaskV8Flags(): string {
  const tasks = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)))
    .tasks as Record<string, string>;
  return /--v8-flags=(\S+)/.exec(tasks.start)?.[1] ?? "";
}
/** v2ray starts in ~50 ms and a dray process in well under a second; this only bounds failure. */
const START_TIMEOUT_MS = 20_000;
/** How much of a process's output is kept for error messages. */
const OUTPUT_LIMIT = 16 * 1024;

export const USER_ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
export const HTTP_PATH = "/bench";
export const SERVER_NAME = "localhost";

export type Implementation = "v2ray" | "dray";
/** What VLESS rides on between client and server, under TLS either way. */
export type Transport = "http" | "ws";
export const TRANSPORTS: readonly Transport[] = ["http", "ws"];
/** What each transport is called in reports. */
export const TRANSPORT_LABELS: Record<Transport, string> = {
  http: "http (h2) + TLS",
  ws: "ws + TLS",
};

export function repoPath(relative: string): string {
  return decodeURIComponent(new URL(relative, REPO).pathname);
}

function certPath(name: string): string {
  return decodeURIComponent(new URL(name, CERTS).pathname);
}

/** A started child process with its output tail kept for error messages. */
export class Service {
  /** Every child still running, so a benchmark stopped by a signal can take them down too. */
  static readonly #live = new Set<Deno.ChildProcess>();
  readonly name: string;
  readonly pid: number;
  /** The port it serves on (a proxy's inbound, or what a helper announced first). */
  port = 0;
  #child: Deno.ChildProcess;
  #output = "";
  #exited = false;
  #status: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>;
  #dir: string | undefined;
  #firstLine = Promise.withResolvers<string>();

  private constructor(name: string, child: Deno.ChildProcess, dir: string | undefined) {
    this.name = name;
    this.pid = child.pid;
    this.#child = child;
    this.#dir = dir;
    Service.#live.add(child);
    this.#status = child.status.then((s) => {
      this.#exited = true;
      Service.#live.delete(child);
      return s;
    });
    this.#pumps = Promise.all([this.#pump(child.stdout, true), this.#pump(child.stderr, false)])
      .then(() => this.#firstLine.reject(new Error("closed its output before announcing a port")));
    this.#firstLine.promise.catch(() => {});
  }

  static spawn(
    name: string,
    options: { command: string; args: string[]; cwd?: string; dir?: string },
  ): Service {
    const child = new Deno.Command(options.command, {
      args: options.args,
      cwd: options.cwd ?? repoPath("."),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Service(name, child, options.dir);
  }

  /**
   * Kills every child still running (SIGKILL). For a benchmark that is itself being stopped: a
   * test's timeout or Ctrl-C would otherwise leave v2ray and dray processes behind, orphaned.
   */
  static killAll(): void {
    for (const child of Service.#live) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** The last few KiB the process printed. */
  get log(): string {
    return this.#output.trim();
  }

  async #pump(stream: ReadableStream<Uint8Array>, stdout: boolean): Promise<void> {
    let line = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      this.#output = (this.#output + text).slice(-OUTPUT_LIMIT);
      if (stdout) {
        line += text;
        const nl = line.indexOf("\n");
        if (nl >= 0) this.#firstLine.resolve(line.slice(0, nl));
      }
    }
  }

  /** Resolves once `port` accepts TCP connections; rejects if the process exits first. */
  async waitForPort(port: number): Promise<void> {
    this.port = port;
    const deadline = performance.now() + START_TIMEOUT_MS;
    // A bounded poll: neither v2ray nor dray signals readiness other than by listening.
    while (performance.now() < deadline) {
      if (this.#exited) throw await this.#startError("exited while starting");
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    throw await this.#startError(`port ${port} did not accept within ${START_TIMEOUT_MS} ms`);
  }

  /** The JSON object a helper script prints as its first stdout line. */
  async announcement(): Promise<Record<string, number>> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out")), START_TIMEOUT_MS);
    });
    try {
      const line = await Promise.race([this.#firstLine.promise, timeout]);
      const ports = JSON.parse(line) as Record<string, number>;
      this.port = Object.values(ports)[0];
      return ports;
    } catch (err) {
      throw await this.#startError((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  async #startError(why: string): Promise<Error> {
    await this.stop();
    return new Error(`${this.name} did not start: ${why}${this.log ? `\n${this.log}` : ""}`);
  }

  /**
   * Kills the process and waits for it. SIGKILL by default: nothing is measured after a stop, so
   * it gets no grace (SIGTERM lets dray shut down cleanly, e.g. to write a --cpu-prof profile).
   */
  async stop(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    }
    await this.#status;
    await this.#pumps;
    if (this.#dir) await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** A port that was free a moment ago (v2ray and dray configs need the number up front). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs a Deno helper script from scripts/bench/ that announces its ports on stdout. */
export async function startHelper(
  name: string,
  script: string,
): Promise<{ service: Service; ports: Record<string, number> }> {
  const service = Service.spawn(name, {
    command: Deno.execPath(),
    args: ["run", "-A", repoPath(`scripts/bench/${script}`)],
  });
  const ports = await service.announcement();
  return { service, ports };
}

const LOG = { loglevel: "warning", access: "none" };

function streamSettings(role: "server" | "client", transport: Transport): Record<string, unknown> {
  return {
    network: transport,
    security: "tls",
    tlsSettings: role === "server"
      ? {
        certificates: [{
          certificateFile: certPath("server.pem"),
          keyFile: certPath("server.key"),
        }],
      }
      : {
        serverName: SERVER_NAME,
        certificates: [{ usage: "verify", certificateFile: certPath("ca.pem") }],
      },
    ...(transport === "http"
      ? { httpSettings: { host: [SERVER_NAME], path: HTTP_PATH } }
      : { wsSettings: { path: HTTP_PATH } }),
  };
}

/** A VLESS server over `transport` + TLS on `port`, with freedom as its only outbound. */
export function serverConfig(port: number, transport: Transport = "http"): unknown {
  return {
    log: LOG,
    inbounds: [{
      listen: "127.0.0.1",
      port,
      protocol: "vless",
      settings: { clients: [{ id: USER_ID }], decryption: "none" },
      streamSettings: streamSettings("server", transport),
    }],
    outbounds: [{ protocol: "freedom" }],
  };
}

/** A SOCKS5 inbound (with UDP ASSOCIATE) on `socksPort` sending everything to the VLESS server. */
export function clientConfig(
  socksPort: number,
  serverPort: number,
  transport: Transport = "http",
): unknown {
  return {
    log: LOG,
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
          port: serverPort,
          users: [{ id: USER_ID, encryption: "none" }],
        }],
      },
      streamSettings: streamSettings("client", transport),
    }],
  };
}

/**
 * Starts v2ray or dray with `config`, listening on `port` (which the config names), and resolves
 * once that port accepts connections.
 */
export async function startProxy(
  name: string,
  implementation: Implementation,
  config: unknown,
  port: number,
  /** Extra `deno run` flags for dray (e.g. --cpu-prof). */
  denoFlags: string[] = [],
): Promise<Service> {
  const dir = await Deno.makeTempDir({ prefix: "dray-bench-" });
  const path = `${dir}/config.json`;
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
  const service = implementation === "v2ray"
    ? Service.spawn(name, { command: V2RAY, args: ["-config", path], cwd: dir, dir })
    : Service.spawn(name, {
      command: Deno.execPath(),
      args: [
        "run",
        "-A",
        ...(V8_FLAGS ? [`--v8-flags=${V8_FLAGS}`] : []),
        ...denoFlags,
        DRAY_MAIN ?? repoPath("main.ts"),
        "run",
        "-c",
        path,
      ],
      dir,
    });
  await service.waitForPort(port);
  return service;
}
