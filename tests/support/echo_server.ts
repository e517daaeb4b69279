import { ConnDuplex } from "../../lib/net/conn_duplex.ts";

/** A TCP echo server on 127.0.0.1:0: sends back what it reads, half-closes after EOF. */
export class EchoServer {
  readonly listener: Deno.TcpListener;
  #tasks = new Set<Promise<void>>();
  #conns = new Set<ConnDuplex>();
  #loop: Promise<void>;

  constructor() {
    this.listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#loop = this.#accept();
  }

  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    for (let i = 0; i < 1_000_000; i++) {
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch {
        return;
      }
      const d = new ConnDuplex(conn);
      this.#conns.add(d);
      const t = d.readable.pipeTo(d.writable).catch(() => {}).finally(() => {
        d.close();
        this.#conns.delete(d);
      });
      this.#tasks.add(t);
      t.finally(() => this.#tasks.delete(t));
    }
  }

  async close(): Promise<void> {
    this.listener.close();
    for (const c of this.#conns) c.close();
    await this.#loop;
    await Promise.all(this.#tasks);
  }
}
