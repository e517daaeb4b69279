import { ConnDuplex } from "../net/conn_duplex.ts";
import { formatHostPort } from "../net/destination.ts";
import type { Duplex } from "../net/duplex.ts";
import type { ServerAddress, Transport } from "./transport.ts";
import { messageOf } from "../error_message.ts";

/** Connects a TCP socket with Nagle off; errors name the server. */
export async function connectTcp(
  server: ServerAddress,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  signal?.throwIfAborted();
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: server.address, port: server.port, signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const message = messageOf(err);
    throw new Error(
      `TCP connect to ${formatHostPort(server.address, server.port)} failed: ${message}`,
      { cause: err },
    );
  }
  // The VLESS header and small interactive writes must not wait for an ACK.
  conn.setNoDelay(true);
  return conn;
}

/** Plain VLESS over TCP (`network: "tcp"`, `security: "none"`): one socket per connection. */
export class TcpTransport implements Transport {
  readonly name = "tcp";

  async open(server: ServerAddress, signal?: AbortSignal): Promise<Duplex> {
    return new ConnDuplex(await connectTcp(server, signal));
  }

  close(): void {
    // Nothing pooled: every stream owns its socket.
  }
}
