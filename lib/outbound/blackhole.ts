import type { Destination } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { OpenOptions, Outbound } from "./outbound.ts";

export interface BlackholeOptions {
  tag?: string;
  /** v2ray `response.type`: "none" (default) closes at once; "http" answers 403 first. */
  response?: "none" | "http";
}

/** v2ray's blackhole HTTP response, sent before closing. */
const HTTP_403 = new TextEncoder().encode(
  "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nCache-Control: max-age=3600, public\r\n" +
    "Content-Length: 0\r\n\r\n",
);

/**
 * Drops everything (v2ray's `blackhole`). As in v2ray the inbound's handshake succeeds; the
 * connection then gives EOF (after a 403 for `response: "http"`) and whatever the client sends is
 * discarded. UDP datagrams vanish.
 */
export class BlackholeOutbound implements Outbound {
  readonly tag: string;
  readonly #http: boolean;

  constructor(options: BlackholeOptions = {}) {
    this.tag = options.tag ?? "block";
    this.#http = options.response === "http";
  }

  open(dest: Destination, _options?: OpenOptions): Promise<Duplex> {
    const reply = this.#http && dest.network === "tcp" ? HTTP_403 : undefined;
    return Promise.resolve(new Sink(reply));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

class Sink implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;

  constructor(reply: Uint8Array | undefined) {
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        if (reply) c.enqueue(reply.slice());
        c.close();
      },
    });
    this.writable = new WritableStream<Uint8Array>({ write: () => {} });
  }

  close(): void {}
}
