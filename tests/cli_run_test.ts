/**
 * `dray run -c` as a user runs it: the real CLI in a subprocess, a config file on disk, curl
 * through it to a local web server via the real v2ray 4.34 (vless over h2+TLS), then SIGTERM.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { DEFAULT_GRACE_MS } from "../lib/app.ts";
import { assertNotServed, certPath, freePort, within } from "./support/client_app.ts";
import { readN } from "./support/fake_outbound.ts";
import { bodyOf, curl, sha256, startTarget as startHttpTarget } from "./support/proxy_e2e.ts";
import { socksConnect } from "./support/socks_client.ts";
import { startTarget } from "./support/target.ts";
import { V2rayServer } from "./support/v2ray.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const MIB = 1024 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();
/** Deno compiling main.ts and its imports on a cold cache can take a while. */
const START_MS = 30_000;
const NET_MS = 10_000;
/** Starts before giving up when a port named in the config was taken meanwhile. */
const START_ATTEMPTS = 3;

/** Collects a child's output as text and lets a test await a line matching a pattern. */
class OutputWatcher {
  text = "";
  readonly done: Promise<void>;
  #waiters = new Set<{ re: RegExp; resolve: () => void }>();

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        for (const w of this.#waiters) {
          if (w.re.test(this.text)) {
            this.#waiters.delete(w);
            w.resolve();
          }
        }
      }
    })();
  }

  /** Resolves once the output matches `re`; rejects if the stream ends first. */
  waitFor(re: RegExp): Promise<void> {
    if (re.test(this.text)) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiters.add({ re, resolve });
    this.done.then(() => reject(new Error(`output ended without ${re}:\n${this.text}`)));
    return promise;
  }
}

interface Dray extends AsyncDisposable {
  child: Deno.ChildProcess;
  stdout: OutputWatcher;
  stderr: OutputWatcher;
  socks: number;
  http: number;
  status: Promise<Deno.CommandStatus>;
}

/** Writes a config into `dir` and runs `deno run -A main.ts run -c <dir>/config.json`. */
async function runDray(dir: string, v2rayPort: number, id: string): Promise<Dray> {
  // The CA next to the config, named relatively: dray resolves it against the config's directory.
  await Deno.copyFile(certPath("ca.pem"), `${dir}/ca.pem`);
  for (let attempt = 1;; attempt++) {
    const socks = freePort();
    const http = freePort();
    const config = {
      log: { loglevel: "info" },
      inbounds: [
        { protocol: "socks", tag: "socks-in", port: socks },
        { protocol: "http", tag: "http-in", port: http },
      ],
      outbounds: [{
        protocol: "vless",
        tag: "proxy",
        settings: {
          vnext: [{ address: "127.0.0.1", port: v2rayPort, users: [{ id, encryption: "none" }] }],
        },
        streamSettings: {
          network: "h2",
          security: "tls",
          tlsSettings: {
            serverName: "localhost",
            certificates: [{ certificateFile: "ca.pem", usage: "verify" }],
          },
          httpSettings: { path: "/dray", host: ["dray.test"] },
        },
      }],
    };
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "run", "-c", `${dir}/config.json`],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new OutputWatcher(child.stdout);
    const stderr = new OutputWatcher(child.stderr);
    const status = child.status;
    const stop = async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await status;
      await stdout.done;
      await stderr.done;
    };
    try {
      await within(stderr.waitFor(/\[info\] dray \S+ started/), START_MS, "dray start");
    } catch (err) {
      await stop();
      if (attempt < START_ATTEMPTS && /in use/i.test(stderr.text)) continue;
      throw new Error(`${(err as Error).message}\n${stderr.text}`);
    }
    return { child, stdout, stderr, socks, http, status, [Symbol.asyncDispose]: stop };
  }
}

Deno.test("dray run -c: curl through the CLI via v2ray, then SIGTERM exits 0 within the grace period", async () => {
  const id = crypto.randomUUID();
  const web = startHttpTarget();
  const target = startTarget();
  const dir = await Deno.makeTempDir({ prefix: "dray_run_" });
  try {
    await using v2ray = await V2rayServer.start({
      clients: [id],
      network: "http",
      security: "tls",
      httpPath: "/dray",
      httpHost: ["dray.test"],
    });
    await using dray = await runDray(dir, v2ray.port, id);
    assert.match(
      dray.stderr.text,
      new RegExp(`inbound "socks-in" listening on port ${dray.socks}`),
    );

    const size = 8 * MIB + 1;
    const url = `http://127.0.0.1:${web.addr.port}/bytes/${size}`;
    const expected = await sha256(bodyOf(size));
    for (
      const via of [["--socks5-hostname", `127.0.0.1:${dray.socks}`], [
        "--proxy",
        `http://127.0.0.1:${dray.http}`,
      ]]
    ) {
      const r = await curl([...via, url]);
      assert.equal(r.code, 0, `${via[0]}: ${r.stderr}\n${dray.stderr.text}`);
      assert.equal(await sha256(r.stdout), expected, via[0]);
    }

    // A connection open when SIGTERM arrives keeps working through the grace period.
    const c = await socksConnect(dray.socks, 1, "127.0.0.1", target.tcpPort);
    try {
      await c.writer.write(enc.encode("echo\nbefore"));
      assert.equal(dec.decode(await readN(c.reader, 6, c.carry)), "before");
      const t0 = performance.now();
      dray.child.kill("SIGTERM");
      await within(dray.stderr.waitFor(/SIGTERM: closing/), NET_MS, "closing log line");
      // No new clients once closing.
      await assertNotServed(dray.socks);
      await c.writer.write(enc.encode("after"));
      assert.equal(dec.decode(await readN(c.reader, 5, c.carry)), "after");
      c.duplex.close();
      // The last connection gone, dray exits at once rather than at the end of the grace period.
      const status = await within(dray.status, DEFAULT_GRACE_MS + 5_000, "dray exit");
      const ms = performance.now() - t0;
      assert.equal(status.code, 0, dray.stderr.text);
      assert.equal(status.signal, null);
      assert.ok(ms < DEFAULT_GRACE_MS, `exited ${ms} ms after SIGTERM`);
    } finally {
      c.duplex.close();
    }
    await dray.stdout.done;
    await dray.stderr.done;
    // One access-log line per proxied connection, on stdout. (The SOCKS ones end "idle timeout":
    // v2ray's freedom never passes the client's EOF on, so the downlinkOnly timer ends them.)
    const lines = dray.stdout.text.split("\n").filter((l) => / via proxy /.test(l));
    assert.equal(lines.length, 3, dray.stdout.text);
    for (const inbound of ["socks-in", "http-in"]) {
      const line = new RegExp(
        ` ${inbound} 127\\.0\\.0\\.1:\\d+ -> tcp:127\\.0\\.0\\.1:${web.addr.port} via proxy .* down=(\\d+) `,
      );
      // The whole body came down (through SOCKS with the response head in front).
      const down = lines.map((l) => line.exec(l)).find((m) => m !== null)?.[1];
      assert.ok(Number(down) >= size, `${line} with down >= ${size} in\n${lines.join("\n")}`);
    }
    assert.doesNotMatch(
      dray.stdout.text + dray.stderr.text,
      new RegExp(id),
      "the user id is never logged",
    );
  } finally {
    await target.close();
    await web.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
