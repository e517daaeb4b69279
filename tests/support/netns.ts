/**
 * A network namespace joined to the root namespace by a veth pair, for network faults no process
 * signal can make: a server in the namespace is reached at `address`, and `blackhole()` takes the
 * namespace's (the server's) end of the pair down, so packets to it vanish without a reset — a
 * dropped route, a dead link.
 *
 * Never the root namespace's end: with it down its route disappears and packets for the address
 * leave by the default route instead of vanishing. The namespace's end is the only one we toggle.
 *
 * Needs root (CI runs the suite as root). Each namespace gets a random /30 in 10.213.0.0/16 that
 * no interface uses, and a name with our pid, so parallel test processes never collide; `close()`
 * deletes the namespace (which deletes the pair), and `sweepStaleNamespaces()` removes the ones
 * left by a test process that died.
 */

const PREFIX = "dray-t";
let counter = 0;

export interface NetnsHostOptions {
  /** Bring `lo` up inside the namespace too (default true). */
  loopback?: boolean;
}

export class NetnsHost implements AsyncDisposable {
  /** The namespace's name (`ip netns exec <name> …`). */
  readonly name: string;
  /** The root namespace's end: its address, where a server in the namespace reaches us. */
  readonly hostAddress: string;
  /** The namespace's end: where the root namespace reaches a server in the namespace. */
  readonly address: string;
  readonly #hostIf: string;
  readonly #nsIf: string;
  #closed = false;

  private constructor(name: string, hostIf: string, nsIf: string, base: number) {
    this.name = name;
    this.#hostIf = hostIf;
    this.#nsIf = nsIf;
    this.hostAddress = dotted(base + 1);
    this.address = dotted(base + 2);
  }

  static async create(options: NetnsHostOptions = {}): Promise<NetnsHost> {
    await sweepStaleNamespaces();
    const n = counter++;
    const name = `${PREFIX}${Deno.pid}-${n}`;
    // Interface names are at most 15 bytes.
    const tag = `${(Deno.pid % 1_000_000).toString(36)}${n.toString(36)}`;
    const hostIf = `dh${tag}`;
    const nsIf = `ds${tag}`;
    const base = await freeSubnet();
    const host = new NetnsHost(name, hostIf, nsIf, base);
    try {
      await ip("netns", "add", name);
      await ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf);
      await ip("link", "set", nsIf, "netns", name);
      await ip("addr", "add", `${host.hostAddress}/30`, "dev", hostIf);
      await ip("link", "set", hostIf, "up");
      await ip("-n", name, "addr", "add", `${host.address}/30`, "dev", nsIf);
      await ip("-n", name, "link", "set", nsIf, "up");
      if (options.loopback ?? true) await ip("-n", name, "link", "set", "lo", "up");
    } catch (err) {
      await host.close();
      throw err;
    }
    return host;
  }

  /** `ip netns exec <name> cmd args…` as a command (the child is `cmd` itself: ip execs it). */
  command(cmd: string, options: Deno.CommandOptions = {}): Deno.Command {
    return new Deno.Command("ip", {
      ...options,
      args: ["netns", "exec", this.name, cmd, ...(options.args ?? [])],
    });
  }

  /** Packets to and from the namespace vanish: its end of the veth pair goes down. */
  async blackhole(): Promise<void> {
    await ip("-n", this.name, "link", "set", this.#nsIf, "down");
  }

  /** Undoes blackhole(): the namespace's end comes back up (its address and route with it). */
  async restore(): Promise<void> {
    await ip("-n", this.name, "link", "set", this.#nsIf, "up");
  }

  /** Whether the namespace's end is up, as the kernel reports it. */
  async isUp(): Promise<boolean> {
    const out = await ip("-n", this.name, "-o", "link", "show", this.#nsIf);
    return /[<,]UP[,>]/.test(out);
  }

  /** Deletes the namespace; the veth pair goes with it. Never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await ip("netns", "del", this.name).catch(() => {});
    // Deleting the namespace deletes its end and so the pair; make sure of the root end.
    await ip("link", "del", this.#hostIf).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Deletes namespaces of ours whose test process is gone (a crash skipped its close()). */
export async function sweepStaleNamespaces(): Promise<void> {
  const list = await ip("netns", "list");
  for (const line of list.split("\n")) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\d+)`).exec(line.trim());
    if (!m || Number(m[2]) === Deno.pid) continue;
    try {
      await Deno.stat(`/proc/${m[2]}`);
    } catch {
      await ip("netns", "del", m[1]).catch(() => {});
    }
  }
}

/** Runs `ip args…`; rejects with its stderr when it fails. */
async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`ip ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** The base address (as a number) of a /30 in 10.213.0.0/16 no interface has an address in. */
async function freeSubnet(): Promise<number> {
  const used = new Set<number>();
  for (const m of (await ip("-o", "-4", "addr", "show")).matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)) {
    used.add(toNumber(m[1]) & ~3);
  }
  const base16 = toNumber("10.213.0.0");
  // Bounded: 64 random tries among 16384 subnets.
  for (let i = 0; i < 64; i++) {
    const candidate = base16 + Math.floor(Math.random() * 16384) * 4;
    if (!used.has(candidate)) return candidate;
  }
  throw new Error("no free /30 in 10.213.0.0/16");
}

function toNumber(dottedQuad: string): number {
  return dottedQuad.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}
