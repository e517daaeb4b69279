import assert from "node:assert/strict";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { sniffClient } from "../../lib/dispatch/sniff_client.ts";
import { clientHello } from "../support/client_hello.ts";

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array> {
  const parts: number[] = [];
  for (let i = 0; i < 100; i++) {
    const r = await reader.read();
    if (r.done) break;
    parts.push(...r.value);
  }
  return Uint8Array.from(parts);
}

Deno.test("sniffClient() finds the SNI across two writes and replays every byte", async () => {
  const [client, peer] = duplexPair();
  const hello = clientHello({ sni: "split.test" });
  const w = peer.writable.getWriter();
  await w.write(hello.subarray(0, 20));
  const sniffing = sniffClient(client);
  await w.write(hello.subarray(20));
  const { client: held, sniffed } = await sniffing;
  assert.deepEqual(sniffed, { protocol: "tls", domain: "split.test" });
  await w.write(Uint8Array.of(1, 2, 3));
  await w.close();
  assert.deepEqual(await readAll(held.reader), Uint8Array.from([...hello, 1, 2, 3]));
  held.close();
  peer.close();
});

Deno.test("sniffClient() gives up after its bounded wait and keeps the late bytes", async () => {
  const [client, peer] = duplexPair();
  const { client: held, sniffed } = await sniffClient(client, 5);
  assert.equal(sniffed, undefined);
  const w = peer.writable.getWriter();
  await w.write(new TextEncoder().encode("late"));
  await w.close();
  assert.equal(new TextDecoder().decode(await readAll(held.reader)), "late");
  held.close();
  peer.close();
});

Deno.test("sniffClient() keeps the client's reset() and copiesWrites", async () => {
  const [client, peer] = duplexPair();
  let resets = 0;
  const side = Object.assign(client, {
    copiesWrites: true,
    reset: () => {
      resets++;
      client.close();
    },
  });
  const w = peer.writable.getWriter();
  await w.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  const { client: held, sniffed } = await sniffClient(side);
  assert.equal(sniffed?.protocol, "http1");
  // The relay resets a client whose download was cut short; without reset() it would close it,
  // and the client would take the truncated download for a complete one (a FIN).
  assert.equal(held.copiesWrites, true, "the relay gives lent chunks back after writes to it");
  assert.equal(typeof held.reset, "function");
  held.reset!();
  assert.equal(resets, 1);
  peer.close();
});
