import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AcceptedTls, type NetAddress, TlsListener } from "../../lib/net/tls_listener.ts";
import { encodeProxyHeader } from "../../lib/net/proxy_protocol.ts";

const CERTS = new URL("../support/certs/", import.meta.url);
const CERT = Deno.readTextFileSync(new URL("server.pem", CERTS));
const KEY = Deno.readTextFileSync(new URL("server.key", CERTS));
const CA = Deno.readTextFileSync(new URL("ca.pem", CERTS));

/** Safety net for every await on the network: a hang fails the test instead of stalling it. */
const DEADLINE_MS = 30_000;

async function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function listen(
  extra: {
    alpnProtocols?: string[];
    handshakeTimeout?: number;
    acceptTimeout?: number;
    acceptProxyProtocol?: boolean;
    onError?: (err: Error, remote: NetAddress | null) => void;
  } = {},
): Promise<TlsListener> {
  return TlsListener.listen({ hostname: "127.0.0.1", port: 0, cert: CERT, key: KEY, ...extra });
}

async function connect(listener: TlsListener, alpnProtocols?: string[]): Promise<Deno.TlsConn> {
  // TCP_NODELAY on the client too, as dray's transport does: with Nagle on, each handshake can
  // wait for delayed ACKs, and 129 of them in a row outlast the deadline on a loaded machine.
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  tcp.setNoDelay(true);
  return Deno.startTls(tcp, {
    hostname: "localhost",
    caCerts: [CA],
    ...(alpnProtocols ? { alpnProtocols } : {}),
  });
}

/** Copies the accepted connection's input back to it, then half-closes. */
async function echo(a: AcceptedTls): Promise<void> {
  try {
    await a.duplex.readable.pipeTo(a.duplex.writable);
  } finally {
    a.duplex.close();
  }
}

/** Deterministic bytes: `size` of them from a seed, produced in chunks. */
function* pattern(size: number, seed: number): Generator<Uint8Array> {
  const CHUNK = 64 * 1024;
  let x = seed >>> 0 || 1;
  for (let off = 0; off < size; off += CHUNK) {
    const n = Math.min(CHUNK, size - off);
    const b = new Uint8Array(n);
    const words = new Uint32Array(b.buffer, 0, n >>> 2);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    yield b;
  }
}

function patternHash(size: number, seed: number): string {
  const h = createHash("sha256");
  for (const b of pattern(size, seed)) h.update(b);
  return h.digest("hex");
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

/** Reads to EOF; returns the byte count, or the error that ended it. */
async function readToEnd(conn: Deno.Conn): Promise<number | Error> {
  const buf = new Uint8Array(64 * 1024);
  let n = 0;
  try {
    for (;;) {
      const r = await conn.read(buf);
      if (r === null) return n;
      n += r;
    }
  } catch (err) {
    return err as Error;
  }
}

async function collect(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of readable) {
    parts.push(c);
    n += c.byteLength;
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("TlsListener.accept() echoes bytes for a Deno.connectTls client", async () => {
  const listener = await listen();
  try {
    assert.equal(listener.addr.hostname, "127.0.0.1");
    assert.ok(listener.addr.port > 0);
    const conn = await connect(listener);
    try {
      const accepted = await within(listener.accept(), "accept");
      assert.equal(accepted.remoteAddr.hostname, "127.0.0.1");
      assert.equal(accepted.remoteAddr.port, (conn.localAddr as Deno.NetAddr).port);
      assert.equal(accepted.localAddr.port, listener.addr.port);
      assert.equal(accepted.alpnProtocol, null);
      const served = echo(accepted);
      await conn.write(enc.encode("hello"));
      assert.equal(dec.decode(await within(readExactly(conn, 5), "echo")), "hello");
      await conn.closeWrite();
      assert.equal(await within(readToEnd(conn), "EOF"), 0);
      await within(served, "server end");
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener keeps Nagle off: 20 write-write-read round trips take < 400 ms", async () => {
  const listener = await listen();
  try {
    const conn = await connect(listener);
    try {
      await conn.handshake();
      const accepted = await within(listener.accept(), "accept");
      const served = (async () => {
        const writer = accepted.duplex.writable.getWriter();
        try {
          // Two small writes per request byte: with Nagle on, the second waits for an ACK.
          for await (const chunk of accepted.duplex.readable) {
            for (let i = 0; i < chunk.byteLength; i++) {
              await writer.write(new Uint8Array(10).fill(1));
              await writer.write(new Uint8Array(10).fill(2));
            }
          }
          await writer.close();
        } finally {
          accepted.duplex.close();
        }
      })();
      const started = performance.now();
      for (let i = 0; i < 20; i++) {
        await conn.write(new Uint8Array([i]));
        const reply = await within(readExactly(conn, 20), `round trip ${i}`);
        assert.equal(reply[0], 1);
        assert.equal(reply[19], 2);
      }
      const ms = performance.now() - started;
      assert.ok(ms < 400, `20 round trips took ${ms.toFixed(1)} ms (Nagle + delayed ACK?)`);
      await conn.closeWrite();
      assert.equal(await within(readToEnd(conn), "EOF"), 0);
      await within(served, "server end");
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener carries 64 MiB each way at once, sha256-verified", async () => {
  const SIZE = 64 * 1024 * 1024;
  const listener = await listen();
  try {
    const conn = await connect(listener);
    try {
      const accepted = await within(listener.accept(), "accept");
      const server = (async () => {
        const hash = createHash("sha256");
        const reading = (async () => {
          let n = 0;
          for await (const c of accepted.duplex.readable) {
            hash.update(c);
            n += c.byteLength;
          }
          return n;
        })();
        const writer = accepted.duplex.writable.getWriter();
        for (const b of pattern(SIZE, 7)) await writer.write(b);
        await writer.close();
        const n = await reading;
        accepted.duplex.close();
        return { n, hex: hash.digest("hex") };
      })();
      const clientRead = (async () => {
        const hash = createHash("sha256");
        const buf = new Uint8Array(256 * 1024);
        let n = 0;
        for (;;) {
          const r = await conn.read(buf);
          if (r === null) break;
          hash.update(buf.subarray(0, r));
          n += r;
        }
        return { n, hex: hash.digest("hex") };
      })();
      for (const b of pattern(SIZE, 11)) {
        for (let off = 0; off < b.byteLength;) off += await conn.write(b.subarray(off));
      }
      await conn.closeWrite();
      const [down, up] = await within(Promise.all([clientRead, server]), "transfer");
      assert.equal(up.n, SIZE);
      assert.equal(up.hex, patternHash(SIZE, 11));
      assert.equal(down.n, SIZE);
      assert.equal(down.hex, patternHash(SIZE, 7));
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener: the client's close_notify ends our readable; we still write after it", async () => {
  const listener = await listen();
  try {
    const conn = await connect(listener);
    try {
      const accepted = await within(listener.accept(), "accept");
      await conn.write(enc.encode("request"));
      await conn.closeWrite();
      const got = await within(collect(accepted.duplex.readable), "server reads to EOF");
      assert.equal(dec.decode(got), "request");
      const writer = accepted.duplex.writable.getWriter();
      await writer.write(enc.encode("reply after "));
      await writer.write(enc.encode("the client's EOF"));
      await writer.close();
      assert.equal(
        dec.decode(await within(readExactly(conn, 28), "client reads the reply")),
        "reply after the client's EOF",
      );
      assert.equal(await within(readToEnd(conn), "client EOF"), 0);
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener: closing our writable sends EOF; the client may still write to us", async () => {
  const listener = await listen();
  try {
    const conn = await connect(listener);
    try {
      const accepted = await within(listener.accept(), "accept");
      const writer = accepted.duplex.writable.getWriter();
      await writer.write(enc.encode("bye"));
      await writer.close();
      assert.equal(dec.decode(await within(readExactly(conn, 3), "client reads")), "bye");
      assert.equal(await within(readToEnd(conn), "client sees EOF"), 0);
      await conn.write(enc.encode("late words"));
      await conn.closeWrite();
      const got = await within(collect(accepted.duplex.readable), "server reads after its EOF");
      assert.equal(dec.decode(got), "late words");
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener: a client reset mid-stream fails our writes instead of throwing", async () => {
  const listener = await listen();
  try {
    const conn = await connect(listener);
    const accepted = await within(listener.accept(), "accept");
    try {
      await conn.write(enc.encode("x"));
      const reader = accepted.duplex.readable.getReader();
      assert.equal((await within(reader.read(), "first byte")).value?.byteLength, 1);
      // Closing with the reply unread makes the client's kernel answer with RST.
      const writer = accepted.duplex.writable.getWriter();
      await writer.write(new Uint8Array(64 * 1024));
      conn.close();
      const chunk = new Uint8Array(64 * 1024);
      let failed: unknown;
      // Bounded: the reset arrives within a few writes; 4096 × 64 KiB would be 256 MiB.
      for (let i = 0; i < 4096 && failed === undefined; i++) {
        await within(writer.write(chunk), "write").catch((err) => (failed = err));
      }
      assert.ok(failed instanceof Error, "writes kept succeeding after the reset");
      // The readable ends too, as an error or as EOF, but it ends.
      const end = await within(
        reader.read().then((r) => r.done, (err: unknown) => err),
        "readable ends",
      );
      assert.ok(end === true || end instanceof Error, `readable did not end: ${end}`);
    } finally {
      accepted.duplex.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener negotiates ALPN: a client offering h2 and http/1.1 gets h2", async () => {
  const listener = await listen({ alpnProtocols: ["h2", "http/1.1"] });
  try {
    const conn = await connect(listener, ["h2", "http/1.1"]);
    try {
      const info = await within(conn.handshake(), "handshake");
      assert.equal(info.alpnProtocol, "h2");
      const accepted = await within(listener.accept(), "accept");
      assert.equal(accepted.alpnProtocol, "h2");
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener serves the certificate the client's SNI names, the first one otherwise", async () => {
  const other = {
    cert: Deno.readTextFileSync(new URL("other.pem", CERTS)),
    key: Deno.readTextFileSync(new URL("other.key", CERTS)),
  };
  const listener = await TlsListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: CERT,
    key: KEY,
    sniCertificates: [other],
  });
  const served = (async () => {
    for (let i = 0; i < 3; i++) {
      const a = await listener.accept();
      echo(a).catch(() => {});
    }
  })();
  try {
    // Each name is in one certificate only: the client's verification tells which one came.
    // "127.0.0.1" sends no SNI (RFC 6066), and only the first certificate has that IP.
    for (const hostname of ["a.other.test", "localhost", "127.0.0.1"]) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      const conn = await Deno.startTls(tcp, { hostname, caCerts: [CA] });
      try {
        await within(conn.handshake(), `handshake for ${hostname}`);
        await conn.write(new TextEncoder().encode("x"));
        const buf = new Uint8Array(1);
        assert.equal(await within(conn.read(buf), `echo for ${hostname}`), 1, hostname);
      } finally {
        conn.close();
      }
    }
    await within(served, "three connections accepted");
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener drops a client that never handshakes, without blocking others", async () => {
  const errors: { err: Error; remote: NetAddress | null }[] = [];
  const reported = Promise.withResolvers<void>();
  const listener = await listen({
    handshakeTimeout: 300,
    onError: (err, remote) => {
      errors.push({ err, remote });
      reported.resolve();
    },
  });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    try {
      // Another client is served while the silent one holds its socket open.
      const conn = await connect(listener);
      try {
        const accepted = await within(listener.accept(), "accept");
        const served = echo(accepted);
        await conn.write(enc.encode("ping"));
        assert.equal(dec.decode(await within(readExactly(conn, 4), "echo")), "ping");
        await conn.closeWrite();
        await within(readToEnd(conn), "EOF");
        await within(served, "server end");
      } finally {
        conn.close();
      }
      // The silent client is dropped: it sees EOF or a reset, and the caller hears about it.
      const end = await within(readToEnd(silent), "silent client dropped", 5_000);
      assert.ok(end === 0 || end instanceof Error, `silent client got ${end} bytes`);
      await within(reported.promise, "onError", 5_000);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].remote?.port, (silent.localAddr as Deno.NetAddr).port);
    } finally {
      silent.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener reports a failed handshake through onError, never through accept()", async () => {
  const reported = Promise.withResolvers<Error>();
  const listener = await listen({ onError: (err) => reported.resolve(err) });
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    try {
      await raw.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const err = await within(reported.promise, "onError");
      assert.ok(err instanceof Error);
      await within(readToEnd(raw), "dropped");
    } finally {
      raw.close();
    }
    let accepted: AcceptedTls | undefined;
    const pending = listener.accept().then((a) => (accepted = a), () => {});
    // A real client still gets through, and is the first accept() sees.
    const conn = await connect(listener);
    try {
      await within(conn.handshake(), "handshake");
      await within(pending, "accept");
      assert.ok(accepted);
      assert.equal(accepted.remoteAddr.port, (conn.localAddr as Deno.NetAddr).port);
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener.close() rejects a pending accept() with BadResource", async () => {
  const listener = await listen();
  const pending = listener.accept();
  listener.close();
  await assert.rejects(pending, Deno.errors.BadResource);
  await assert.rejects(listener.accept(), Deno.errors.BadResource);
  listener.close();
});

Deno.test("TlsListener's async iterator yields connections and ends after close()", async () => {
  const listener = await listen();
  const seen: number[] = [];
  const loop = (async () => {
    for await (const a of listener) {
      seen.push(a.remoteAddr.port);
      a.duplex.close();
    }
  })();
  try {
    for (let i = 0; i < 3; i++) {
      const conn = await connect(listener);
      try {
        await within(conn.handshake(), "handshake");
        // The server closes it right away: the client sees the end.
        await within(readToEnd(conn), "closed by server");
      } finally {
        conn.close();
      }
    }
  } finally {
    listener.close();
  }
  await within(loop, "iterator ends");
  assert.equal(seen.length, 3);
});

Deno.test("TlsListener.listen() rejects with AddrInUse for a taken port", async () => {
  const first = await listen();
  try {
    await assert.rejects(
      TlsListener.listen({
        hostname: "127.0.0.1",
        port: first.addr.port,
        cert: CERT,
        key: KEY,
      }),
      Deno.errors.AddrInUse,
    );
  } finally {
    first.close();
  }
});

Deno.test("TlsListener bounds what it reads ahead: a sender to an unread connection stalls", async () => {
  const LIMIT = 64 * 1024 * 1024;
  const listener = await listen();
  try {
    const conn = await connect(listener);
    try {
      const accepted = await within(listener.accept(), "accept");
      const chunk = new Uint8Array(64 * 1024);
      let sent = 0;
      let pending: Promise<number> | undefined;
      // Nobody reads on the server. With bounded buffering the kernel's windows fill and a write
      // stops completing; without it all 64 MiB would go through.
      while (sent < LIMIT) {
        pending = conn.write(chunk);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<null>((r) => (timer = setTimeout(() => r(null), 500)));
        const n = await Promise.race([pending, stalled]);
        clearTimeout(timer);
        if (n === null) break;
        sent += n;
        pending = undefined;
      }
      assert.ok(sent < LIMIT / 2, `the client wrote ${sent} bytes into an unread connection`);
      // Reading resumes the flow: every byte arrives, then the client's EOF.
      const reading = (async () => {
        let n = 0;
        for await (const c of accepted.duplex.readable) n += c.byteLength;
        return n;
      })();
      if (pending) sent += await within(pending, "stalled write completes");
      await conn.closeWrite();
      assert.equal(await within(reading, "server reads all"), sent);
      accepted.duplex.close();
    } finally {
      conn.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener keeps every connection whose handshake finished until accept() takes it: 200 waiting", async () => {
  const errors: Error[] = [];
  const listener = await listen({ acceptTimeout: 120_000, onError: (err) => errors.push(err) });
  const conns: Deno.TlsConn[] = [];
  try {
    // Handshakes in parallel, so a loaded machine stays inside the deadline; nobody accepts yet.
    conns.push(...await Promise.all(Array.from({ length: 200 }, () => connect(listener))));
    await within(Promise.all(conns.map((c) => c.handshake())), "200 handshakes");
    const byPort = new Map(conns.map((c) => [(c.localAddr as Deno.NetAddr).port, c]));
    for (let i = 0; i < 200; i++) {
      const a = await within(listener.accept(), `accept ${i}`);
      const conn = byPort.get(a.remoteAddr.port);
      assert.ok(conn, `accepted an unknown port ${a.remoteAddr.port}`);
      byPort.delete(a.remoteAddr.port);
      // Each one is alive: a byte each way.
      const w = a.duplex.writable.getWriter();
      await within(w.write(Uint8Array.of(i & 0xff)), `write ${i}`);
      w.releaseLock();
      assert.deepEqual(await within(readExactly(conn, 1), `read ${i}`), Uint8Array.of(i & 0xff));
      a.duplex.close();
    }
    assert.equal(byPort.size, 0);
    assert.deepEqual(errors, []);
  } finally {
    for (const c of conns) c.close();
    listener.close();
  }
});

Deno.test("TlsListener closes a connection nobody accepted within acceptTimeout and reports it through onError", async () => {
  const reported = Promise.withResolvers<[Error, NetAddress | null]>();
  const listener = await listen({
    acceptTimeout: 200,
    onError: (err, remote) => reported.resolve([err, remote]),
  });
  try {
    const conn = await connect(listener);
    try {
      await within(conn.handshake(), "handshake");
      const [err, remote] = await within(reported.promise, "onError");
      assert.ok(err instanceof Deno.errors.TimedOut, `got ${err}`);
      assert.match(err.message, /not accepted within 200 ms/);
      assert.equal(remote?.port, (conn.localAddr as Deno.NetAddr).port);
      const got = await within(readToEnd(conn), "closed");
      assert.ok(got === 0 || got instanceof Error, `the client got ${got} bytes`);
    } finally {
      conn.close();
    }
    // The next client is served as usual.
    const pending = listener.accept();
    const next = await connect(listener);
    try {
      await within(next.handshake(), "handshake");
      const a = await within(pending, "accept");
      assert.equal(a.remoteAddr.port, (next.localAddr as Deno.NetAddr).port);
      a.duplex.close();
    } finally {
      next.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener with acceptProxyProtocol reads the header before the handshake and reports its source", async () => {
  const listener = await listen({ acceptProxyProtocol: true });
  try {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const header = encodeProxyHeader({
      version: 2,
      source: { host: "2001:db8::9", port: 5555 },
      destination: { host: "::1", port: listener.addr.port },
    });
    // Split inside the header; the ClientHello follows in the same segments as its end.
    await tcp.write(header.subarray(0, 5));
    const accepting = listener.accept();
    await tcp.write(header.subarray(5));
    const conn = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [CA] });
    const a = await within(accepting, "accept");
    assert.deepEqual(a.remoteAddr, { hostname: "2001:db8::9", port: 5555 });
    const echoing = echo(a);
    await conn.write(new TextEncoder().encode("ping"));
    await conn.closeWrite();
    const got = await within(new Response(conn.readable).text(), "echo");
    assert.equal(got, "ping");
    await echoing;
  } finally {
    listener.close();
  }
});

Deno.test("TlsListener with acceptProxyProtocol closes a connection without a header and reports it", async () => {
  const errors: [Error, NetAddress | null][] = [];
  const reported = Promise.withResolvers<void>();
  const listener = await listen({
    acceptProxyProtocol: true,
    onError: (err, remote) => {
      errors.push([err, remote]);
      reported.resolve();
    },
  });
  try {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    // A TLS client that knows nothing of the PROXY protocol: its ClientHello starts with 0x16.
    const tls = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [CA] });
    await assert.rejects(within(tls.handshake(), "handshake"));
    tls.close();
    await within(reported.promise, "onError");
    const [[err, remote]] = errors;
    assert.ok(err instanceof Deno.errors.InvalidData);
    assert.match(String((err.cause as Error).message), /byte 0 is 0x16/);
    assert.equal(remote?.hostname, "127.0.0.1");
  } finally {
    listener.close();
  }
});
