import assert from "node:assert/strict";
import { MixedInbound } from "../../lib/inbound/mixed.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { FakeOutbound, readAll, readN, testContext } from "../support/fake_outbound.ts";
import { bodyOf, curl, sha256, startInbound, startTarget } from "../support/proxy_e2e.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("MixedInbound serves SOCKS5 when the first byte is 0x05", async () => {
  const outbound = new FakeOutbound();
  const [client, server] = duplexPair();
  const handled = new MixedInbound().handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  // The version byte alone first: the choice is made on one byte.
  await w.write(Uint8Array.of(5));
  await w.write(Uint8Array.of(1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80));
  const r = client.readable.getReader();
  assert.deepEqual([...await readN(r, 12)], [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  const { dest, peer } = await outbound.next();
  assert.equal(dest.port, 80);
  await w.close();
  await peer.writable.close();
  assert.equal((await handled).result, "ok");
  client.close();
  await outbound.close();
});

Deno.test("MixedInbound serves HTTP otherwise", async () => {
  const outbound = new FakeOutbound();
  const [client, server] = duplexPair();
  const handled = new MixedInbound().handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  await w.write(enc.encode("CONNECT a.test:22 HTTP/1.1\r\nHost: a.test:22\r\n\r\n"));
  const r = client.readable.getReader();
  assert.equal(dec.decode(await readN(r, 39)), "HTTP/1.1 200 Connection established\r\n\r\n");
  const { dest, peer } = await outbound.next();
  assert.deepEqual(dest, { network: "tcp", host: "a.test", port: 22 });
  await w.close();
  await peer.writable.close();
  assert.equal((await handled).destination, "tcp:a.test:22");
  client.close();
  await outbound.close();
});

Deno.test("MixedInbound requires the same password on both protocols", async () => {
  const inbound = new MixedInbound({ auth: "password", accounts: [{ user: "u", pass: "p" }] });
  assert.equal(inbound.requiresAuth, true);
  const [client, server] = duplexPair();
  const handled = inbound.handle(server, testContext(new FakeOutbound()));
  const w = client.writable.getWriter();
  await w.write(enc.encode("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"));
  await w.close();
  assert.match(dec.decode(await readAll(client.readable)), /^HTTP\/1.1 407 /);
  await handled;
  client.close();
});

Deno.test("MixedInbound closes a silent client at the handshake deadline", async () => {
  const [client, server] = duplexPair();
  const result = await new MixedInbound().handle(
    server,
    testContext(new FakeOutbound(), { policy: { handshake: 40 } }),
  );
  assert.equal(result.result, "handshake timeout");
  client.close();
});

Deno.test("MixedInbound end to end: curl over SOCKS5 and HTTP on one port", async () => {
  const target = startTarget();
  const proxy = await startInbound(new MixedInbound());
  try {
    const url = `http://127.0.0.1:${target.addr.port}/bytes/300000`;
    const want = await sha256(bodyOf(300000));
    for (
      const args of [
        ["--socks5-hostname", `127.0.0.1:${proxy.port}`],
        ["--proxy", `http://127.0.0.1:${proxy.port}`],
        ["--proxytunnel", "--proxy", `http://127.0.0.1:${proxy.port}`],
      ]
    ) {
      const r = await curl([...args, url]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(r.stdout), want, args.join(" "));
    }
  } finally {
    await proxy.close();
    await target.shutdown();
  }
});
