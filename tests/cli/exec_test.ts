/**
 * `dray exec` as a script runs it: curl through a real v2ray 4.34 server via ALL_PROXY and
 * HTTP_PROXY, exit codes passed through.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { proxyEnv } from "../../lib/cli/exec.ts";
import { V2rayServer } from "../support/v2ray.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const ID = "5783a3e7-e373-51cd-8642-c83782b807c5";
const dec = new TextDecoder();

interface Run {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

async function dray(args: string[], cwd?: string): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** A web server that answers with the request path; counts its requests. */
function webTarget() {
  const ac = new AbortController();
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      requests++;
      return new Response(`hello ${new URL(req.url).pathname}`);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get requests() {
      return requests;
    },
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("dray exec runs curl through the proxy via ALL_PROXY (SOCKS5) and http_proxy (HTTP), stdout passed through", async () => {
  await using web = webTarget();
  await using v2ray = await V2rayServer.start({ clients: [ID], network: "tcp", security: "none" });
  const dir = await Deno.makeTempDir({ prefix: "dray_exec_" });
  try {
    const access = `${dir}/access.log`;
    await Deno.writeTextFile(
      `${dir}/client.json`,
      JSON.stringify({
        log: { loglevel: "warning", access },
        // Never started by exec: it brings its own inbound (this port may well be taken).
        inbounds: [{ protocol: "socks", port: 1080 }],
        outbounds: [{
          tag: "v2ray",
          protocol: "vless",
          settings: {
            vnext: [{
              address: "127.0.0.1",
              port: v2ray.port,
              users: [{ id: ID, encryption: "none" }],
            }],
          },
        }],
      }),
    );
    // The target is on loopback, so NO_PROXY must not exclude it here.
    const base = ["exec", "-c", `${dir}/client.json`, "--no-proxy", ""];
    // curl prefers the scheme's own variable, then all_proxy; without both, ALL_PROXY.
    const socks = await dray([
      ...base,
      "--",
      "env",
      "-u",
      "http_proxy",
      "-u",
      "HTTP_PROXY",
      "-u",
      "all_proxy",
      "curl",
      "-v",
      "-sS",
      `${web.url}/via-socks`,
    ]);
    assert.equal(socks.code, 0, socks.stderr);
    assert.equal(socks.stdout, "hello /via-socks");
    assert.match(
      socks.stderr,
      /Uses proxy env variable ALL_PROXY == 'socks5h:\/\/127\.0\.0\.1:\d+'/,
    );

    const http = await dray([...base, "curl", "-v", "-sS", `${web.url}/via-http`]);
    assert.equal(http.code, 0, http.stderr);
    assert.equal(http.stdout, "hello /via-http");
    assert.match(http.stderr, /Uses proxy env variable http_proxy == 'http:\/\/127\.0\.0\.1:\d+'/);
    assert.equal(web.requests, 2);

    // Both went through dray's inbound and the v2ray outbound. (The result is not asserted: the
    // HTTP proxy's connection may still be open when exec stops the proxy, "closed on shutdown".)
    const log = await Deno.readTextFile(access);
    const lines = log.trim().split("\n");
    assert.equal(lines.length, 2, log);
    const target = web.url.slice("http://".length).replaceAll(".", "\\.");
    for (const line of lines) {
      assert.match(
        line,
        new RegExp(` exec 127\\.0\\.0\\.1:\\d+ -> (tcp:)?${target} via v2ray `),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dray exec passes the command's exit code through: 0, non-zero, 128+N for a signal", async () => {
  // A link to a port nobody serves: exec only needs the proxy to start, not to reach anything.
  const link = `vless://${ID}@127.0.0.1:9#unused`;
  const cases: Array<[string, number]> = [
    ["exit 0", 0],
    ["exit 3", 3],
    ["kill -TERM $$", 128 + 15],
    ["kill -KILL $$", 128 + 9],
  ];
  for (const [script, code] of cases) {
    const r = await dray(["exec", "--link", link, "--", "sh", "-c", script]);
    assert.equal(r.code, code, `${script}: ${r.stderr}`);
    assert.equal(r.signal, null, "dray itself exits normally");
  }
  // The environment CMD sees.
  const env = await dray(["exec", "--link", link, "sh", "-c", "env | sort"]);
  assert.equal(env.code, 0, env.stderr);
  const port = /^ALL_PROXY=socks5h:\/\/127\.0\.0\.1:(\d+)$/m.exec(env.stdout)?.[1];
  assert.ok(port, env.stdout);
  for (const [k, v] of Object.entries(proxyEnv(Number(port), "localhost,127.0.0.1,::1"))) {
    assert.ok(env.stdout.split("\n").includes(`${k}=${v}`), `${k}=${v} in\n${env.stdout}`);
  }
});

Deno.test("dray exec forwards SIGTERM to the command and exits as it does", async () => {
  const link = `vless://${ID}@127.0.0.1:9#unused`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "exec",
      "--link",
      link,
      "--",
      "sh",
      "-c",
      // Says when its trap is set, then waits; TERM makes it exit 42.
      "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let seen = "";
  // Bounded: the loop ends at "ready" or at EOF.
  while (!seen.includes("ready")) {
    const { done, value } = await reader.read();
    if (done) break;
    seen += dec.decode(value);
  }
  assert.match(seen, /ready/);
  child.kill("SIGTERM");
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
  await child.stderr.cancel();
  assert.equal(status.code, 42);
});

Deno.test("dray exec: a missing command exits 127, no command is a usage error, a bad link 23", async () => {
  const link = `vless://${ID}@127.0.0.1:9`;
  const missing = await dray(["exec", "--link", link, "--", "no-such-command-dray-test"]);
  assert.equal(missing.code, 127);
  assert.equal(missing.stderr, "dray exec: no-such-command-dray-test: command not found\n");
  const none = await dray(["exec", "--link", link]);
  assert.equal(none.code, 2);
  const bad = await dray(["exec", "--link", `vless://${ID}@127.0.0.1`, "true"]);
  assert.equal(bad.code, 23);
  // Flags after CMD belong to it.
  const flags = await dray(["exec", "--link", link, "sh", "-c", "echo $0 $1", "-c", "--link"]);
  assert.equal(flags.code, 0, flags.stderr);
  assert.equal(flags.stdout, "-c --link\n");
});
