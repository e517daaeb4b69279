import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { ObservedOutbound } from "../../lib/outbound/observed_outbound.ts";
import type { Outbound } from "../../lib/outbound/outbound.ts";

const DEST = { network: "tcp", host: "example.com", port: 80 } as const;

function inner(fail: boolean): Outbound {
  return {
    tag: "x",
    open: () => fail ? Promise.reject(new Error("refused")) : Promise.resolve(duplexPair()[0]),
    close: () => Promise.resolve(),
  };
}

Deno.test("ObservedOutbound.open() reports each outcome, but not the caller giving up", async () => {
  const events: string[] = [];
  const sink = {
    failed: (tag: string, err: unknown) => events.push(`failed ${tag} ${(err as Error).message}`),
    succeeded: (tag: string) => events.push(`ok ${tag}`),
  };
  const good = new ObservedOutbound(inner(false), sink);
  (await good.open(DEST)).close();
  const bad = new ObservedOutbound(inner(true), sink);
  await rejects(bad.open(DEST), /refused/);
  const gone = new AbortController();
  gone.abort(new Error("client left"));
  await rejects(bad.open(DEST, { signal: gone.signal }), /refused/);
  assertEquals(events, ["ok x", "failed x refused"]);
  await good.close();
});
