import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { SilenceWatch } from "../../lib/transport/silence_watch.ts";

function watch(limit: number) {
  const state = { lastRead: performance.now(), silent: [] as number[] };
  const w = new SilenceWatch({
    limit,
    lastReadAt: () => state.lastRead,
    onSilent: (waited) => state.silent.push(waited),
  });
  return { w, state };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("SilenceWatch calls onSilent when nothing was read for limit ms after a stream opened", async () => {
  const { w, state } = watch(40);
  try {
    await sleep(5);
    w.opened();
    await sleep(120);
    equal(state.silent.length, 1);
    ok(state.silent[0] >= 39, `waited ${state.silent[0]} ms`);
    // Once declared dead it stays quiet: the connection is being closed.
    w.opened();
    await sleep(80);
    equal(state.silent.length, 1);
  } finally {
    w.stop();
  }
});

Deno.test("SilenceWatch stays quiet when anything was read after the stream opened", async () => {
  const { w, state } = watch(40);
  try {
    w.opened();
    await sleep(10);
    // Another stream's DATA (or a PING ACK): the server is alive, this stream is just slow.
    state.lastRead = performance.now();
    await sleep(100);
    equal(state.silent.length, 0);
    // A later stream with silence after it is still caught.
    w.opened();
    await sleep(120);
    equal(state.silent.length, 1);
  } finally {
    w.stop();
  }
});

Deno.test("SilenceWatch.stop() cancels the deadline", async () => {
  const { w, state } = watch(30);
  w.opened();
  w.stop();
  await sleep(80);
  equal(state.silent.length, 0);
});

Deno.test("SilenceWatch raises suspicion after suspectAfter, then declares the connection dead", async () => {
  const events: string[] = [];
  const w = new SilenceWatch({
    limit: 80,
    suspectAfter: 20,
    lastReadAt: () => 0,
    onSuspect: (left) => events.push(`suspect ${left > 0 && left <= 61}`),
    onSilent: () => events.push("dead"),
  });
  try {
    w.opened();
    await sleep(50);
    assertEquals(events, ["suspect true"]);
    await sleep(100);
    assertEquals(events, ["suspect true", "dead"]);
  } finally {
    w.stop();
  }
});
