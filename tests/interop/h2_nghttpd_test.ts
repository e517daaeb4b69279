/**
 * Our HTTP/2 client against nghttpd (nghttp2's C server) over TLS with ALPN h2 on loopback:
 * a 64 MiB download, a 64 MiB upload echoed back (--echo-upload), and 100 concurrent GETs, all
 * sha256-verified. nghttpd comes from `apt-get install nghttp2-server`; without it this test
 * fails (it is part of the interop suite, not optional).
 */
import assert from "node:assert/strict";
import {
  CERT_PATH,
  dialH2,
  drain,
  KEY_PATH,
  payload,
  send,
  sha256Of,
} from "../support/h2_interop.ts";

const MiB = 1024 * 1024;
const NGHTTPD = "/usr/sbin/nghttpd";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function writeFile(path: string, size: number, seed: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (const c of payload(size, seed)) {
    for (let off = 0; off < c.byteLength;) off += await f.write(c.subarray(off));
  }
}

async function withNghttpd(fn: (port: number) => Promise<void>): Promise<void> {
  try {
    await Deno.stat(NGHTTPD);
  } catch {
    throw new Error(`${NGHTTPD} not found: install it with "apt-get install nghttp2-server"`);
  }
  const dir = await Deno.makeTempDir({ prefix: "dray-nghttpd-" });
  let child: Deno.ChildProcess | undefined;
  try {
    await writeFile(`${dir}/big.bin`, 64 * MiB, 1);
    for (let i = 0; i < 100; i++) await writeFile(`${dir}/f${i}.bin`, 256 * 1024 + i, 10 + i);
    const port = freePort();
    child = new Deno.Command(NGHTTPD, {
      args: ["-a", "127.0.0.1", "--echo-upload", "-d", dir, String(port), KEY_PATH, CERT_PATH],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // nghttpd prints nothing when it is ready: try to connect, bounded in attempts and time.
    let ready = false;
    for (let i = 0; i < 250 && !ready; i++) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        c.close();
        ready = true;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.ok(ready, `nghttpd did not listen on port ${port} within 5 s`);
    await fn(port);
  } finally {
    if (child) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await child.stderr.cancel();
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

const get = (path: string) => ({
  method: "GET",
  scheme: "https",
  authority: "localhost",
  path,
  endStream: true,
});

Deno.test("H2Connection downloads 64 MiB from nghttpd on one stream, byte-exact", async () => {
  await withNghttpd(async (port) => {
    const conn = await dialH2(port);
    try {
      const stream = conn.request(get("/big.bin"));
      assert.equal((await stream.response).status, 200);
      const got = await drain(stream.readable);
      assert.equal(got.bytes, 64 * MiB);
      assert.equal(got.sha256, sha256Of(64 * MiB, 1));
      // Then 100 concurrent GETs on the same connection.
      const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const s = conn.request(get(`/f${i}.bin`));
        assert.equal((await s.response).status, 200);
        return await drain(s.readable);
      }));
      results.forEach((r, i) => {
        assert.equal(r.bytes, 256 * 1024 + i);
        assert.equal(r.sha256, sha256Of(256 * 1024 + i, 10 + i), `file f${i}.bin`);
      });
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});

Deno.test("H2Connection uploads 64 MiB to nghttpd --echo-upload and reads it back, byte-exact", async () => {
  await withNghttpd(async (port) => {
    const conn = await dialH2(port);
    try {
      const stream = conn.request({
        method: "POST",
        scheme: "https",
        authority: "localhost",
        path: "/big.bin",
      });
      const [, got] = await Promise.all([
        send(stream.writable, 64 * MiB, 5),
        drain(stream.readable),
      ]);
      assert.equal((await stream.response).status, 200);
      assert.equal(got.bytes, 64 * MiB);
      assert.equal(got.sha256, sha256Of(64 * MiB, 5));
    } finally {
      conn.close();
      await conn.closed;
    }
  });
});
