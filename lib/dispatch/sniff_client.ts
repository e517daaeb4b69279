/**
 * Reads a TCP client's first bytes for sniffing, as v2ray 4.34's dispatcher does: at most
 * SNIFF_ATTEMPTS reads, each waiting up to SNIFF_WAIT_MS, into at most SNIFF_LIMIT bytes. Nothing
 * is lost: the bytes read (and a read still pending when the wait ran out) come first from the
 * returned reader, so the relay forwards them to the outbound.
 */
import { abortively, type Duplex, type HeldDuplex } from "../net/duplex.ts";
import {
  sniff,
  SNIFF_ATTEMPTS,
  SNIFF_LIMIT,
  SNIFF_WAIT_MS,
  type Sniffed,
} from "../routing/sniffer.ts";

export interface SniffedClient {
  /** The client, with the sniffed bytes put back in front of its reader. */
  client: HeldDuplex;
  sniffed?: Sniffed;
}

export async function sniffClient(
  client: Duplex | HeldDuplex,
  waitMs = SNIFF_WAIT_MS,
): Promise<SniffedClient> {
  const held = client as Partial<HeldDuplex>;
  const reader = held.reader ?? (client as Duplex).readable.getReader();
  const writer = held.writer ?? (client as Duplex).writable.getWriter();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  let sniffed: Sniffed | undefined;
  for (let attempt = 0; attempt < SNIFF_ATTEMPTS && size < SNIFF_LIMIT; attempt++) {
    pending ??= reader.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), waitMs)));
    const got = await Promise.race([pending.then((r) => r, () => "error" as const), timeout]);
    clearTimeout(timer);
    if (got === "timeout") continue;
    if (got === "error") break; // the relay's first read sees the same failure
    pending = undefined;
    if (got.done) {
      pending = Promise.resolve(got);
      break;
    }
    chunks.push(got.value);
    size += got.value.byteLength;
    const outcome = sniff(joined(chunks, size));
    if (outcome === "no") break;
    if (outcome !== "wait") {
      sniffed = outcome;
      break;
    }
  }
  return {
    client: {
      reader: replay(reader, chunks, pending),
      writer,
      close: () => client.close(),
      // The client as it was, but for its reader: without reset() the relay closed a client whose
      // download was cut short, and the client took the truncated stream for a whole one (a FIN);
      // without copiesWrites it never gave lent chunks back.
      reset: () => abortively(client),
      copiesWrites: client.copiesWrites,
    },
    sniffed,
  };
}

function joined(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(Math.min(size, SNIFF_LIMIT));
  let off = 0;
  for (const c of chunks) {
    if (off >= out.length) break;
    const part = c.subarray(0, out.length - off);
    out.set(part, off);
    off += part.length;
  }
  return out;
}

/** A reader that yields `chunks`, then the pending read's result, then reads `reader`. */
function replay(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  chunks: Uint8Array[],
  pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined,
): ReadableStreamDefaultReader<Uint8Array> {
  if (chunks.length === 0 && pending === undefined) return reader;
  const queue = [...chunks];
  let waiting = pending;
  const wrapper = {
    get closed() {
      return reader.closed;
    },
    read(): Promise<ReadableStreamReadResult<Uint8Array>> {
      const value = queue.shift();
      if (value !== undefined) return Promise.resolve({ done: false, value });
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        return w;
      }
      return reader.read();
    },
    cancel(reason?: unknown) {
      queue.length = 0;
      return reader.cancel(reason);
    },
    releaseLock() {
      reader.releaseLock();
    },
  };
  return wrapper as unknown as ReadableStreamDefaultReader<Uint8Array>;
}
