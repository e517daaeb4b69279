/**
 * Domain patterns of routing rules and geosite lists, indexed so that one lookup answers for
 * every rule at once: `full` in a map, `domain` by walking the target's label-boundary suffixes
 * through a map, `plain` (substring) and `regexp` by scanning (lists have few of them).
 *
 * Semantics are v2ray 4.34's (common/strmatcher): plain = substring, regexp = unanchored search,
 * domain = the name itself or a suffix starting after a ".", full = equality. One deliberate
 * difference, as in v2fly 5 and Xray: matching is case-insensitive (patterns and the target are
 * lowercased; a regexp sees the lowercased target). 4.34 compares bytes as received, so
 * `EXAMPLE.com` escaped `domain:example.com` there.
 */
import { messageOf } from "../error_message.ts";

export type DomainPatternType = "plain" | "regexp" | "domain" | "full";

export interface DomainPattern {
  type: DomainPatternType;
  value: string;
}

/** The geosite.dat enum (router.proto Domain.Type) in order: Plain, Regex, Domain, Full. */
export const GEOSITE_TYPES: readonly DomainPatternType[] = ["plain", "regexp", "domain", "full"];

/**
 * Compiles a regexp written for Go's RE2. A leading `(?i)` becomes the `i` flag (JS has no inline
 * flag groups at the start); everything else must be valid JS syntax too. Throws SyntaxError
 * naming the pattern.
 */
export function compileDomainRegExp(source: string): RegExp {
  let body = source;
  let flags = "";
  if (body.startsWith("(?i)")) {
    body = body.slice(4);
    flags = "i";
  }
  try {
    return new RegExp(body, flags);
  } catch (err) {
    throw new SyntaxError(`invalid regexp "${source}": ${messageOf(err)}`, { cause: err });
  }
}

/** Maps each pattern to the ids it was added with (an id is a rule index, or 0 for one list). */
export class DomainMatcher {
  #full = new Map<string, number[]>();
  #domain = new Map<string, number[]>();
  #plain: Array<{ value: string; id: number }> = [];
  #regexp: Array<{ re: RegExp; id: number }> = [];
  #size = 0;

  /** Number of patterns added. */
  get size(): number {
    return this.#size;
  }

  /** Adds a pattern under `id`. Throws SyntaxError for a regexp JS cannot compile. */
  add(pattern: DomainPattern, id = 0): void {
    this.#size++;
    switch (pattern.type) {
      case "full":
        push(this.#full, pattern.value.toLowerCase(), id);
        return;
      case "domain":
        push(this.#domain, pattern.value.toLowerCase(), id);
        return;
      case "plain":
        this.#plain.push({ value: pattern.value.toLowerCase(), id });
        return;
      case "regexp":
        this.#regexp.push({ re: compileDomainRegExp(pattern.value), id });
        return;
    }
  }

  /** True when any pattern matches `domain`. */
  test(domain: string): boolean {
    let hit = false;
    this.#each(domain, () => (hit = true));
    return hit;
  }

  /**
   * Calls `found(id)` for every id whose pattern matches `domain` (an id may come more than once);
   * stops early when `found` returns true.
   */
  forEachMatch(domain: string, found: (id: number) => boolean | void): void {
    this.#each(domain, found);
  }

  #each(domain: string, found: (id: number) => boolean | void): void {
    if (domain === "") return;
    const d = domain.toLowerCase();
    const full = this.#full.get(d);
    if (full && emit(full, found)) return;
    if (this.#domain.size > 0) {
      // The name itself, then each suffix that starts right after a ".".
      for (let dot = -1;;) {
        const ids = this.#domain.get(dot < 0 ? d : d.slice(dot + 1));
        if (ids && emit(ids, found)) return;
        dot = d.indexOf(".", dot + 1);
        if (dot < 0) break;
      }
    }
    for (const p of this.#plain) {
      if (d.includes(p.value) && found(p.id) === true) return;
    }
    for (const r of this.#regexp) {
      if (r.re.test(d) && found(r.id) === true) return;
    }
  }
}

function push(map: Map<string, number[]>, key: string, id: number): void {
  const ids = map.get(key);
  if (ids === undefined) map.set(key, [id]);
  else if (ids[ids.length - 1] !== id) ids.push(id);
}

function emit(ids: number[], found: (id: number) => boolean | void): boolean {
  for (const id of ids) if (found(id) === true) return true;
  return false;
}
