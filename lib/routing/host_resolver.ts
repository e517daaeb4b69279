/**
 * Names to addresses for IPIfNonMatch / IPOnDemand routing: `dns.hosts` first (keys are domain
 * patterns — in `dns.hosts` a plain key is a full match; every matching entry contributes; a
 * value is an address, or another name to look up instead, followed up to 5 times), then the system resolver with getaddrinfo semantics (/etc/hosts honoured), as v2ray 4.34's
 * local DNS client (Go net.LookupIP) does. Answers are cached briefly; failures are not cached.
 * The addresses serve the routing decision only: the outbound still gets the name.
 */
import { lookup } from "node:dns/promises";
import { DomainMatcher, type DomainPattern } from "./domain_matcher.ts";
import { type IpAddress, parseIp } from "./ip_address.ts";

export type SystemLookup = (name: string) => Promise<string[]>;

export interface HostResolverOptions {
  /** `dns.hosts` entries: a pattern and the address (or name to resolve instead) it maps to. */
  hosts?: ReadonlyArray<{ pattern: DomainPattern; address: string }>;
  /** Default: node:dns lookup (getaddrinfo), A and AAAA. */
  lookup?: SystemLookup;
  /** How long an answer is reused; default 60 s. */
  ttlMs?: number;
  /** Entries kept at most; default 1024. */
  maxEntries?: number;
  now?: () => number;
}

/** getaddrinfo through node:dns: /etc/hosts and nsswitch are honoured. */
export const systemLookup: SystemLookup = async (name) => {
  const answers = await lookup(name, { all: true, verbatim: true });
  return answers.map((a) => a.address);
};

/** 4.34 follows a name-to-name mapping in `dns.hosts` at most 5 times (StaticHosts.Lookup). */
const MAX_REDIRECTS = 5;

export class HostResolver {
  readonly #hosts = new DomainMatcher();
  readonly #values: string[] = [];
  readonly #lookup: SystemLookup;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { at: number; ips: Promise<IpAddress[]> }>();

  constructor(options: HostResolverOptions = {}) {
    for (const { pattern, address } of options.hosts ?? []) {
      this.#hosts.add(pattern, this.#values.length);
      this.#values.push(address);
    }
    this.#lookup = options.lookup ?? systemLookup;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#max = options.maxEntries ?? 1024;
    this.#now = options.now ?? Date.now;
  }

  /** The addresses of `name`; [] when it does not resolve (never rejects). */
  resolve(name: string): Promise<IpAddress[]> {
    // 4.34's DNS app strips one trailing dot before matching hosts.
    const key = (name.endsWith(".") ? name.slice(0, -1) : name).toLowerCase();
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < this.#ttlMs) return hit.ips;
    const ips = this.#resolve(key, 0);
    this.#cache.delete(key);
    if (this.#cache.size >= this.#max) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    const entry = { at: now, ips };
    this.#cache.set(key, entry);
    // Failures are not kept: the next connection asks again.
    ips.then((r) => r.length === 0 && this.#cache.get(key) === entry && this.#cache.delete(key));
    return ips;
  }

  async #resolve(name: string, depth: number): Promise<IpAddress[]> {
    const mapped: string[] = [];
    this.#hosts.forEachMatch(name, (id) => void mapped.push(this.#values[id]));
    if (mapped.length > 0) {
      const ips = mapped.map(parseIp).filter((ip): ip is IpAddress => ip !== null);
      if (ips.length > 0) return ips;
      // A single name: look that one up instead (hosts first again, a bounded number of times).
      if (depth < MAX_REDIRECTS) return await this.#resolve(mapped[0].toLowerCase(), depth + 1);
      name = mapped[0].toLowerCase();
    }
    try {
      const answers = await this.#lookup(name);
      return answers.map(parseIp).filter((ip): ip is IpAddress => ip !== null);
    } catch {
      return [];
    }
  }
}
