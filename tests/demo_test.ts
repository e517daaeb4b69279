import { deepEqual, equal, ok } from "node:assert/strict";
import {
  demoClientConfig,
  demoServerConfig,
  fetchThroughDemo,
  runDemo,
  startDemo,
} from "../lib/demo.ts";
import { DEMO_CA_PEM } from "../lib/demo/certs.ts";

Deno.test("startDemo() serves the page through the SOCKS5 and HTTP inbounds of the dray client, intact", async () => {
  const demo = await startDemo();
  try {
    const fetches = await fetchThroughDemo(demo);
    equal(fetches.length, 2);
    for (const f of fetches) {
      equal(f.status, 200, f.via);
      equal(f.bytes, demo.page.byteLength, f.via);
      ok(f.intact, f.via);
    }
  } finally {
    await demo.close();
  }
});

Deno.test("runDemo() prints the route and working curl lines, and stops when asked", async () => {
  const lines: string[] = [];
  const stop = new AbortController();
  const ready = Promise.withResolvers<void>();
  const running = runDemo({
    print: (line) => {
      lines.push(line);
      if (line.startsWith("Press Ctrl-C")) ready.resolve();
    },
    signal: stop.signal,
  });
  running.catch((err) => ready.reject(err));
  try {
    await ready.promise;
    const text = lines.join("\n");
    ok(/via SOCKS5 .* HTTP 200, \d+ bytes, [\d.]+ ms, identical/.test(text), text);
    ok(/via HTTP proxy .* HTTP 200, \d+ bytes, [\d.]+ ms, identical/.test(text), text);
    // The printed commands work as printed.
    for (const line of lines.filter((l) => l.trimStart().startsWith("curl "))) {
      const args = line.trim().split(/\s+/).slice(1);
      const out = await new Deno.Command("curl", {
        args: ["--silent", "--show-error", "--max-time", "10", ...args],
        stdout: "piped",
        stderr: "piped",
        clearEnv: true,
      }).output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
      ok(new TextDecoder().decode(out.stdout).includes("<h1>Hello through dray</h1>"), line);
    }
    equal(lines.filter((l) => l.trimStart().startsWith("curl ")).length, 2);
  } finally {
    stop.abort();
    await running;
  }
  equal(lines.at(-1), "dray demo: stopping");
});

Deno.test("demoClientConfig() and demoServerConfig() are configs dray run takes: system ports, one VLESS user, the demo CA", () => {
  const id = crypto.randomUUID();
  const server = demoServerConfig(id);
  equal(server.inbounds.length, 1);
  const vless = server.inbounds[0];
  equal(vless.protocol, "vless");
  equal(vless.port, 0);
  ok(vless.protocol === "vless" && vless.settings.clients[0].id === id);
  equal(server.outbounds[0].protocol, "freedom");

  const client = demoClientConfig(id, 4433);
  deepEqual(client.inbounds.map((i) => [i.protocol, i.port]), [["socks", 0], ["http", 0]]);
  const out = client.outbounds[0];
  ok(out.protocol === "vless");
  equal(out.servers[0].port, 4433);
  equal(out.servers[0].users[0].id, id);
  ok(out.stream.security === "tls");
  deepEqual(out.stream.tls.caCerts.map((c) => c.trim()), [DEMO_CA_PEM.trim()]);
});
