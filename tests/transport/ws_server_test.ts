import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { listenTcp } from "../../lib/transport/listener.ts";
import { WsTransport } from "../../lib/transport/ws.ts";
import { WsServer, type WsServerOptions } from "../../lib/transport/ws_server.ts";
import { readAll } from "../support/fake_outbound.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function withWsServer(
  options: Partial<WsServerOptions>,
  body: (server: WsServer, port: number) => Promise<void>,
) {
  const server = new WsServer(listenTcp({ port: 0 }), {
    tag: "ws-in",
    logger: Logger.silent(),
    ...options,
  });
  try {
    await body(server, server.addr.port);
  } finally {
    await server.close();
  }
}

/** Reads from `conn` until the text so far matches `until` (or EOF), at most 64 KiB. */
async function readUntil(conn: Deno.Conn, until: RegExp): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!until.test(text) && text.length < 64 * 1024) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += dec.decode(buf.subarray(0, n));
  }
  return text;
}

const UPGRADE = "GET /ray HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

Deno.test("WsServer.accept() yields each WebSocket as a Duplex with its X-Forwarded-For source", async () => {
  await withWsServer({ path: "/ray", closeHoldMs: 100 }, async (server, port) => {
    const t = new WsTransport({
      path: "/ray",
      headers: { "X-Forwarded-For": "203.0.113.7, 10.0.0.1" },
    });
    const client = await t.open({ address: "127.0.0.1", port });
    const accepted = await server.accept();
    try {
      assert.deepEqual(accepted.remote, { host: "203.0.113.7", port: 0 });
      assert.equal(accepted.local.port, port);
      const cw = client.writable.getWriter();
      await cw.write(enc.encode("ping"));
      const sr = accepted.duplex.readable.getReader();
      assert.equal(dec.decode((await sr.read()).value), "ping");
      const sw = accepted.duplex.writable.getWriter();
      await sw.write(enc.encode("pong"));
      const cr = client.readable.getReader();
      assert.equal(dec.decode((await cr.read()).value), "pong");
      // The server ends the downlink: the client reads the end after the held Close.
      await sw.close();
      assert.equal((await cr.read()).done, true);
      sr.releaseLock();
    } finally {
      accepted.duplex.close();
      client.close();
    }
  });
});

Deno.test("WsServer answers 404 to a request on another path and 400 to a non-upgrade on its path, as v2ray", async () => {
  await withWsServer({ path: "/ray" }, async (_server, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    await conn.closeWrite();
    const text = dec.decode(await readAll(conn.readable));
    assert.match(text, /^HTTP\/1\.1 404 /);
    // On the right path, a request that is not an upgrade is 400, as gorilla's Upgrader.
    const conn2 = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn2.write(enc.encode("GET /ray HTTP/1.1\r\nHost: x\r\n\r\n"));
    await conn2.closeWrite();
    assert.match(dec.decode(await readAll(conn2.readable)), /^HTTP\/1\.1 400 /);
  });
});

Deno.test("WsServer keeps the connection after a 404 for the next request, skipping the body by Content-Length", async () => {
  await withWsServer({ path: "/ray" }, async (server, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(
        enc.encode("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + UPGRADE),
      );
      const text = await readUntil(conn, /101 Switching Protocols[^]*\r\n\r\n/);
      assert.match(text, /^HTTP\/1\.1 404 [^]*\r\n\r\n404 Not Found\nHTTP\/1\.1 101 /);
      assert.doesNotMatch(text, /Connection: close/i);
      const accepted = await server.accept();
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  });
});

Deno.test("WsServer closes after a 404 when keeping the connection is not cheap: chunked, HTTP/1.0, Connection: close", async () => {
  const requests = [
    "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET /x HTTP/1.0\r\n\r\n",
    "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    `POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\n`,
  ];
  await withWsServer({ path: "/ray" }, async (_server, port) => {
    for (const request of requests) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(enc.encode(request + UPGRADE));
      await conn.closeWrite();
      const text = dec.decode(await readAll(conn.readable));
      assert.match(text, /^HTTP\/1\.1 404 [^]*Connection: close/, request);
      assert.doesNotMatch(text, /101/, request);
    }
  });
});

Deno.test("WsServer drops a socket that sends no request within headTimeoutMs", async () => {
  await withWsServer({ path: "/ray", headTimeoutMs: 100 }, async (_server, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const got = await readAll(conn.readable);
    assert.equal(got.byteLength, 0);
  });
});

Deno.test("WsServer hands over early data from Sec-WebSocket-Protocol as the first bytes", async () => {
  await withWsServer({ path: "/" }, async (server, port) => {
    const t = new WsTransport({
      earlyData: { maxBytes: 2048, headerName: "Sec-WebSocket-Protocol" },
    });
    const client = await t.open({ address: "127.0.0.1", port });
    const w = client.writable.getWriter();
    const write = w.write(enc.encode("early bytes"));
    const accepted = await server.accept();
    try {
      await write;
      const r = accepted.duplex.readable.getReader();
      assert.equal(dec.decode((await r.read()).value), "early bytes");
      r.releaseLock();
    } finally {
      accepted.duplex.close();
      client.close();
    }
  });
});

Deno.test("WsServer.close() closes WebSockets not yet taken (1001) and accept() rejects", async () => {
  const server = new WsServer(listenTcp({ port: 0 }), { tag: "ws-in", logger: Logger.silent() });
  const t = new WsTransport({});
  const client = await t.open({ address: "127.0.0.1", port: server.addr.port });
  try {
    await server.close();
    await assert.rejects(server.accept(), Deno.errors.BadResource);
    // Not a clean end: the client's stream fails rather than looking complete.
    const reader = client.readable.getReader();
    await assert.rejects(reader.read(), /closed with 1001/);
  } finally {
    client.close();
  }
});
