import { equal, ok } from "node:assert/strict";
import { fetchThroughDemo, runDemo, startDemo } from "../lib/demo.ts";

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
