/**
 * PLACEHOLDER — the lead replaces this with the real wiring (inbounds → outbounds).
 *
 * `startApp` starts every inbound and outbound of a parsed config. `close()` stops accepting, lets
 * open connections finish for a bounded grace period, then closes everything; `done` settles when
 * the app stops by itself (rejects on a fatal error).
 */
import type { Config } from "./config/types.ts";
import type { Logger } from "./log.ts";

export interface App {
  close(): Promise<void>;
  done: Promise<void>;
}

export function startApp(_config: Config, _opts: { logger: Logger }): Promise<App> {
  return Promise.reject(new Error("not wired yet"));
}
