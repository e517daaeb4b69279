import type { Duplex } from "./duplex.ts";
import { waitAtMost } from "./wait_at_most.ts";

/** How long a refused client gets to read our reply and close before we cut it off. */
export const LINGER_MS = 1_000;

/**
 * Ends a connection after an error reply without losing the reply: half-closes our side (FIN),
 * then reads and discards what the client still sends (at most 64 KiB, at most LINGER_MS) before
 * closing. Closing a socket with unread input sends a RST, which can destroy the reply in flight.
 */
export async function lingeringClose(
  conn: Duplex,
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reader: { read(): Promise<Uint8Array | null> },
): Promise<void> {
  const drain = async () => {
    await writer.close().catch(() => {});
    try {
      for (let total = 0; total < 64 * 1024;) {
        const chunk = await reader.read();
        if (chunk === null) break;
        total += chunk.byteLength;
      }
    } catch {
      // A reset is an ending too.
    }
  };
  await waitAtMost(drain(), LINGER_MS);
  conn.close();
}
