/**
 * Drives a proxy handshake split at every byte: for each split point, a fresh handler gets the
 * first part, then the rest with "ping" behind it; the test then checks the replies, that the
 * outbound was asked for `dest`, and that "ping"/"pong" and both EOFs cross the relay.
 */
import assert from "node:assert/strict";
import type { InboundHandler, InboundResult } from "../../lib/inbound/inbound.ts";
import type { Destination } from "../../lib/net/destination.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { concat, FakeOutbound, readAll, readN, testContext } from "./fake_outbound.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function assertConnectAtEverySplit(
  makeHandler: () => InboundHandler,
  request: Uint8Array,
  replies: number[][],
  dest: Destination,
  destination: string,
): Promise<void> {
  for (let split = 0; split <= request.byteLength; split++) {
    const outbound = new FakeOutbound();
    const [client, server] = duplexPair();
    const handled = makeHandler().handle(server, testContext(outbound));
    const w = client.writable.getWriter();
    await w.write(request.slice(0, split));
    await w.write(concat([request.slice(split), enc.encode("ping")]));
    const reader = client.readable.getReader();
    for (const reply of replies) {
      assert.deepEqual([...await readN(reader, reply.length)], reply, `split at ${split}`);
    }
    const opened = await outbound.next();
    assert.deepEqual(opened.dest, dest);
    const pr = opened.peer.readable.getReader();
    assert.equal(dec.decode(await readN(pr, 4)), "ping");
    const pw = opened.peer.writable.getWriter();
    await pw.write(enc.encode("pong"));
    await pw.close();
    assert.equal(dec.decode(await readN(reader, 4)), "pong");
    await w.close();
    assert.equal((await pr.read()).done, true);
    assert.equal((await reader.read()).done, true);
    assert.deepEqual(await handled, {
      destination,
      result: "ok",
      up: 4,
      down: 4,
      outbound: "fake",
    });
    client.close();
    await outbound.close();
  }
}

/**
 * Runs `handler` against a scripted client that writes `input` in two chunks split at `split`;
 * returns what the client got and the handler's result. `highWaterMark` sizes the in-memory pipe.
 */
export async function exchangeAtSplit(
  handler: InboundHandler,
  input: Uint8Array,
  split: number,
  options: { outbound?: FakeOutbound; highWaterMark?: number } = {},
): Promise<{ got: Uint8Array; result: InboundResult }> {
  const outbound = options.outbound ?? new FakeOutbound();
  const [client, server] = duplexPair(options.highWaterMark);
  const handled = handler.handle(server, testContext(outbound));
  const w = client.writable.getWriter();
  // Like a real client: send everything, then FIN, and read the answer until the server closes.
  const writing = (async () => {
    await w.write(input.slice(0, split));
    await w.write(input.slice(split));
    await w.close();
  })().catch(() => {});
  const got = await readAll(client.readable);
  await writing;
  const result = await handled;
  client.close();
  await outbound.close();
  return { got, result };
}
