import assert from "node:assert/strict";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { BlackholeOutbound } from "../../lib/outbound/blackhole.ts";
import { readAll } from "../support/fake_outbound.ts";
import { EchoServer } from "../support/echo_server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("FreedomOutbound.open() connects TCP with half-close", async () => {
  const echo = new EchoServer();
  const freedom = new FreedomOutbound();
  try {
    const d = await freedom.open({ network: "tcp", host: "127.0.0.1", port: echo.port });
    const w = d.writable.getWriter();
    await w.write(enc.encode("half"));
    await w.close();
    // The echo server only finishes after seeing our FIN: the reply proves the half-close.
    assert.equal(dec.decode(await readAll(d.readable)), "half");
    d.close();
  } finally {
    await freedom.close();
    await echo.close();
  }
});

Deno.test("FreedomOutbound.open() keeps the error class and names the destination", async () => {
  const freedom = new FreedomOutbound({
    connect: () => Promise.reject(new Deno.errors.ConnectionRefused("Connection refused")),
  });
  await assert.rejects(
    freedom.open({ network: "tcp", host: "a.test", port: 81 }),
    (err: Error) =>
      err instanceof Deno.errors.ConnectionRefused && /tcp:a\.test:81/.test(err.message) &&
      err.cause instanceof Deno.errors.ConnectionRefused,
  );
  await assert.rejects(freedom.open({ network: "tcp", host: "a.test", port: 0 }), RangeError);
});

Deno.test("FreedomOutbound.open() passes the abort signal to connect", async () => {
  let seen: AbortSignal | undefined;
  const freedom = new FreedomOutbound({
    connect: (o) => {
      seen = o.signal;
      return Promise.reject(new Deno.errors.TimedOut("slow"));
    },
  });
  const ac = new AbortController();
  await assert.rejects(freedom.open({ network: "tcp", host: "h", port: 1 }, { signal: ac.signal }));
  assert.equal(seen, ac.signal);
});

Deno.test("FreedomOutbound UDP: one datagram per chunk, replies only from the destination", async () => {
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const stranger = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const freedom = new FreedomOutbound({
    // Keep the test on loopback: bind the outbound socket to 127.0.0.1.
    listenDatagram: (o) => Deno.listenDatagram({ ...o, hostname: "127.0.0.1" }),
    resolve: (host) => Promise.resolve(host === "echo.test" ? "127.0.0.1" : "0.0.0.0"),
  });
  const d = await freedom.open({
    network: "udp",
    host: "echo.test",
    port: (peer.addr as Deno.NetAddr).port,
  });
  try {
    const w = d.writable.getWriter();
    await w.write(enc.encode("one"));
    await w.write(enc.encode("two"));
    const [a, from] = await peer.receive();
    const [b] = await peer.receive();
    assert.deepEqual([dec.decode(a), dec.decode(b)], ["one", "two"]);
    // A datagram from another address is not delivered; the peer's reply is.
    await stranger.send(enc.encode("spoof"), from);
    await peer.send(enc.encode("reply"), from);
    const r = d.readable.getReader();
    assert.equal(dec.decode((await r.read()).value), "reply");
    r.releaseLock();
  } finally {
    d.close();
    peer.close();
    stranger.close();
    await freedom.close();
  }
});

Deno.test("BlackholeOutbound discards writes and ends reads, with a 403 for response http", async () => {
  const none = await new BlackholeOutbound().open({ network: "tcp", host: "x", port: 1 });
  const w = none.writable.getWriter();
  await w.write(enc.encode("ignored"));
  assert.equal((await readAll(none.readable)).byteLength, 0);
  const http = await new BlackholeOutbound({ response: "http" }).open({
    network: "tcp",
    host: "x",
    port: 80,
  });
  assert.match(dec.decode(await readAll(http.readable)), /^HTTP\/1.1 403 Forbidden\r\n/);
});
