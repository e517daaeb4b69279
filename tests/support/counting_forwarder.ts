/**
 * A TCP forwarder that counts the connections it accepts: put it in front of a server to learn how
 * many connections a client really opened (the truth, whatever a pool reports about itself).
 */
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";

export interface CountingForwarder extends AsyncDisposable {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export function startCountingForwarder(to: { hostname: string; port: number }): CountingForwarder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<ConnDuplex>();
  const pipes = new Set<Promise<void>>();
  let accepted = 0;

  const forward = async (client: ConnDuplex) => {
    let server: ConnDuplex;
    try {
      const conn = await Deno.connect(to);
      conn.setNoDelay(true); // a forwarder must not add Nagle delays the client did not ask for
      server = new ConnDuplex(conn);
    } catch {
      client.close();
      return;
    }
    open.add(server);
    // Each direction passes EOF on as a half-close; either side failing ends both.
    await Promise.all([
      client.readable.pipeTo(server.writable).catch(() => {}),
      server.readable.pipeTo(client.writable).catch(() => {}),
    ]);
    client.close();
    server.close();
    open.delete(server);
  };

  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      accepted++;
      (conn as Deno.TcpConn).setNoDelay(true);
      const client = new ConnDuplex(conn);
      open.add(client);
      const p = forward(client).finally(() => {
        open.delete(client);
        pipes.delete(p);
      });
      pipes.add(p);
    }
  })();

  const close = async () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    for (const d of open) d.close();
    await loop;
    await Promise.all([...pipes]);
  };

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
