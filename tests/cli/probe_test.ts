/** `dray probe` as a script runs it: a subprocess, its stdout, stderr and exit code. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { formatTable } from "../../lib/cli/probe.ts";
import type { ProbeResult } from "../../lib/probe/probe.ts";
import { freePort, V2rayServer } from "../support/v2ray.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const ID = "5783a3e7-e373-51cd-8642-c83782b807c5";

async function dray(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function webTarget() {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response(null, { status: 204 }),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/generate_204`,
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("dray probe --json prints one object per server in input order; exit 1 unless all pass, 0 with --any", async () => {
  await using web = webTarget();
  await using v2ray = await V2rayServer.start({ clients: [ID], network: "tcp", security: "none" });
  const good = `vless://${ID}@127.0.0.1:${v2ray.port}#good`;
  const dead = `vless://${ID}@127.0.0.1:${freePort()}#dead`;
  const common = ["--url", web.url, "--connect-timeout", "2", "--timeout", "5"];

  const mixed = await dray(["probe", "--json", "--link", dead, "--link", good, ...common]);
  assert.equal(mixed.code, 1, mixed.stderr);
  const lines = mixed.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.deepEqual(lines.map((l) => [l.name, l.ok, l.stage, l.status]), [
    ["dead", false, "tcp", null],
    ["good", true, null, 204],
  ]);
  for (const l of lines) {
    for (const key of ["name", "server", "ok", "ms", "status", "stage", "error", "timings"]) {
      assert.ok(Object.hasOwn(l, key), `${key} in ${JSON.stringify(l)}`);
    }
  }
  assert.equal(typeof lines[1].ms, "number");
  assert.equal(lines[0].ms, null);
  assert.match(lines[0].error, /^TCP connect to 127\.0\.0\.1:\d+ failed: /);
  // Not a terminal: no progress line, only the summary.
  assert.equal(mixed.stderr, "1 of 2 servers passed\n");

  const any = await dray(["probe", "--json", "--any", "--link", dead, "--link", good, ...common]);
  assert.equal(any.code, 0, any.stderr);

  const allGood = await dray(["probe", "--link", good, "--tries", "3", ...common]);
  assert.equal(allGood.code, 0, allGood.stderr);
  const [header, row] = allGood.stdout.trimEnd().split("\n");
  assert.match(header, /^NAME +SERVER +RESULT +MS +STATUS +STAGE +ERROR$/);
  assert.match(row, new RegExp(`^good +127\\.0\\.0\\.1:${v2ray.port} +ok +\\d+\\.\\d +204 +- +-$`));
});

Deno.test("dray probe: bad flags exit 2, an invalid link exits 23", async () => {
  const usage = await dray(["probe", "--link", `vless://${ID}@127.0.0.1:1`, "--tries", "0"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^dray probe: --tries must be a whole number 1-10, got "0"\n/);
  const none = await dray(["probe"]);
  assert.equal(none.code, 2);
  const url = await dray(["probe", "--link", `vless://${ID}@127.0.0.1:1`, "--url", "ftp://x/"]);
  assert.equal(url.code, 2);
  const bad = await dray(["probe", "--link", `vless://${ID}@127.0.0.1`]);
  assert.equal(bad.code, 23);
  assert.match(bad.stderr, /^Cannot parse share link: port: is required/);
  // A --cacert that cannot be read is the user's file, not a server's failure: named, exit 1.
  const missing = "/nonexistent/dray-probe-ca.pem";
  const ca = await dray(["probe", "--link", `vless://${ID}@127.0.0.1:1`, "--cacert", missing]);
  assert.equal(ca.code, 1);
  assert.match(ca.stderr, /Cannot read --cacert "\/nonexistent\/dray-probe-ca\.pem"/);
});

Deno.test("formatTable() aligns every column but the last", () => {
  const base = {
    timings: { tcp: null, connect: null, firstByte: null },
    tries: 1,
  };
  const rows: ProbeResult[] = [
    {
      ...base,
      name: "a",
      server: "1.2.3.4:443",
      ok: true,
      ms: 12.34,
      status: 204,
      stage: null,
      error: null,
    },
    {
      ...base,
      name: "longer-name",
      server: "[::1]:8443",
      ok: false,
      ms: null,
      status: 404,
      stage: "http",
      error: "HTTP status 404 from x",
    },
  ];
  assert.deepEqual(formatTable(rows), [
    "NAME         SERVER       RESULT  MS    STATUS  STAGE  ERROR",
    "a            1.2.3.4:443  ok      12.3  204     -      -",
    "longer-name  [::1]:8443   FAIL    -     404     http   HTTP status 404 from x",
  ]);
});
