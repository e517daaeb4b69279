/**
 * CIDR lists (rule `ip` / `source` entries and geoip codes) compiled into sorted, disjoint
 * ranges per family, each carrying the ids (rule indexes) that cover it. A lookup is one binary
 * search, whatever the number of CIDRs or rules.
 *
 * Overlapping CIDRs match correctly. v2ray 4.34 binary-searches unmerged CIDRs and can miss
 * (`[10.0.0.0/8, 10.1.0.0/16, 10.2.0.0/16]` misses 10.3.0.1; fixed later in v2fly PR #1157).
 */
import { type Cidr, type IpAddress, toHex128 } from "./ip_address.ts";

interface Span<T> {
  first: T;
  last: T;
  id: number;
}

interface Table<T> {
  /** Inclusive bounds of disjoint ranges, ascending. */
  firsts: T[];
  lasts: T[];
  /** The ids covering each range, ascending, no duplicates. */
  ids: number[][];
}

export class IpMatcher {
  #v4: Span<number>[] = [];
  #v6: Span<bigint>[] = [];
  #t4: Table<number> | undefined;
  #t6: Table<string> | undefined;

  /** Number of CIDRs added. */
  get size(): number {
    return this.#v4.length + this.#v6.length;
  }

  add(cidr: Cidr, id = 0): void {
    if (cidr.family === 4) {
      this.#v4.push({ first: cidr.first as number, last: cidr.last as number, id });
      this.#t4 = undefined;
    } else {
      this.#v6.push({
        first: BigInt("0x" + cidr.first),
        last: BigInt("0x" + cidr.last),
        id,
      });
      this.#t6 = undefined;
    }
  }

  /** Number of disjoint ranges after merging (for figures and tests). */
  get rangeCount(): number {
    return this.#table4().firsts.length + this.#table6().firsts.length;
  }

  test(ip: IpAddress): boolean {
    return this.idsOf(ip) !== undefined;
  }

  /** The ids whose CIDRs contain `ip` (ascending), or undefined when none does. */
  idsOf(ip: IpAddress): readonly number[] | undefined {
    if (ip.family === 4) return find(this.#table4(), ip.value);
    return find(this.#table6(), ip.value);
  }

  #table4(): Table<number> {
    return this.#t4 ??= sweep(this.#v4, (n) => n + 1, (n) => n);
  }

  #table6(): Table<string> {
    return this.#t6 ??= sweep(this.#v6, (n) => n + 1n, toHex128);
  }
}

function find<T>(t: Table<T>, v: T): readonly number[] | undefined {
  let lo = 0, hi = t.firsts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (v < t.firsts[mid]) hi = mid - 1;
    else if (v > t.lasts[mid]) lo = mid + 1;
    else return t.ids[mid];
  }
  return undefined;
}

/**
 * Cuts the spans at every start and end into elementary ranges, keeps those covered by at least
 * one span with the ids covering them, and joins neighbours with equal ids.
 */
function sweep<N extends number | bigint, T>(
  spans: Span<N>[],
  next: (n: N) => N,
  out: (n: N) => T,
): Table<T> {
  const table: Table<T> = { firsts: [], lasts: [], ids: [] };
  if (spans.length === 0) return table;
  // Events: +1 for id at first, -1 for id at last+1.
  const events: Array<{ at: N; id: number; delta: 1 | -1 }> = [];
  for (const s of spans) {
    events.push({ at: s.first, id: s.id, delta: 1 }, { at: next(s.last), id: s.id, delta: -1 });
  }
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const active = new Map<number, number>();
  let lastIds: number[] | undefined;
  let lastEnd: N | undefined;
  for (let i = 0; i < events.length;) {
    const at = events[i].at;
    for (; i < events.length && events[i].at === at; i++) {
      const e = events[i];
      const n = (active.get(e.id) ?? 0) + e.delta;
      if (n === 0) active.delete(e.id);
      else active.set(e.id, n);
    }
    if (active.size === 0 || i === events.length) {
      lastIds = undefined;
      continue;
    }
    const ids = [...active.keys()].sort((a, b) => a - b);
    const end = events[i].at; // exclusive
    const last = (typeof end === "bigint" ? end - 1n : (end as number) - 1) as N;
    if (lastIds !== undefined && lastEnd === at && sameIds(lastIds, ids)) {
      table.lasts[table.lasts.length - 1] = out(last);
    } else {
      table.firsts.push(out(at));
      table.lasts.push(out(last));
      table.ids.push(ids);
    }
    lastIds = ids;
    lastEnd = end;
  }
  return table;
}

function sameIds(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
