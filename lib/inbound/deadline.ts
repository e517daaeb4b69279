import type { Duplex } from "../net/duplex.ts";

/**
 * Closes `conn` unless the returned function is called within `ms`: the handshake deadline.
 * `onFire` runs just before the close (to tell a timeout from other endings).
 */
export function deadline(conn: Duplex, ms: number, onFire?: () => void): () => void {
  const timer = setTimeout(() => {
    onFire?.();
    conn.close();
  }, ms);
  return () => clearTimeout(timer);
}
