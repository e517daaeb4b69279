/**
 * `dray demo`: both ends of dray on one machine, with no config and no network beyond loopback.
 *
 * It starts, on 127.0.0.1 with ports the system picks:
 * - a small web page (Deno.serve);
 * - a dray server: VLESS over HTTP/2 + TLS (the throwaway demo certificate in lib/demo/certs.ts)
 *   in front of the freedom outbound;
 * - a dray client: a SOCKS5 inbound and an HTTP proxy inbound, both going out through VLESS to
 *   that server, trusting the demo CA.
 * The server and the client are two configs (demoServerConfig, demoClientConfig) run by startApp,
 * the same path as `dray run`: the demo wires nothing itself.
 * Then it fetches the page through each client inbound, prints the route, the bytes and the time,
 * and keeps everything running (printing the curl lines to try) until stopped.
 */
import { startApp } from "./app.ts";
import { parseConfigObject } from "./config/parse.ts";
import type { Config } from "./config/types.ts";
import { DEMO_CA_PEM, DEMO_CERT_PEM, DEMO_KEY_PEM } from "./demo/certs.ts";
import { errorMessage } from "./error_message.ts";
import { Logger } from "./log.ts";
import { closeQuietly } from "./net/close_quietly.ts";

export interface DemoOptions {
  /** Where the demo's report goes, one line per call (main.ts passes a stdout writer). */
  print: (line: string) => void;
  /** Diagnostics and access log of the four parts; default silent. */
  logger?: Logger;
  /**
   * Stops a running demo. Without it, `runDemo` stops on SIGINT (and SIGTERM where there is one).
   */
  signal?: AbortSignal;
}

/** The running demo: where each part listens, and how to stop it. */
export interface Demo {
  readonly pageUrl: string;
  readonly serverPort: number;
  readonly socksPort: number;
  readonly httpPort: number;
  /** The page's bytes, to compare with what arrives through the proxy. */
  readonly page: Uint8Array;
  close(): Promise<void>;
}

/** One fetch through a client inbound. */
export interface DemoFetch {
  via: "SOCKS5" | "HTTP proxy";
  status: number;
  /** Body bytes received. */
  bytes: number;
  /** The body is exactly the page that was served. */
  intact: boolean;
  ms: number;
}

const HOST = "127.0.0.1";
const SERVER_NAME = "localhost";
const HTTP_PATH = "/dray-demo";
/** Bounds one demo fetch; loopback answers in milliseconds. */
const FETCH_TIMEOUT_MS = 10_000;
/** Largest response the demo fetcher reads. */
const MAX_RESPONSE = 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The dray server's config, as a user would write it: VLESS over HTTP/2 + TLS (the demo
 * certificate inline) in front of freedom. `port` is a placeholder: see {@link systemPorts}.
 */
export function demoServerConfig(id: string): Config {
  return systemPorts(parseConfigObject({
    inbounds: [{
      protocol: "vless",
      tag: "demo-server",
      listen: HOST,
      port: 1,
      settings: { clients: [{ id }], decryption: "none" },
      streamSettings: {
        network: "http",
        security: "tls",
        httpSettings: { host: [SERVER_NAME], path: HTTP_PATH },
        tlsSettings: {
          certificates: [{ certificate: pemLines(DEMO_CERT_PEM), key: pemLines(DEMO_KEY_PEM) }],
        },
      },
    }],
    outbounds: [{ protocol: "freedom", tag: "direct" }],
  }));
}

/**
 * The dray client's config: a SOCKS5 and an HTTP proxy inbound going out through VLESS to the
 * server on `serverPort`, trusting the demo CA (Deno trusts it beside its built-in roots).
 */
export function demoClientConfig(id: string, serverPort: number): Config {
  return systemPorts(parseConfigObject({
    inbounds: [
      { protocol: "socks", tag: "demo-socks", listen: HOST, port: 1, settings: { udp: true } },
      { protocol: "http", tag: "demo-http", listen: HOST, port: 2 },
    ],
    outbounds: [{
      protocol: "vless",
      tag: "demo-vless",
      settings: {
        vnext: [{ address: HOST, port: serverPort, users: [{ id, encryption: "none" }] }],
      },
      streamSettings: {
        network: "http",
        security: "tls",
        httpSettings: { host: [SERVER_NAME], path: HTTP_PATH },
        tlsSettings: {
          serverName: SERVER_NAME,
          certificates: [{ certificate: pemLines(DEMO_CA_PEM), usage: "verify" }],
        },
      },
    }],
  }));
}

/**
 * Every inbound on a port the system picks. A config file cannot say port 0 (the parser wants
 * 1-65535, as v2ray does), so the demo's configs carry distinct placeholders and this clears them.
 */
function systemPorts(config: Config): Config {
  return { ...config, inbounds: config.inbounds.map((i) => ({ ...i, port: 0 })) };
}

/** PEM text as the array of lines a config's inline `certificate`/`key` takes. */
function pemLines(pem: string): string[] {
  return pem.trimEnd().split("\n");
}

/**
 * Starts the page, then the dray server and the dray client, each a {@link Config} run by
 * {@link startApp} as `dray run` runs one. On failure whatever started is closed.
 */
export async function startDemo(options: { logger?: Logger } = {}): Promise<Demo> {
  const logger = options.logger ?? Logger.silent();
  const page = demoPage();
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => {});
  };
  try {
    const web = Deno.serve({ hostname: HOST, port: 0, onListen: () => {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path !== "/") return new Response("not found\n", { status: 404 });
      return new Response(page.slice(), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    });
    closers.push(() => web.shutdown());

    const id = crypto.randomUUID();
    const server = await startApp(demoServerConfig(id), { logger });
    closers.push(() => server.close());
    const serverPort = portOf(server.inbounds, "demo-server");
    const client = await startApp(demoClientConfig(id, serverPort), { logger });
    closers.push(() => client.close());

    return {
      pageUrl: `http://${HOST}:${web.addr.port}/`,
      serverPort,
      socksPort: portOf(client.inbounds, "demo-socks"),
      httpPort: portOf(client.inbounds, "demo-http"),
      page,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function portOf(inbounds: readonly { tag: string; port: number }[], tag: string): number {
  const found = inbounds.find((i) => i.tag === tag);
  if (!found) throw new Error(`the demo config has no inbound "${tag}"`);
  return found.port;
}

/** Fetches the page through the SOCKS5 inbound and through the HTTP proxy inbound. */
export async function fetchThroughDemo(demo: Demo): Promise<DemoFetch[]> {
  const url = new URL(demo.pageUrl);
  const hostPort = url.host;
  const results: DemoFetch[] = [];
  for (const via of ["SOCKS5", "HTTP proxy"] as const) {
    const started = performance.now();
    const conn = await Deno.connect({
      hostname: HOST,
      port: via === "SOCKS5" ? demo.socksPort : demo.httpPort,
    });
    const timer = setTimeout(() => closeQuietly(conn), FETCH_TIMEOUT_MS);
    try {
      const io = new Io(conn);
      let target = url.pathname;
      if (via === "SOCKS5") {
        await socksConnect(io, url.hostname, Number(url.port));
      } else {
        target = url.href; // absolute-form, as a proxy expects
      }
      await io.write(
        enc.encode(`GET ${target} HTTP/1.1\r\nHost: ${hostPort}\r\nConnection: close\r\n\r\n`),
      );
      const { status, body } = await readResponse(io);
      results.push({
        via,
        status,
        bytes: body.byteLength,
        intact: equalBytes(body, demo.page),
        ms: performance.now() - started,
      });
    } catch (err) {
      throw new Error(`demo fetch through ${via} failed: ${errorMessage(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  }
  return results;
}

/**
 * The whole demo: start, fetch through both inbounds, print what happened and the commands to try,
 * then keep running until `signal` aborts (or SIGINT/SIGTERM without one), and close. Rejects when
 * a fetch fails or arrives damaged, after closing.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const { print } = options;
  const demo = await startDemo({ logger: options.logger });
  try {
    print("dray demo: a dray client and a dray server on this machine (nothing leaves 127.0.0.1)");
    print(`  web page     ${demo.pageUrl}  (a local HTTP server)`);
    print(
      `  dray server  ${HOST}:${demo.serverPort}  VLESS over HTTP/2 + TLS, path ${HTTP_PATH}, ` +
        `throwaway demo certificate for "${SERVER_NAME}"`,
    );
    print(
      `  dray client  SOCKS5 ${HOST}:${demo.socksPort}, HTTP proxy ${HOST}:${demo.httpPort}` +
        ` → VLESS → dray server → freedom → the page`,
    );
    print("");
    const fetches = await fetchThroughDemo(demo);
    for (const f of fetches) {
      const port = f.via === "SOCKS5" ? demo.socksPort : demo.httpPort;
      print(
        `fetched ${demo.pageUrl} via ${f.via} (${HOST}:${port}) → dray server ` +
          `(${HOST}:${demo.serverPort}) → page: HTTP ${f.status}, ${f.bytes} bytes, ` +
          `${f.ms.toFixed(1)} ms, ${f.intact ? "identical to what the page served" : "DAMAGED"}`,
      );
    }
    const bad = fetches.find((f) => f.status !== 200 || !f.intact);
    if (bad) throw new Error(`the page came back wrong through ${bad.via}`);
    print("");
    print("Try it yourself while the demo runs:");
    print(`  curl --socks5-hostname ${HOST}:${demo.socksPort} ${demo.pageUrl}`);
    print(`  curl --proxy http://${HOST}:${demo.httpPort} ${demo.pageUrl}`);
    print("Press Ctrl-C to stop.");
    await stopped(options.signal);
    print("dray demo: stopping");
  } finally {
    await demo.close();
  }
}

/** Resolves when `signal` aborts, or on SIGINT/SIGTERM when there is no signal. */
function stopped(signal: AbortSignal | undefined): Promise<void> {
  if (signal) {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
  const names: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  return new Promise((resolve) => {
    const onSignal = () => {
      for (const name of names) Deno.removeSignalListener(name, onSignal);
      resolve();
    };
    for (const name of names) Deno.addSignalListener(name, onSignal);
  });
}

/** The demo page: a little HTML, padded so the byte count means something. */
function demoPage(): Uint8Array {
  const rows = Array.from(
    { length: 200 },
    (_, i) => `<li>row ${i + 1}: this line crossed VLESS over HTTP/2 and TLS, twice encrypted</li>`,
  ).join("\n");
  return enc.encode(
    `<!doctype html>\n<html><head><title>dray demo</title></head><body>\n` +
      `<h1>Hello through dray</h1>\n<p>client → VLESS (HTTP/2 + TLS) → server → this page</p>\n` +
      `<ul>\n${rows}\n</ul>\n</body></html>\n`,
  );
}

/** A socket read into one growing buffer (small, bounded by MAX_RESPONSE). */
class Io {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let off = 0; off < bytes.byteLength;) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Reads until at least `n` bytes are buffered; false at EOF first. */
  async fill(n: number): Promise<boolean> {
    if (n > MAX_RESPONSE) throw new RangeError(`response larger than ${MAX_RESPONSE} bytes`);
    const chunk = new Uint8Array(64 * 1024);
    while (this.#buf.byteLength < n) {
      if (this.#eof) return false;
      const got = await this.#conn.read(chunk);
      if (got === null) {
        this.#eof = true;
        continue;
      }
      const next = new Uint8Array(this.#buf.byteLength + got);
      next.set(this.#buf);
      next.set(chunk.subarray(0, got), this.#buf.byteLength);
      this.#buf = next;
    }
    return true;
  }

  get buffered(): Uint8Array {
    return this.#buf;
  }

  take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async exact(n: number): Promise<Uint8Array> {
    if (!(await this.fill(n))) {
      throw new Error(`connection closed after ${this.#buf.byteLength} of ${n} bytes`);
    }
    return this.take(n);
  }
}

/** RFC 1928 CONNECT without authentication, to an IPv4 address. */
async function socksConnect(io: Io, host: string, port: number): Promise<void> {
  const ip = host.split(".").map(Number);
  await io.write(Uint8Array.of(5, 1, 0, 5, 1, 0, 1, ...ip, port >> 8, port & 0xff));
  const method = await io.exact(2);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`SOCKS5 method reply ${[...method]}`);
  const reply = await io.exact(4);
  if (reply[1] !== 0) throw new Error(`SOCKS5 CONNECT refused with REP ${reply[1]}`);
  const addrLen = reply[3] === 1 ? 4 : reply[3] === 4 ? 16 : (await io.exact(1))[0];
  await io.exact(addrLen + 2);
}

/** Reads an HTTP/1.1 response with a Content-Length body. */
async function readResponse(io: Io): Promise<{ status: number; body: Uint8Array }> {
  let end = -1;
  for (let want = 1; end < 0; want = io.buffered.byteLength + 1) {
    if (!(await io.fill(want))) throw new Error("connection closed before the response head");
    end = findHeadEnd(io.buffered);
  }
  const head = dec.decode(io.take(end + 4));
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${head.slice(0, 40)}`);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (!length) throw new Error("response without Content-Length");
  return { status, body: await io.exact(Number(length[1])) };
}

function findHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.byteLength; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
