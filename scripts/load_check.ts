/**
 * The parallel-download loads of issue 13 at full size, each proxy in a process of its own, every
 * download checked for length and sha256 (tests/support/load_driver.ts):
 *
 *   deno run -A scripts/load_check.ts --load h2  [--client dray|v2ray] [--runs 4]
 *   deno run -A scripts/load_check.ts --load tls [--server dray|v2ray] [--runs 3]
 *
 * - `h2`: client → v2ray 4.34 server over http (h2) + TLS, 512 parallel 1 MiB downloads through
 *   the client's SOCKS inbound (bug 3: streams cut short near the server's 250-stream limit).
 * - `tls`: the v2ray 4.34 client → server over tcp + TLS, 512 parallel 128 KiB downloads (bug 1:
 *   connections that got 0 bytes while the server logged nothing).
 * - `tcp`: the same over plain tcp.
 *
 * Each run starts fresh proxies; the target server lives for the whole invocation. Prints one line
 * per run (losses by kind, with byte counts) and what the logs said about the failed ones, then a
 * total. Exit code 1 when any download was lost. `--count` and `--size` scale the load;
 * DRAY_MAIN=<other checkout>/main.ts runs another tree's dray (before/after comparisons).
 */
import { parseArgs } from "node:util";
import { describeLosses, parallelDownloads } from "../tests/support/load_driver.ts";
import { parseBytes } from "./bench/scenarios.ts";
import {
  freePort,
  type Implementation,
  repoPath,
  type Service,
  startHelper,
  startProxy,
} from "./bench/processes.ts";

const USER_ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
const HTTP_PATH = "/load";
const SERVER_NAME = "localhost";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    load: { type: "string", default: "h2" },
    client: { type: "string" },
    server: { type: "string" },
    runs: { type: "string", default: "4" },
    count: { type: "string", default: "512" },
    size: { type: "string" },
    "timeout-s": { type: "string", default: "240" },
    loglevel: { type: "string", default: "info" },
    keep: { type: "boolean", default: false },
  },
});
if (!["h2", "tls", "tcp"].includes(values.load!)) {
  throw new Error(`--load h2|tls|tcp, not ${values.load}`);
}
const load = values.load!;
const network = load === "h2" ? "http" : "tcp";
const security = load === "tcp" ? "none" : "tls";
const client = (values.client ?? (load === "h2" ? "dray" : "v2ray")) as Implementation;
const server = (values.server ?? (load === "h2" ? "v2ray" : "dray")) as Implementation;
const runs = Number(values.runs);
const count = Number(values.count);
const size = parseBytes(values.size ?? (load === "h2" ? "1MiB" : "128KiB"));
const certs = (name: string) => repoPath(`tests/support/certs/${name}`);

function streamSettings(role: "server" | "client") {
  if (security === "none") return { network, security };
  return {
    network,
    security,
    tlsSettings: role === "server"
      ? { certificates: [{ certificateFile: certs("server.pem"), keyFile: certs("server.key") }] }
      : {
        serverName: SERVER_NAME,
        certificates: [{ usage: "verify", certificateFile: certs("ca.pem") }],
      },
    ...(network === "http" ? { httpSettings: { host: [SERVER_NAME], path: HTTP_PATH } } : {}),
  };
}

function log(dir: string) {
  return { loglevel: values.loglevel, access: `${dir}/access.log`, error: `${dir}/error.log` };
}

function serverConfig(port: number, dir: string) {
  return {
    log: log(dir),
    inbounds: [{
      listen: "127.0.0.1",
      port,
      protocol: "vless",
      settings: { clients: [{ id: USER_ID }], decryption: "none" },
      streamSettings: streamSettings("server"),
    }],
    outbounds: [{ protocol: "freedom" }],
  };
}

function clientConfig(socksPort: number, serverPort: number, dir: string) {
  return {
    log: log(dir),
    inbounds: [{
      listen: "127.0.0.1",
      port: socksPort,
      protocol: "socks",
      settings: { auth: "noauth", udp: false },
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
      streamSettings: streamSettings("client"),
    }],
  };
}

/** Lines of a log file that match, counted by a short key (the text after the address). */
async function logSummary(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return "(no log)";
  }
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    // Numbers and addresses vary per line; what is left names the kind of line.
    const key = line.replace(/^\S+ \S+ /, "").replace(/\d+/g, "N").slice(0, 140);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 12)
    .map(([k, n]) => `    ${String(n).padStart(5)}  ${k}`).join("\n");
}

const { service: target, ports } = await startHelper("target", "target_main.ts");
console.log(
  `load ${load}: ${client} client → ${server} server over ${network}+${security}, ${count} × ${size} bytes, ` +
    `${runs} runs${Deno.env.get("DRAY_MAIN") ? ` (dray: ${Deno.env.get("DRAY_MAIN")})` : ""}`,
);
let lost = 0;
const perRun: number[] = [];
try {
  for (let run = 1; run <= runs; run++) {
    const dir = await Deno.makeTempDir({ prefix: "dray-load-" });
    const started: Service[] = [];
    try {
      await Deno.mkdir(`${dir}/server`);
      await Deno.mkdir(`${dir}/client`);
      const serverPort = freePort();
      started.push(
        await startProxy("server", server, serverConfig(serverPort, `${dir}/server`), serverPort),
      );
      const socksPort = freePort();
      started.push(
        await startProxy(
          "client",
          client,
          clientConfig(socksPort, serverPort, `${dir}/client`),
          socksPort,
        ),
      );
      const r = await parallelDownloads({
        socksPort,
        target: { host: "127.0.0.1", port: ports.tcp },
        count,
        size,
        timeoutMs: Number(values["timeout-s"]) * 1000,
      });
      lost += r.losses.length;
      perRun.push(r.losses.length);
      console.log(
        `run ${run}: ${r.losses.length} of ${count} lost in ${(r.ms / 1000).toFixed(1)} s: ` +
          describeLosses(r.losses),
      );
      if (r.losses.length > 0 || values.keep) {
        for (const role of ["server", "client"]) {
          console.log(`  ${role} error log:\n${await logSummary(`${dir}/${role}/error.log`)}`);
        }
      }
    } finally {
      for (const s of started.reverse()) await s.stop();
      if (!values.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
      else console.log(`  logs kept in ${dir}`);
    }
  }
} finally {
  await target.stop();
}
console.log(`total: ${lost} lost over ${runs} runs (per run: ${perRun.join(", ")})`);
Deno.exit(lost > 0 ? 1 : 0);
