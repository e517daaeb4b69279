/**
 * A rule's `port` / `sourcePort`: single ports and inclusive ranges, as v2ray 4.34 writes them
 * ("53", "1000-2000", "53,443,1000-2000", or the number 53).
 *
 * 4.34 facts kept here (infra/conf/common.go PortList, common/net/port.go): a reversed range such
 * as "3000-2500" loads and matches nothing; the number 0 matches nothing (no port is 0).
 */
export class PortList {
  /** Pairs [from, to], inclusive. */
  readonly #ranges: Uint32Array;

  private constructor(ranges: number[]) {
    this.#ranges = Uint32Array.from(ranges);
  }

  /**
   * Parses the JSON value of a `port` field. Throws TypeError for a wrong JSON type (4.34 refuses
   * arrays) and RangeError for a part that is not a port or a range of ports.
   */
  static parse(value: unknown): PortList {
    if (typeof value === "number") {
      if (!Number.isInteger(value) || value < 0 || value > 65535) {
        throw new RangeError(`invalid port ${value}: must be 0-65535`);
      }
      return new PortList([value, value]);
    }
    if (typeof value !== "string") {
      throw new TypeError(
        `must be a port number or a string like "53,443,1000-2000", got ${describe(value)}`,
      );
    }
    const ranges: number[] = [];
    for (const raw of value.split(",")) {
      const part = raw.trim();
      if (part === "") continue;
      const dash = part.indexOf("-");
      const from = dash < 0 ? part : part.slice(0, dash);
      const to = dash < 0 ? part : part.slice(dash + 1);
      ranges.push(parsePort(from, part), parsePort(to, part));
    }
    if (ranges.length === 0) throw new RangeError(`empty port list "${value}"`);
    return new PortList(ranges);
  }

  has(port: number): boolean {
    const r = this.#ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (port >= r[i] && port <= r[i + 1]) return true;
    }
    return false;
  }

  toString(): string {
    const parts: string[] = [];
    const r = this.#ranges;
    for (let i = 0; i < r.length; i += 2) {
      parts.push(r[i] === r[i + 1] ? `${r[i]}` : `${r[i]}-${r[i + 1]}`);
    }
    return parts.join(",");
  }
}

function parsePort(text: string, part: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new RangeError(`invalid port "${part}": each port must be 0-65535`);
  }
  return Number(text);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  return value === null ? "null" : typeof value;
}
