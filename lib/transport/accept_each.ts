import { errorMessage } from "../error_message.ts";
import type { Logger } from "../log.ts";
import type { Accepted, Listener } from "./listener.ts";

/** Accept failures in a row (EMFILE…) before the loop pauses; keeps it from spinning. */
const ACCEPT_ERRORS_BEFORE_PAUSE = 8;
const ACCEPT_PAUSE_MS = 200;

/**
 * The accept loop, the only one: hands every accepted stream to `serve` (not awaited) until the
 * listener is closed or `stopped()` says so. A failed accept ends one client, not the loop; a run
 * of them pauses it briefly.
 */
export async function acceptEach(
  listener: Listener,
  serve: (accepted: Accepted) => void,
  options: { logger: Logger; what: string; stopped: () => boolean },
): Promise<void> {
  let errors = 0;
  for (;;) {
    let accepted: Accepted;
    try {
      accepted = await listener.accept();
      errors = 0;
    } catch (err) {
      if (options.stopped() || err instanceof Deno.errors.BadResource) return;
      options.logger.warn(`${options.what}: accept failed: ${errorMessage(err)}`);
      if (++errors >= ACCEPT_ERRORS_BEFORE_PAUSE) {
        await new Promise((r) => setTimeout(r, ACCEPT_PAUSE_MS));
        errors = 0;
      }
      continue;
    }
    if (options.stopped()) {
      accepted.duplex.close();
      return;
    }
    serve(accepted);
  }
}
