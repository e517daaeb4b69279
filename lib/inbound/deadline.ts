import type { Deadlines } from "../net/deadline_queue.ts";
import type { Duplex } from "../net/duplex.ts";

/**
 * Closes `conn` unless the returned function is called within `ms`: the handshake deadline.
 * `onFire` runs just before the close (to tell a timeout from other endings). With `deadlines`
 * (the server's) it shares their timer, else it gets one of its own.
 */
export function deadline(
  conn: Duplex,
  ms: number,
  onFire?: () => void,
  deadlines?: Deadlines,
): () => void {
  const fire = () => {
    onFire?.();
    conn.close();
  };
  if (deadlines) {
    const d = deadlines.add(ms, fire);
    return () => d.cancel();
  }
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
}
