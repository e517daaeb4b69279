import assert from "node:assert/strict";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { BlackholeOutbound } from "../../lib/outbound/blackhole.ts";
import { readAll } from "../support/fake_outbound.ts";
import { EchoServer } from "../support/echo_server.ts";
import { freePort, startAppFromJson } from "../support/client_app.ts";
import { readToEnd, socksConnect } from "../support/socks_client.ts";

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
    lookup: (host, type) =>
      Promise.resolve(host === "echo.test" && type === "A" ? ["127.0.0.1"] : []),
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

/** A FreedomOutbound whose connect() records the host and port it was asked for, then refuses. */
function recordingFreedom(options: ConstructorParameters<typeof FreedomOutbound>[0]) {
  const dialled: string[] = [];
  const freedom = new FreedomOutbound({
    ...options,
    connect: (o) => {
      dialled.push(`${o.hostname}:${o.port}`);
      return Promise.reject(new Deno.errors.ConnectionRefused("refused"));
    },
  });
  return { freedom, dialled };
}

Deno.test("FreedomOutbound.open() dials the redirect, keeping the part left empty, and names both in errors", async () => {
  const full = recordingFreedom({ redirect: { address: "127.0.0.9", port: 7 } });
  await assert.rejects(
    full.freedom.open({ network: "tcp", host: "a.test", port: 80 }),
    /Cannot connect to tcp:a\.test:80 \(redirected to 127\.0\.0\.9:7\): refused/,
  );
  const portOnly = recordingFreedom({ redirect: { address: "", port: 8080 } });
  await assert.rejects(portOnly.freedom.open({ network: "tcp", host: "a.test", port: 80 }));
  const hostOnly = recordingFreedom({ redirect: { address: "::1", port: 0 } });
  await assert.rejects(hostOnly.freedom.open({ network: "tcp", host: "a.test", port: 80 }));
  assert.deepEqual([...full.dialled, ...portOnly.dialled, ...hostOnly.dialled], [
    "127.0.0.9:7",
    "a.test:8080",
    "::1:80",
  ]);
});

Deno.test("FreedomOutbound.open() looks domains up per domainStrategy and dials them as given when nothing is found", async () => {
  const records: Record<string, string[]> = {
    "A four.test": ["192.0.2.1"],
    "AAAA six.test": ["2001:db8::1"],
    "A both.test": ["192.0.2.2"],
    "AAAA both.test": ["2001:db8::2"],
  };
  const asked: string[] = [];
  const lookup = (host: string, type: "A" | "AAAA") => {
    asked.push(`${type} ${host}`);
    const hit = records[`${type} ${host}`];
    return hit ? Promise.resolve(hit) : Promise.reject(new Deno.errors.NotFound("no record"));
  };
  const cases: Array<[string, string, string[]]> = [
    ["AsIs", "four.test", ["four.test:1"]],
    ["UseIPv4", "four.test", ["192.0.2.1:1"]],
    ["UseIPv6", "six.test", ["2001:db8::1:1"]],
    // Nothing found: the domain is dialled as given, as v2ray does.
    ["UseIPv4", "six.test", ["six.test:1"]],
    ["UseIPv6", "four.test", ["four.test:1"]],
    // An IP literal is never looked up.
    ["UseIP", "192.0.2.7", ["192.0.2.7:1"]],
  ];
  for (const [strategy, host, want] of cases) {
    const { freedom, dialled } = recordingFreedom({
      domainStrategy: strategy as "AsIs",
      lookup,
    });
    await assert.rejects(freedom.open({ network: "tcp", host, port: 1 }));
    assert.deepEqual(dialled, want, `${strategy} ${host}`);
  }
  // UseIP picks among A and AAAA: every pick is one of them, and both are asked for.
  asked.length = 0;
  const { freedom, dialled } = recordingFreedom({ domainStrategy: "UseIP", lookup });
  for (let i = 0; i < 20; i++) {
    await assert.rejects(freedom.open({ network: "tcp", host: "both.test", port: 1 }));
  }
  assert.ok(dialled.every((d) => d === "192.0.2.2:1" || d === "2001:db8::2:1"), dialled.join());
  assert.ok(asked.includes("A both.test") && asked.includes("AAAA both.test"));
});

Deno.test("FreedomOutbound UDP: UseIPv6 sends to the AAAA address; a domain without records is refused by name", async () => {
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 });
  const freedom = new FreedomOutbound({
    domainStrategy: "UseIPv6",
    listenDatagram: (o) => Deno.listenDatagram({ ...o, hostname: "::1" }),
    lookup: (host, type) =>
      Promise.resolve(host === "v6.test" ? (type === "AAAA" ? ["::1"] : ["127.0.0.1"]) : []),
  });
  const port = (peer.addr as Deno.NetAddr).port;
  const d = await freedom.open({ network: "udp", host: "v6.test", port });
  try {
    const w = d.writable.getWriter();
    await w.write(enc.encode("six"));
    const [got] = await peer.receive();
    assert.equal(dec.decode(got), "six");
    await assert.rejects(
      freedom.open({ network: "udp", host: "none.test", port }),
      (err: Error) => err instanceof Deno.errors.NotFound && /udp:none\.test/.test(err.message),
    );
  } finally {
    d.close();
    peer.close();
    await freedom.close();
  }
});

Deno.test("FreedomOutbound redirect: a SOCKS CONNECT through the running app reaches the redirect target", async () => {
  const echo = new EchoServer();
  try {
    await using s = await startAppFromJson(() => ({
      inbounds: [{ protocol: "socks", port: freePort() }],
      outbounds: [{
        protocol: "freedom",
        settings: { redirect: `127.0.0.1:${echo.port}` },
      }],
    }));
    // Nothing listens on 192.0.2.1 (TEST-NET-1): only the redirect can answer.
    const c = await socksConnect(s.inbound("socks").port, 1, "192.0.2.1", 9);
    try {
      await c.writer.write(enc.encode("redirected"));
      await c.writer.close();
      assert.equal(dec.decode(await readToEnd(c)), "redirected");
    } finally {
      c.duplex.close();
    }
  } finally {
    await echo.close();
  }
});

Deno.test("FreedomOutbound in the app dials a name through dns.hosts, as the router resolves it", async () => {
  const echo = new EchoServer();
  try {
    await using s = await startAppFromJson(() => ({
      inbounds: [{ protocol: "socks", port: freePort() }],
      outbounds: [{ protocol: "freedom", settings: { domainStrategy: "UseIPv4" } }],
      // "dial.test" exists only here (.test never resolves in DNS): only dns.hosts can answer.
      dns: { hosts: { "dial.test": "127.0.0.1" } },
    }));
    const c = await socksConnect(s.inbound("socks").port, 1, "dial.test", echo.port);
    try {
      await c.writer.write(enc.encode("hosts"));
      await c.writer.close();
      assert.equal(dec.decode(await readToEnd(c)), "hosts");
    } finally {
      c.duplex.close();
    }
  } finally {
    await echo.close();
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
