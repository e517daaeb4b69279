import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { EchoServer } from "./echo_server.ts";
import { FaultProxy } from "./fault_proxy.ts";

/** An echo server behind a fault proxy; disposing closes both. */
async function setup() {
  const echo = new EchoServer();
  const proxy = await FaultProxy.start({ target: { hostname: "127.0.0.1", port: echo.port } });
  return {
    echo,
    proxy,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await echo.close();
    },
  };
}

function body(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

function sha(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Reads until EOF, keeping each read's size; rejects with the read's error. */
async function readAll(conn: Deno.Conn): Promise<{ data: Uint8Array; reads: number[] }> {
  const parts: Uint8Array[] = [];
  const reads: number[] = [];
  const buf = new Uint8Array(65536);
  // Bounded: each round consumes at least one byte or ends.
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    reads.push(n);
    parts.push(buf.slice(0, n));
  }
  const data = new Uint8Array(reads.reduce((a, b) => a + b, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.byteLength;
  }
  return { data, reads };
}

async function writeAll(conn: Deno.TcpConn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

/** Fails when `p` takes longer than `ms` (a safety net, not a speed assertion). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("FaultProxy forwards bytes both ways unchanged, half-close included", async () => {
  await using s = await setup();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    const data = body(1024 * 1024 + 17);
    const reading = readAll(conn);
    await writeAll(conn, data);
    await conn.closeWrite();
    const { data: got } = await within(reading, 10_000, "echo through the proxy");
    equal(sha(got), sha(data));
    equal(s.proxy.forwarded.up, data.byteLength);
    equal(s.proxy.forwarded.down, data.byteLength);
    equal(s.proxy.accepted, 1);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy holds each chunk for latencyMs", async () => {
  await using s = await setup();
  s.proxy.set("down", { latencyMs: 200 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    const t0 = performance.now();
    await conn.write(new Uint8Array([1, 2, 3]));
    const buf = new Uint8Array(16);
    const n = await within(conn.read(buf), 5000, "the delayed echo");
    equal(n, 3);
    // A lower bound only: the toxic must have held the bytes at least this long.
    ok(performance.now() - t0 >= 190, `echo came back after ${performance.now() - t0} ms`);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy paces a direction to bytesPerSecond", async () => {
  await using s = await setup();
  s.proxy.set("up", { bytesPerSecond: 200 * 1024 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    const data = body(100 * 1024);
    const t0 = performance.now();
    const reading = readAll(conn);
    await writeAll(conn, data);
    await conn.closeWrite();
    const { data: got } = await within(reading, 10_000, "the paced echo");
    equal(sha(got), sha(data));
    // 100 KiB at 200 KiB/s cannot take less than half a second (minus timer slack).
    const took = performance.now() - t0;
    ok(took >= 450, `100 KiB at 200 KiB/s took only ${took} ms`);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy stall forwards nothing, FIN included, until it is lifted", async () => {
  await using s = await setup();
  s.proxy.set("down", { stall: true });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    const reading = readAll(conn);
    await conn.write(new Uint8Array([9, 8, 7]));
    await conn.closeWrite();
    // The echo server answered and closed at once; the client must see neither for a while.
    equal(await settlesWithin(reading, 400), false);
    equal(s.proxy.forwarded.down, 0);
    s.proxy.clear();
    const { data } = await within(reading, 5000, "the echo after the stall");
    assertEquals([...data], [9, 8, 7]);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy.reset() ends open connections with a TCP RST", async () => {
  await using s = await setup();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    await conn.write(new Uint8Array([1]));
    const buf = new Uint8Array(8);
    equal(await within(conn.read(buf), 5000, "the first echo"), 1);
    s.proxy.reset();
    await rejects(within(readAll(conn), 5000, "the read after reset"), Deno.errors.ConnectionReset);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy refuse resets new connections as they arrive", async () => {
  await using s = await setup();
  s.proxy.refuse = true;
  // The RST may beat Deno's connect() to the socket, or come on the first read.
  await rejects(
    within(
      (async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
        try {
          await readAll(conn);
        } finally {
          conn.close();
        }
      })(),
      5000,
      "a refused connection",
    ),
    Deno.errors.ConnectionReset,
  );
  equal(s.proxy.accepted, 1);
});

Deno.test("FaultProxy slowCloseMs holds the FIN after the last byte", async () => {
  await using s = await setup();
  s.proxy.set("down", { slowCloseMs: 300 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    await conn.write(new Uint8Array([5, 6]));
    const buf = new Uint8Array(8);
    equal(await within(conn.read(buf), 5000, "the echo"), 2);
    const t0 = performance.now();
    await conn.closeWrite();
    equal(await within(conn.read(buf), 5000, "the FIN"), null);
    const took = performance.now() - t0;
    ok(took >= 280, `FIN came ${took} ms after our own`);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy byteAtATime delivers each byte in its own read", async () => {
  await using s = await setup();
  s.proxy.set("down", { byteAtATime: true, byteDelayMs: 5 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.proxy.port });
  try {
    const data = body(40);
    const reading = readAll(conn);
    await conn.write(data);
    await conn.closeWrite();
    const { data: got, reads } = await within(reading, 5000, "the byte-at-a-time echo");
    equal(sha(got), sha(data));
    // 5 ms between bytes is far above a loopback read's latency: one byte per read.
    ok(reads.length >= 30, `40 bytes came in ${reads.length} reads`);
  } finally {
    conn.close();
  }
});

Deno.test("FaultProxy resets the client when the target refuses the connection", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  await using proxy = await FaultProxy.start({ target: { hostname: "127.0.0.1", port } });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    await rejects(within(readAll(conn), 5000, "the read"), Deno.errors.ConnectionReset);
  } finally {
    conn.close();
  }
});
