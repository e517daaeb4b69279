import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import type { InboundResult } from "../../lib/inbound/inbound.ts";
import { MAX_REQUEST_HEADER, VlessInbound } from "../../lib/inbound/vless.ts";
import { Logger } from "../../lib/log.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { encodeRequestHeader } from "../../lib/vless/header.ts";
import { encodeUdpPacket } from "../../lib/vless/udp.ts";
import { concat, FakeOutbound, readAll, readN, testContext } from "../support/fake_outbound.ts";

const ID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const OTHER_ID = new Uint8Array(16).fill(0x77);
const enc = new TextEncoder();
const dec = new TextDecoder();

const TCP_DEST = { network: "tcp", host: "example.com", port: 8080 } as const;

function header(
  dest: { network: "tcp" | "udp"; host: string; port: number } = TCP_DEST,
  userId = ID,
): Uint8Array {
  return encodeRequestHeader({
    userId,
    command: dest.network === "udp" ? "udp" : "tcp",
    dest,
  });
}

/** Keeps every diagnostic line in memory (Logger's file sink cannot be closed by a test). */
class CapturingLogger extends Logger {
  readonly lines: string[] = [];
  constructor() {
    super({ level: "none", access: "none" });
  }
  override debug(m: string): void {
    this.lines.push(`[debug] ${m}`);
  }
  override info(m: string): void {
    this.lines.push(`[info] ${m}`);
  }
  override warn(m: string): void {
    this.lines.push(`[warning] ${m}`);
  }
  override error(m: string): void {
    this.lines.push(`[error] ${m}`);
  }
}

interface Run {
  client: Duplex;
  outbound: FakeOutbound;
  done: Promise<InboundResult>;
}

/** Starts the handler on one end of a pair; the test plays the client on the other. */
function start(
  opts: { handshake?: number; logger?: Logger; inbound?: VlessInbound } = {},
): Run {
  const [client, server] = duplexPair();
  const outbound = new FakeOutbound();
  const inbound = opts.inbound ?? new VlessInbound({ clients: [{ id: ID }] });
  const done = inbound.handle(
    server,
    testContext(outbound, {
      ...(opts.logger ? { logger: opts.logger } : {}),
      policy: { handshake: opts.handshake ?? 5_000 },
    }),
  ).finally(() => server.close());
  return { client, outbound, done };
}

async function write(d: Duplex, ...chunks: Uint8Array[]): Promise<void> {
  const w = d.writable.getWriter();
  for (const c of chunks) await w.write(c);
  w.releaseLock();
}

async function halfClose(d: Duplex): Promise<void> {
  await d.writable.close();
}

/** Reads the client side of a refused connection: it must end without a single byte. */
async function assertClosedSilently(run: Run, result: string | RegExp): Promise<InboundResult> {
  const got = await readAll(run.client.readable);
  const r = await run.done;
  equal(got.byteLength, 0, "no response bytes");
  equal(run.outbound.opened.length, 0, "no outbound opened");
  if (typeof result === "string") equal(r.result, result);
  else ok(result.test(r.result), r.result);
  run.client.close();
  await run.outbound.close();
  return r;
}

Deno.test("VlessInbound.handle() relays a TCP request and sends the response header with the first reply", async () => {
  const run = start();
  try {
    await write(run.client, concat([header(), enc.encode("ping")]));
    const remote = await run.outbound.next();
    assertEquals(remote.dest, TCP_DEST);
    const remoteReader = remote.peer.readable.getReader();
    equal(dec.decode(await readN(remoteReader, 4)), "ping");
    await write(remote.peer, enc.encode("pong"));
    const clientReader = run.client.readable.getReader();
    const carry = { buf: new Uint8Array(0) };
    // Version 0, no addons, then the payload.
    assertEquals([...await readN(clientReader, 6, carry)], [0, 0, ...enc.encode("pong")]);
    // The target's EOF reaches the client; the client's EOF reaches the target.
    await halfClose(remote.peer);
    equal((await clientReader.read()).done, true);
    await halfClose(run.client);
    equal((await remoteReader.read()).done, true);
    const r = await run.done;
    assertEquals(r, {
      destination: "tcp:example.com:8080",
      result: "ok",
      up: 4,
      down: 4,
      outbound: "fake",
    });
  } finally {
    run.client.close();
    await run.outbound.close();
  }
});

Deno.test("VlessInbound.handle() sends the response header alone when the target ends without data", async () => {
  const run = start();
  try {
    await write(run.client, header());
    const remote = await run.outbound.next();
    await halfClose(remote.peer);
    assertEquals([...await readAll(run.client.readable)], [0, 0]);
  } finally {
    run.client.close();
    await run.outbound.close();
  }
  equal((await run.done).down, 0);
});

Deno.test("VlessInbound.handle() reads a header split at every byte offset", async () => {
  const dests = [
    TCP_DEST,
    { network: "tcp", host: "192.0.2.7", port: 443 } as const,
    { network: "tcp", host: "2001:db8::1", port: 22 } as const,
  ];
  for (const dest of dests) {
    const h = header(dest);
    const payload = enc.encode("payload");
    const whole = concat([h, payload]);
    for (let cut = 1; cut < whole.byteLength; cut++) {
      const run = start();
      try {
        // Two separate writes: the handler sees the cut as a chunk boundary.
        await write(run.client, whole.slice(0, cut), whole.slice(cut));
        const remote = await run.outbound.next();
        assertEquals(remote.dest, dest, `cut at ${cut}`);
        const reader = remote.peer.readable.getReader();
        equal(dec.decode(await readN(reader, payload.byteLength)), "payload", `cut at ${cut}`);
        await halfClose(run.client);
        equal((await reader.read()).done, true);
        await halfClose(remote.peer);
        equal((await run.done).up, payload.byteLength);
      } finally {
        run.client.close();
        await run.outbound.close();
      }
    }
  }
});

Deno.test("VlessInbound.handle() reads a header that arrives one byte per write", async () => {
  const run = start();
  try {
    const h = header();
    await write(run.client, ...Array.from(h, (b) => Uint8Array.of(b)));
    const remote = await run.outbound.next();
    assertEquals(remote.dest, TCP_DEST);
    await halfClose(remote.peer);
    await halfClose(run.client);
    equal((await run.done).result, "ok");
  } finally {
    run.client.close();
    await run.outbound.close();
  }
});

Deno.test("VlessInbound.handle() closes without a response on an unknown user id, and logs one line without the id", async () => {
  const logger = new CapturingLogger();
  const run = start({ logger });
  // The rest of the header never comes: the id alone is enough to refuse.
  await write(run.client, header(TCP_DEST, OTHER_ID).subarray(0, 17));
  await assertClosedSilently(run, "unknown user id");
  equal(logger.lines.length, 1, logger.lines.join("\n"));
  ok(logger.lines[0].includes("unknown user id"), logger.lines[0]);
  ok(!logger.lines[0].includes("7777") && !logger.lines[0].includes("wwww"), "no id in the log");
});

Deno.test("VlessInbound.handle() closes without a response on garbage instead of a header", async () => {
  const run = start();
  await write(run.client, enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await assertClosedSilently(run, /unsupported version 71/);
});

Deno.test("VlessInbound.handle() refuses an unknown command and an unknown address type", async () => {
  const h = header();
  const badCommand = h.slice();
  badCommand[18] = 9;
  const run1 = start();
  await write(run1.client, badCommand);
  await assertClosedSilently(run1, /unknown command 9/);

  const badAddress = h.slice();
  badAddress[21] = 7;
  const run2 = start();
  await write(run2.client, badAddress);
  await assertClosedSilently(run2, /unknown address type 7/);
});

Deno.test("VlessInbound.handle() refuses Mux with a warning that says so", async () => {
  const logger = new CapturingLogger();
  const run = start({ logger });
  await write(run.client, encodeRequestHeader({ userId: ID, command: "mux", dest: TCP_DEST }));
  await assertClosedSilently(run, /Mux \(command 3\) is not supported/);
  equal(logger.lines.length, 1);
  ok(/^\[warning\] .*turn off mux on the client/.test(logger.lines[0]), logger.lines[0]);
});

Deno.test("VlessInbound.handle() refuses a flow it does not support", async () => {
  const run = start();
  await write(
    run.client,
    encodeRequestHeader({ userId: ID, command: "tcp", dest: TCP_DEST, flow: "xtls-rprx-direct" }),
  );
  await assertClosedSilently(run, /flow "xtls-rprx-direct" is not supported/);
});

Deno.test("VlessInbound.handle() closes at the handshake deadline when the header stops halfway", async () => {
  const run = start({ handshake: 60 });
  const started = performance.now();
  await write(run.client, header().subarray(0, 20));
  await assertClosedSilently(run, "handshake timeout");
  ok(performance.now() - started >= 55, "not before the deadline");
});

Deno.test("VlessInbound.handle() reports a client that closes inside the header", async () => {
  const run = start();
  await write(run.client, header().subarray(0, 10));
  await halfClose(run.client);
  await assertClosedSilently(run, "closed inside the request header after 10 bytes");
});

Deno.test("VlessInbound.handle() closes without a response when the outbound fails", async () => {
  const run = start();
  run.outbound.fail = new Error("Cannot connect to tcp:example.com:8080: refused");
  await write(run.client, header());
  const got = await readAll(run.client.readable);
  equal(got.byteLength, 0);
  ok((await run.done).result.includes("refused"));
  run.client.close();
  await run.outbound.close();
});

Deno.test("VlessInbound.handle() carries UDP datagrams with 2-byte length framing both ways", async () => {
  const run = start();
  const dest = { network: "udp", host: "127.0.0.1", port: 53 } as const;
  try {
    const a = enc.encode("first datagram");
    const b = new Uint8Array(3000).fill(7);
    const framed = concat([header(dest), encodeUdpPacket(a), encodeUdpPacket(b)]);
    // Cut inside the second packet's length and body, so the handler must reassemble.
    const cut1 = header(dest).byteLength + 2 + a.byteLength + 1;
    await write(run.client, framed.slice(0, cut1), framed.slice(cut1, cut1 + 100));
    await write(run.client, framed.slice(cut1 + 100));
    const remote = await run.outbound.next();
    assertEquals(remote.dest, dest);
    const reader = remote.peer.readable.getReader();
    assertEquals(dec.decode((await reader.read()).value), "first datagram");
    assertEquals((await reader.read()).value, b);

    // Replies: one framed packet each, the first after the response header.
    await write(remote.peer, enc.encode("r1"), enc.encode("reply two"));
    const clientReader = run.client.readable.getReader();
    const got = await readN(clientReader, 2 + 2 + 2 + 2 + 9);
    assertEquals(
      got,
      concat([
        Uint8Array.of(0, 0),
        encodeUdpPacket(enc.encode("r1")),
        encodeUdpPacket(enc.encode("reply two")),
      ]),
    );
    await halfClose(remote.peer);
    equal((await clientReader.read()).done, true);
    await halfClose(run.client);
    const r = await run.done;
    equal(r.destination, "udp:127.0.0.1:53");
    equal(r.up, a.byteLength + b.byteLength);
    equal(r.down, 2 + 9);
  } finally {
    run.client.close();
    await run.outbound.close();
  }
});

Deno.test("VlessInbound rejects ids that are not 16 bytes and an empty client list", () => {
  let threw = 0;
  try {
    new VlessInbound({ clients: [] });
  } catch (err) {
    ok(err instanceof TypeError);
    threw++;
  }
  try {
    new VlessInbound({ clients: [{ id: new Uint8Array(15) }] });
  } catch (err) {
    ok(err instanceof RangeError && /16 bytes, got 15/.test(err.message));
    threw++;
  }
  equal(threw, 2);
});

Deno.test("VlessInbound applies the user's level policy after the header", async () => {
  const levels: number[] = [];
  const inbound = new VlessInbound({
    clients: [{ id: ID, level: 3 }],
    policyForLevel: (level) => {
      levels.push(level);
      return { handshake: 5_000, connIdle: 40, uplinkOnly: 40, downlinkOnly: 40 };
    },
  });
  const run = start({ inbound });
  try {
    await write(run.client, header());
    await run.outbound.next();
    // Nothing moves either way: the level's 40 ms idle limit ends the connection.
    const r = await run.done;
    equal(r.result, "idle timeout");
    assertEquals(levels, [3]);
  } finally {
    run.client.close();
    await run.outbound.close();
  }
});

Deno.test("MAX_REQUEST_HEADER is the size of the longest possible header", () => {
  const longest = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "a".repeat(255), port: 1 },
    // Tag, a 2-byte varint length and 252 bytes: 255 bytes of addons.
    flow: "x".repeat(252),
  });
  equal(longest.byteLength, MAX_REQUEST_HEADER);
});
