/**
 * allowInsecure for the commands that dial servers (run, probe, exec): Deno can skip certificate
 * checks only process-wide, so dray restarts itself with the flag that does.
 */
import { UserError } from "./args.ts";
import { messageOf } from "../error_message.ts";

/**
 * The V8 flags deno.json's start and compile tasks run dray with: a 1 MiB young generation. V8
 * otherwise grows it to tens of MiB under allocation and keeps that memory (measured: ~100 KiB of
 * RSS per idle proxied connection, ~55 KiB with this; peak RSS at 512 parallel downloads 237 →
 * 201 MiB). And the memory reducer's full GC 5 s after the heap grew instead of 30 s, so what a
 * burst of connections left is collected, and given back (heap_trimmer.ts), soon after it.
 * A relaunched child gets them too.
 */
export const V8_FLAGS = "--max-semi-space-size=1,--gc-memory-reducer-start-delay-ms=5000";

/** Set in the environment of a relaunched child so it never relaunches again. */
export const RELAUNCH_MARKER = "DRAY_INSECURE_RELAUNCHED";
/**
 * Deno verifies every TLS certificate and can skip that only process-wide, per host, with
 * `--unsafely-ignore-certificate-errors=HOST,…` (there is no per-connection option and no
 * environment variable for it in Deno 2.9). So `allowInsecure` relaunches dray under `deno run`
 * with that flag for exactly the insecure hosts; the marker variable stops a second relaunch.
 *
 * A compiled binary cannot take Deno flags at run time: there the warning says how to get the
 * same effect (build with the flag, or trust the server's CA with a "verify" certificate).
 * Returns the child's exit code, or undefined to carry on in this process (no insecure hosts,
 * or this process is the relaunched child).
 */
export async function relaunchInsecure(
  hosts: string[],
  opts: { warn: (line: string) => void },
): Promise<number | undefined> {
  if (hosts.length === 0 || Deno.env.get(RELAUNCH_MARKER) === "1") return undefined;
  const list = hosts.join(",");
  if (Deno.build.standalone) {
    opts.warn(
      `dray: warning: allowInsecure for ${list} cannot take effect in a compiled binary unless it ` +
        `was built with "deno compile --unsafely-ignore-certificate-errors=${list}"; ` +
        `certificates are verified. To trust a private CA instead, add it to tlsSettings.certificates ` +
        `with "usage": "verify".`,
    );
    return undefined;
  }
  const perms = ["read", "write", "net", "env", "run", "sys", "ffi", "import"] as const;
  const flags = perms
    .filter((name) => Deno.permissions.querySync({ name }).state === "granted")
    .map((name) => `--allow-${name}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...flags,
      "--unstable-net",
      `--v8-flags=${V8_FLAGS}`,
      `--unsafely-ignore-certificate-errors=${list}`,
      Deno.mainModule,
      ...Deno.args,
    ],
    env: { [RELAUNCH_MARKER]: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  });
  let proc: Deno.ChildProcess;
  try {
    proc = child.spawn();
  } catch (e) {
    throw new UserError(
      `dray: allowInsecure (${list}) needs dray to restart itself with ` +
        `--unsafely-ignore-certificate-errors=${list}, which failed: ${messageOf(e)}. ` +
        `Grant --allow-run, or start deno with that flag and ${RELAUNCH_MARKER}=1 set.`,
    );
  }
  // The child does the work; pass shutdown signals on and exit as it exits.
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  // These handlers are never removed either: a signal arriving between the child's exit and
  // ours must not kill this process, replacing the child's exit code with a signal status.
  for (const sig of signals) {
    Deno.addSignalListener(sig, () => {
      try {
        proc.kill(sig);
      } catch {
        // Already gone.
      }
    });
  }
  const status = await proc.status;
  return status.code;
}
