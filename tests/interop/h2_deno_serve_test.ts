/**
 * Our HTTP/2 client against Deno.serve (hyper's h2) over TLS with ALPN h2 on loopback:
 * byte-exact, sha256-verified transfers both ways, full duplex, and 100 concurrent streams.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CERT, dialH2, drain, KEY, payload, send, sha256Of } from "../support/h2_interop.ts";

const MiB = 1024 * 1024;

function startServer(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: CERT,
    key: KEY,
    onListen: () => {},
  }, async (req) => {
    const url = new URL(req.url);
    switch (url.pathname) {
      case "/echo":
        // Streams the request body straight back: the response starts before the request ends.
        return new Response(req.body);
      case "/download": {
        const size = Number(url.searchParams.get("size"));
        const seed = Number(url.searchParams.get("seed"));
        const chunks = payload(size, seed);
        return new Response(
          new ReadableStream({
            pull(c) {
              const next = chunks.next();
              if (next.done) c.close();
              else c.enqueue(next.value);
            },
          }),
        );
      }
      case "/upload": {
        const h = createHash("sha256");
        let bytes = 0;
        for await (const c of req.body!) {
          h.update(c);
          bytes += c.byteLength;
        }
        return Response.json({ bytes, sha256: h.digest("hex") });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  });
}

async function withServer(fn: (port: number) => Promise<void>): Promise<void> {
  const server = startServer();
  try {
    await fn(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

const req = (path: string, endStream = false) => ({
  method: endStream ? "GET" : "POST",
  scheme: "https",
  authority: "localhost",
  path,
  endStream,
});

Deno.test("H2Connection downloads 64 MiB from Deno.serve on one stream, byte-exact", async () => {
  await withServer(async (port) => {
    const conn = await dialH2(port);
    try {
      const stream = conn.request(req("/download?size=" + 64 * MiB + "&seed=1", true));
      assert.equal((await stream.response).status, 200);
      const got = await drain(stream.readable);
      assert.equal(got.bytes, 64 * MiB);
      assert.equal(got.sha256, sha256Of(64 * MiB, 1));
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});

Deno.test("H2Connection uploads 64 MiB to Deno.serve on one stream, byte-exact", async () => {
  await withServer(async (port) => {
    const conn = await dialH2(port);
    try {
      const stream = conn.request(req("/upload"));
      await send(stream.writable, 64 * MiB, 2);
      const r = await stream.response;
      assert.equal(r.status, 200);
      const body = JSON.parse(
        new TextDecoder().decode(await new Response(stream.readable).arrayBuffer()),
      );
      assert.deepEqual(body, { bytes: 64 * MiB, sha256: sha256Of(64 * MiB, 2) });
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});

Deno.test("H2Connection echoes 64 MiB each way through Deno.serve on one full-duplex stream", async () => {
  await withServer(async (port) => {
    const conn = await dialH2(port);
    try {
      const stream = conn.request(req("/echo"));
      const [, got] = await Promise.all([
        send(stream.writable, 64 * MiB, 3),
        drain(stream.readable),
      ]);
      assert.equal((await stream.response).status, 200);
      assert.equal(got.bytes, 64 * MiB);
      assert.equal(got.sha256, sha256Of(64 * MiB, 3));
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});

Deno.test("H2Connection runs 100 concurrent echo and download streams against Deno.serve", async () => {
  await withServer(async (port) => {
    const conn = await dialH2(port);
    try {
      const size = 1 * MiB;
      const jobs = Array.from({ length: 100 }, async (_, i) => {
        if (i % 2 === 0) {
          const stream = conn.request(req("/echo"));
          const [, got] = await Promise.all([
            send(stream.writable, size, 100 + i),
            drain(stream.readable),
          ]);
          assert.equal(got.sha256, sha256Of(size, 100 + i), `echo stream ${stream.id}`);
        } else {
          const stream = conn.request(req(`/download?size=${size}&seed=${100 + i}`, true));
          const got = await drain(stream.readable);
          assert.equal(got.sha256, sha256Of(size, 100 + i), `download stream ${stream.id}`);
        }
      });
      await Promise.all(jobs);
      assert.equal(conn.activeStreams, 0);
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});
