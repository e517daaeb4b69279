import type { ByteReader } from "../net/byte_reader.ts";
import { abortively, type Duplex, type HeldDuplex } from "../net/duplex.ts";

/**
 * The client side of a proxied connection after its handshake, as the relay takes it: the
 * handshake's writer, and the rest of what the client sends (bytes read ahead first). The reader
 * is taken from `reader` only when the relay asks for it, so a refused connection can still drain
 * `reader` in a lingering close.
 */
export function heldClient(
  conn: Duplex,
  reader: ByteReader,
  writer: WritableStreamDefaultWriter<Uint8Array>,
): HeldDuplex {
  let rest: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return {
    get reader() {
      return rest ??= reader.restReader();
    },
    writer,
    close: () => conn.close(),
    copiesWrites: conn.copiesWrites,
    reset: () => abortively(conn),
  };
}
