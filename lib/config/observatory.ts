/**
 * The root `observatory` section (Xray's; v2ray 4.34 has none): which outbounds to probe
 * (`subjectSelector`, tag prefixes), with what (`probeUrl`, a GET answered 2xx), how often
 * (`probeInterval`, a Go duration such as "10s" or "1m30s"), and whether all at once
 * (`enableConcurrency`). The leastPing and roundRobin balancer strategies read its results.
 */
import { describe, join, type Obj, type Reader } from "./reader.ts";

export interface ObservatoryConfig {
  subjectSelector: string[];
  probeUrl: string;
  probeIntervalMs: number;
  enableConcurrency: boolean;
}

export const DEFAULT_PROBE_URL = "https://www.gstatic.com/generate_204";
export const DEFAULT_PROBE_INTERVAL = "10s";
/** Probing more often than this would be a load on the probe target, not a health check. */
const MIN_PROBE_INTERVAL_MS = 1000;

/** The section, undefined when absent, null when wrong (the problems are reported). */
export function readObservatory(r: Reader, root: Obj): ObservatoryConfig | undefined | null {
  if (root.observatory === undefined || root.observatory === null) return undefined;
  const path = "observatory";
  const o = r.object(root.observatory, path);
  if (o === undefined) return null;
  r.keys(o, path, ["subjectSelector", "probeUrl", "probeInterval", "enableConcurrency"]);
  const subjectSelector = r.stringList(o, "subjectSelector", path);
  if (subjectSelector !== undefined && subjectSelector.length === 0) {
    r.problem(join(path, "subjectSelector"), "must list at least one outbound tag prefix");
  }
  const probeUrl = r.string(o, "probeUrl", path, DEFAULT_PROBE_URL);
  let urlOk = probeUrl !== undefined;
  if (probeUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(probeUrl);
    } catch {
      // Reported below.
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      urlOk = r.problem(
        join(path, "probeUrl"),
        `must be an http:// or https:// URL, got ${describe(probeUrl)}`,
      ) ?? false;
    }
  }
  const rawInterval = r.string(o, "probeInterval", path, DEFAULT_PROBE_INTERVAL);
  let probeIntervalMs: number | undefined;
  if (rawInterval !== undefined) {
    probeIntervalMs = parseGoDuration(rawInterval);
    if (probeIntervalMs === undefined) {
      r.problem(
        join(path, "probeInterval"),
        `must be a duration such as "10s", "1m" or "1m30s", got ${describe(rawInterval)}`,
      );
    } else if (probeIntervalMs < MIN_PROBE_INTERVAL_MS) {
      r.problem(join(path, "probeInterval"), `must be at least 1s, got ${describe(rawInterval)}`);
      probeIntervalMs = undefined;
    }
  }
  const enableConcurrency = r.bool(o, "enableConcurrency", path, false);
  if (
    !subjectSelector || subjectSelector.length === 0 || !urlOk || probeIntervalMs === undefined ||
    enableConcurrency === undefined
  ) return null;
  return { subjectSelector, probeUrl: probeUrl!, probeIntervalMs, enableConcurrency };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go `time.Duration` string ("300ms", "1.5s", "1m30s") in ms; undefined when malformed. */
export function parseGoDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  // Bounded by the text's length: each match consumes at least two characters.
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]];
    at = re.lastIndex;
  }
  return at === 0 ? undefined : total;
}
