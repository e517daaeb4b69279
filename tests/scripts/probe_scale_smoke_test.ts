/**
 * Runs the probe-at-scale benchmark with a handful of servers and checks that every alive server
 * passed and every black-holed one failed at the tls stage. Its time and memory are for the
 * benchmark to report, not for a test to assert.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/bench/probe_scale.ts", import.meta.url);

Deno.test("scripts/bench/probe_scale.ts: alive servers pass, black-holed ones fail at tls", async () => {
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SCRIPT.pathname,
      "--servers",
      "5",
      "--dead",
      "2",
      "--repeats",
      "1",
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stderr = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, stderr);
  const report = JSON.parse(new TextDecoder().decode(run.stdout));
  assert.equal(report.allAsExpected, true, stderr);
  assert.deepEqual(
    report.runs.map((
      r: { passed: number; failedAsExpected: number },
    ) => [r.passed, r.failedAsExpected]),
    [[3, 2]],
  );
  assert.ok(report.maxPeakRssMiB > 0);
});
