/**
 * The only module that writes to the console or log files.
 *
 * Two streams, as in v2ray: the error log (leveled diagnostics) and the access log (one line per
 * proxied connection). Either goes to the console (stderr / stdout) or appends to a file. User ids
 * never appear in either.
 */
export type LogLevel = "debug" | "info" | "warning" | "error" | "none";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3, none: 4 };

export interface LoggerOptions {
  level?: LogLevel;
  /** File path for the error log; undefined or "" = stderr; "none" = discard. */
  error?: string;
  /** File path for the access log; undefined or "" = stdout; "none" = discard. */
  access?: string;
}

export interface AccessRecord {
  inbound: string;
  source: string;
  destination: string;
  outbound: string;
  /**
   * Why that outbound: "rule 3: domain:example.com", "default" (no rule matched), "-" (no
   * outbound was chosen).
   */
  rule: string;
  /** "ok", or the error message that ended the connection. */
  result: string;
  up: number;
  down: number;
  ms: number;
}

type Sink = (line: string) => void;

const encoder = new TextEncoder();

function sink(target: string | undefined, fallback: "stdout" | "stderr"): Sink {
  if (target === "none") return () => {};
  if (!target) {
    const out = fallback === "stdout" ? Deno.stdout : Deno.stderr;
    return (line) => {
      try {
        out.writeSync(encoder.encode(line + "\n"));
      } catch {
        // A closed console must not take the proxy down.
      }
    };
  }
  const file = Deno.openSync(target, { append: true, create: true });
  return (line) => {
    try {
      file.writeSync(encoder.encode(line + "\n"));
    } catch {
      // Disk full or file gone: losing a log line is better than losing connections.
    }
  };
}

export class Logger {
  readonly level: LogLevel;
  #error: Sink;
  #access: Sink | undefined;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? "warning";
    this.#error = this.level === "none" ? () => {} : sink(options.error, "stderr");
    // undefined when discarded, so access() skips formatting a line nobody reads.
    this.#access = options.access === "none" ? undefined : sink(options.access, "stdout");
  }

  /** A logger that prints nothing: the default for library code and tests. */
  static silent(): Logger {
    return new Logger({ level: "none", access: "none" });
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level] && this.level !== "none";
  }

  #write(level: Exclude<LogLevel, "none">, message: string): void {
    if (!this.enabled(level)) return;
    this.#error(`${timestamp()} [${level}] ${message}`);
  }

  debug(message: string): void {
    this.#write("debug", message);
  }
  info(message: string): void {
    this.#write("info", message);
  }
  warn(message: string): void {
    this.#write("warning", message);
  }
  error(message: string): void {
    this.#write("error", message);
  }

  access(r: AccessRecord): void {
    this.#access?.(`${timestamp()} ${formatAccess(r)}`);
  }
}

/**
 * An access line after its timestamp:
 * `INBOUND SOURCE -> DESTINATION via OUTBOUND [RULE] RESULT up=N down=N MSms`. The rule is one
 * bracketed field: brackets inside it (a regexp) show as parentheses, so a parser can take
 * everything up to the first "]".
 */
export function formatAccess(r: AccessRecord): string {
  const rule = r.rule.replace(/\[/g, "(").replace(/\]/g, ")");
  return `${r.inbound} ${r.source} -> ${r.destination} via ${r.outbound} [${rule}] ${r.result} ` +
    `up=${r.up} down=${r.down} ${r.ms}ms`;
}

function timestamp(): string {
  return new Date().toISOString().replace("T", " ").replace("Z", "");
}
