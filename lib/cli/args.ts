/**
 * What every dray command shares: the exit codes, the user error that carries one, and flag
 * parsing with node:util's parseArgs turned into usage errors.
 */
import { parseArgs } from "node:util";

/**
 * Exit codes, the same for every command (`dray help` and the README list them). 23 for a bad
 * config is what `v2ray -test` and `xray run -test` exit with, so a script can tell "fix the
 * config" from "try again later".
 */
export const ExitCode = {
  ok: 0,
  /** A runtime failure: a server unreachable, a port in use, a probe that failed. */
  failure: 1,
  /** An unknown command or flag, a missing or malformed flag value. */
  usage: 2,
  /** A config, share link or subscription that cannot be used. */
  config: 23,
} as const;
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** A user error: printed as its message (lines) with no stack, then dray exits with `exitCode`. */
export class UserError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = ExitCode.failure, options?: ErrorOptions) {
    super(message, options);
    this.name = "UserError";
    this.exitCode = exitCode;
  }
}

/** "dray <command>: <message>" plus where to find the usage, exit 2. */
export function usageError(command: string, message: string): UserError {
  const name = command === "main" ? "dray" : `dray ${command}`;
  return new UserError(
    `${name}: ${message}\nRun "dray help${command === "main" ? "" : " " + command}" for usage.`,
    ExitCode.usage,
  );
}

export type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface ParseOptions {
  /** How many positional arguments the command takes (default 0). */
  positionals?: number;
  /** Stop at the first positional: everything from it on is returned as is (a command line). */
  stopAtPositional?: boolean;
}

/** node:util parseArgs, with its errors turned into our usage errors. Adds -h/--help. */
export function parseCommandArgs(
  command: string,
  args: string[],
  options: OptionSpec,
  opts: ParseOptions = {},
): { values: Values; positionals: string[] } {
  const positionals = opts.positionals ?? 0;
  let flagArgs = args;
  let rest: string[] = [];
  if (opts.stopAtPositional) {
    const split = commandStart(args, options);
    flagArgs = args.slice(0, split.at);
    rest = args.slice(split.at + (split.dashes ? 1 : 0));
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: flagArgs,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: positionals > 0,
      strict: true,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    switch (e.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw usageError(command, `unknown option "${quoted ?? e.message}"`);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        throw usageError(command, `option "${quoted?.replace(/ <value>$/, "")}" needs a value`);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
        throw usageError(command, `unexpected argument "${quoted ?? e.message}"`);
      default:
        throw usageError(command, e.message);
    }
  }
  if (parsed.positionals.length > positionals) {
    throw usageError(command, `unexpected argument "${parsed.positionals[positionals]}"`);
  }
  return {
    values: parsed.values as Values,
    positionals: opts.stopAtPositional ? rest : parsed.positionals,
  };
}

/**
 * Where a wrapped command line starts: at "--", or at the first argument that is neither a flag
 * nor a flag's value. Flags after it belong to the command (`dray exec curl -v …`).
 */
function commandStart(args: string[], options: OptionSpec): { at: number; dashes: boolean } {
  const takesValue = (arg: string): boolean => {
    if (arg.includes("=")) return false;
    if (arg.startsWith("--")) return options[arg.slice(2)]?.type === "string";
    const short = arg.slice(1);
    return short.length === 1 &&
      Object.values(options).some((o) => o.short === short && o.type === "string");
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return { at: i, dashes: true };
    if (!arg.startsWith("-") || arg === "-") return { at: i, dashes: false };
    if (takesValue(arg)) i++;
  }
  return { at: args.length, dashes: false };
}

/** A string option given once (the last one wins, as with most CLIs). */
export function stringValue(values: Values, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === "string" ? v : undefined;
}

/** A repeatable string option: every value, in order. */
export function stringValues(values: Values, name: string): string[] {
  const v = values[name];
  if (Array.isArray(v)) return v;
  return typeof v === "string" ? [v] : [];
}

/** A whole number within [min, max] given as a flag, or a usage error naming the flag. */
export function intValue(
  command: string,
  values: Values,
  name: string,
  range: { min: number; max: number; fallback: number },
): number {
  const text = stringValue(values, name);
  if (text === undefined) return range.fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= range.min && n <= range.max)) {
    throw usageError(
      command,
      `--${name} must be a whole number ${range.min}-${range.max}, got "${text}"`,
    );
  }
  return n;
}

/** A duration in seconds (decimals allowed, e.g. 0.5) as milliseconds, or a usage error. */
export function secondsValue(
  command: string,
  values: Values,
  name: string,
  fallbackMs: number,
): number {
  const text = stringValue(values, name);
  if (text === undefined) return fallbackMs;
  const s = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(s > 0 && s <= 3600)) {
    throw usageError(command, `--${name} must be seconds in (0, 3600], got "${text}"`);
  }
  return Math.round(s * 1000);
}
