/**
 * Runs the whole benchmark with tiny sizes and one repeat, and checks its JSON: every row is
 * there, and every row that ran moved its bytes intact. Figures are not checked — speed is for
 * the benchmark to report, not for tests to assert.
 */
import assert from "node:assert/strict";
import type { Report } from "../../scripts/bench/report.ts";

const BENCH = new URL("../../scripts/bench.ts", import.meta.url);
/** Rows that need nothing beyond v2ray and the dray client, so they must always run. */
const ALWAYS = ["direct", "tls", "v2ray-v2ray", "dray-v2ray"];
/** Rows through the dray server: "unavailable" (with its startup error) until it is wired. */
const DRAY_SERVER = ["v2ray-dray", "dray-dray"];

Deno.test("deno task bench --quick reports every row with verified transfers", async () => {
  const out = await Deno.makeTempDir({ prefix: "dray-bench-smoke-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        BENCH.pathname,
        "--size",
        "1MiB",
        "--parallel-size",
        "1MiB",
        "--repeats",
        "1",
        "--quick",
        "--out",
        out,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench exited with ${run.code}:\n${stderr}`);

    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.equal(files.length, 2, `expected one .json and one .md, got ${files}`);
    assert.match(files[0], /\.json$/);
    assert.match(files[1], /\.md$/);
    const report: Report = JSON.parse(await Deno.readTextFile(`${out}/${files[0]}`));
    assert.match(await Deno.readTextFile(`${out}/${files[1]}`), /\| figure \|/);
    assert.equal(report.workload.transport, "http", "http (h2) stays the default");

    assert.deepEqual(report.rows.map((r) => r.id), [
      ...ALWAYS.slice(0, 3),
      "dray-v2ray",
      ...DRAY_SERVER,
    ]);
    const scenarios = report.scenarios.map((s) => s.name);
    for (const row of report.rows) {
      if (DRAY_SERVER.includes(row.id) && row.status === "unavailable") {
        assert.match(row.unavailable ?? "", /dray server did not start/);
        continue;
      }
      assert.equal(row.status, "ok", `${row.id}: ${JSON.stringify(row.scenarios, null, 1)}`);
      // Raw TLS carries no datagrams; the burst scenario measures a proxy client process, which
      // the direct and raw TLS rows do not have; every other row runs every scenario.
      const noClient = row.id === "direct" || row.id === "tls";
      const expected = scenarios.filter((s) =>
        !(s === "udp" && row.id === "tls") && !(s === "burst" && noClient)
      );
      assert.deepEqual(Object.keys(row.scenarios), expected, row.id);
      for (const [name, s] of Object.entries(row.scenarios)) {
        assert.ok(s.verified, `${row.id} ${name} not verified: ${s.errors.join("; ")}`);
        assert.equal(s.samples.length, 1, `${row.id} ${name}`);
        assert.ok(Object.keys(s.median).length > 0, `${row.id} ${name} has no figures`);
      }
    }
    assert.ok(report.targets.length > 0);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno task bench --transport ws runs dray against v2ray both ways over ws + TLS", async () => {
  const out = await Deno.makeTempDir({ prefix: "dray-bench-smoke-ws-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        BENCH.pathname,
        ...["--size", "1MiB", "--parallel-size", "1MiB", "--repeats", "1", "--quick"],
        ...["--rows", "dray-v2ray,v2ray-dray", "--scenarios", "download,echo"],
        ...["--transport", "ws", "--out", out],
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench exited with ${run.code}:\n${stderr}`);

    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    const report: Report = JSON.parse(await Deno.readTextFile(`${out}/${files[0]}`));
    assert.equal(report.workload.transport, "ws");
    assert.match(report.command, /--transport ws/);
    assert.match(await Deno.readTextFile(`${out}/${files[1]}`), /^### Benchmark over ws \+ TLS/);
    assert.deepEqual(report.rows.map((r) => r.id), ["dray-v2ray", "v2ray-dray"]);
    for (const row of report.rows) {
      assert.equal(row.status, "ok", `${row.id}: ${JSON.stringify(row.scenarios, null, 1)}`);
      assert.deepEqual(Object.keys(row.scenarios), ["download", "echo"], row.id);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
