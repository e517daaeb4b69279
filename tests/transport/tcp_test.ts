import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

Deno.test("TcpTransport.open() half-closes: the server sees EOF and can still reply", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = new ConnDuplex(await listener.accept());
    try {
      const got = await readAll(conn.readable);
      // Reply only after our EOF arrived: proves the client's writable close is a half-close.
      const w = conn.writable.getWriter();
      await w.write(Uint8Array.of(got.byteLength & 0xff));
      await w.close();
    } finally {
      conn.close();
    }
  })();
  const transport = new TcpTransport();
  const duplex = await transport.open({ address: "127.0.0.1", port: listener.addr.port });
  try {
    const w = duplex.writable.getWriter();
    await w.write(new Uint8Array(1000).fill(1));
    await w.close();
    assertEquals(await readAll(duplex.readable), Uint8Array.of(1000 & 0xff));
  } finally {
    duplex.close();
    transport.close();
  }
  await served;
});

Deno.test("TcpTransport.open() names the server when the connection is refused", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await rejects(
    new TcpTransport().open({ address: "127.0.0.1", port }),
    (err: Error) => err.message.startsWith(`TCP connect to 127.0.0.1:${port} failed: `),
  );
});

Deno.test("TcpTransport.open() rejects with the abort reason when aborted first", async () => {
  const controller = new AbortController();
  controller.abort(new Error("shutting down"));
  await rejects(
    new TcpTransport().open({ address: "127.0.0.1", port: 1 }, controller.signal),
    /shutting down/,
  );
});
