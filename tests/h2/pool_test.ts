import assert, { equal } from "node:assert/strict";
import { H2Pool } from "../../lib/h2/pool.ts";
import { isRetryable } from "../../lib/h2/stream.ts";
import { ErrorCode } from "../../lib/h2/errors.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { H2Peer, T } from "../support/h2_peer.ts";

const GET = {
  method: "GET",
  scheme: "https",
  authority: "example.com",
  path: "/",
  endStream: true,
};

/** Dials in-memory peers that answer every request with 200 unless told otherwise. */
class Peers {
  dials: string[] = [];
  peers: H2Peer[] = [];
  #loops: Promise<void>[] = [];
  settings: Array<[number, number]> = [];
  /** Called for each HEADERS; default answers 200 + END_STREAM. */
  onHeaders = (peer: H2Peer, streamId: number): Promise<void> =>
    peer.headers(streamId, [[":status", "200"]], { endStream: true });

  dial = (key: string): Promise<Duplex> => {
    this.dials.push(key);
    const { client, peer } = H2Peer.pair();
    this.peers.push(peer);
    this.#loops.push(this.#serve(peer));
    return Promise.resolve(client);
  };

  async #serve(peer: H2Peer): Promise<void> {
    try {
      await peer.handshake(this.settings);
      for (let i = 0; i < 10_000; i++) {
        const f = await peer.readFrame(10_000);
        if (!f) return;
        if (f.type === T.HEADERS) await this.onHeaders(peer, f.streamId);
      }
    } catch {
      // The pool closed the connection.
    }
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.close();
    await Promise.all(this.#loops);
  }
}

async function withPool(
  fn: (pool: H2Pool, peers: Peers) => Promise<void>,
  setup?: (peers: Peers) => void,
): Promise<void> {
  const peers = new Peers();
  setup?.(peers);
  const pool = new H2Pool({ dial: peers.dial, connection: { readIdleTimeout: 0 } });
  try {
    await fn(pool, peers);
  } finally {
    pool.close();
    await peers.close();
  }
}

Deno.test("H2Pool.request() reuses one connection per key", async () => {
  await withPool(async (pool, peers) => {
    const a = await pool.request("a", GET);
    const b = await pool.request("a", GET);
    const c = await pool.request("b", GET);
    assert.equal((await a.response).status, 200);
    assert.equal((await b.response).status, 200);
    assert.equal((await c.response).status, 200);
    assert.deepEqual(peers.dials, ["a", "b"]);
    assert.equal(a.id, 1);
    assert.equal(b.id, 3);
    assert.equal(pool.connectionCount, 2);
  });
});

Deno.test("H2Pool.request() keeps one dial in flight per key", async () => {
  await withPool(async (pool, peers) => {
    const streams = await Promise.all(Array.from({ length: 10 }, () => pool.request("k", GET)));
    assert.deepEqual(peers.dials, ["k"]);
    assert.deepEqual(streams.map((s) => s.id), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    await Promise.all(streams.map((s) => s.response));
  });
});

Deno.test("H2Pool.request() opens another connection when the peer's stream limit is reached", async () => {
  await withPool(async (pool, peers) => {
    peers.onHeaders = () => Promise.resolve(); // never answer: streams stay open
    const a = await pool.request("k", GET);
    const b = await pool.request("k", GET);
    const c = await pool.request("k", GET);
    assert.deepEqual(peers.dials, ["k", "k"]);
    assert.equal(pool.connectionCount, 2);
    assert.deepEqual([a.id, b.id, c.id], [1, 3, 1]);
    a.close();
    // A slot is free again on the first connection.
    const d = await pool.request("k", GET);
    assert.equal(d.id, 5);
    assert.equal(peers.dials.length, 2);
  }, (peers) => (peers.settings = [[3, 2]]));
});

Deno.test("H2Pool.openNow() opens a stream only on a connection with room, and never dials", async () => {
  await withPool(async (pool, peers) => {
    let made = 0;
    const request = () => (made++, GET);
    equal(pool.openNow("k", request), undefined, "no connection yet");
    equal(made, 0, "no request is made without a connection");
    peers.onHeaders = () => Promise.resolve(); // never answer: streams stay open
    const a = await pool.request("k", GET);
    const b = pool.openNow("k", request);
    assert.ok(b);
    equal(b.stream.id, 3);
    equal(made, 1);
    equal(pool.openNow("k", request), undefined, "the peer allows two streams");
    equal(pool.openNow("other", request), undefined);
    assert.deepEqual(peers.dials, ["k"]);
    a.close();
    equal(pool.openNow("k", request)?.stream.id, 5);
  }, (peers) => (peers.settings = [[3, 2]]));
});

Deno.test("H2Pool drops a connection that received GOAWAY and dials a fresh one", async () => {
  await withPool(async (pool, peers) => {
    peers.onHeaders = () => Promise.resolve();
    const a = await pool.request("k", GET);
    await peers.peers[0].goaway(0, ErrorCode.NO_ERROR);
    const err = await a.response.catch((e) => e);
    assert.equal(isRetryable(err), true);
    const b = await pool.request("k", GET);
    assert.deepEqual(peers.dials, ["k", "k"]);
    assert.equal(b.id, 1);
    assert.equal(pool.connectionCount, 1);
  });
});

Deno.test("H2Pool evicts a connection whose peer vanished", async () => {
  await withPool(async (pool, peers) => {
    peers.onHeaders = () => Promise.resolve();
    const a = await pool.request("k", GET);
    assert.equal(pool.connectionCount, 1);
    peers.peers[0].close();
    await assert.rejects(a.response, /peer closed the connection|read failed/);
    assert.equal(pool.connectionCount, 0);
    peers.onHeaders = (p, id) => p.headers(id, [[":status", "204"]], { endStream: true });
    const b = await pool.request("k", GET);
    assert.equal((await b.response).status, 204);
    assert.equal(peers.dials.length, 2);
  });
});

Deno.test("H2Pool.request() reports dial failures and dials again next time", async () => {
  let fail = true;
  const peers = new Peers();
  const pool = new H2Pool({
    dial: (key) => fail ? Promise.reject(new Error("connection refused")) : peers.dial(key),
    connection: { readIdleTimeout: 0 },
  });
  try {
    await assert.rejects(pool.request("k", GET), /connection refused/);
    fail = false;
    const s = await pool.request("k", GET);
    assert.equal((await s.response).status, 200);
  } finally {
    pool.close();
    await peers.close();
  }
});

Deno.test("H2Pool.request() stops waiting when its signal aborts", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const peers = new Peers();
  const pool = new H2Pool({
    dial: async (key) => {
      await gate;
      return peers.dial(key);
    },
    connection: { readIdleTimeout: 0 },
  });
  try {
    const ac = new AbortController();
    const waiting = pool.request("k", GET, ac.signal);
    const other = pool.request("k", GET);
    ac.abort(new Error("client went away"));
    await assert.rejects(waiting, /client went away/);
    release();
    // The shared dial went on for the other waiter.
    assert.equal((await (await other).response).status, 200);
  } finally {
    pool.close();
    await peers.close();
  }
});

Deno.test("H2Pool fails a dial whose peer never sends SETTINGS at connectTimeout", async () => {
  const failed: string[] = [];
  const silent: Duplex[] = [];
  const pool = new H2Pool({
    // A peer that accepts and then says nothing (a frozen server behind a kernel backlog).
    dial: () => {
      const { client, peer } = H2Peer.pair();
      silent.push(peer as unknown as Duplex);
      return Promise.resolve(client);
    },
    connection: { readIdleTimeout: 0, pingTimeout: 60_000 },
    connectTimeout: 100,
    onFailed: (key, err) => failed.push(`${key}: ${err.message}`),
  });
  try {
    await assert.rejects(
      pool.request("k:1", GET),
      /connection to k:1 did not complete TCP \+ TLS \+ HTTP\/2 SETTINGS within 100 ms/,
    );
    assert.deepEqual(failed, [
      "k:1: connection to k:1 did not complete TCP + TLS + HTTP/2 SETTINGS within 100 ms",
    ]);
  } finally {
    pool.close();
    for (const p of silent) p.close();
  }
});

Deno.test("H2Pool fails a dial that hangs at connectTimeout, aborting it", async () => {
  let aborted = false;
  const pool = new H2Pool({
    dial: (_key, signal) =>
      new Promise((_, reject) => {
        signal?.addEventListener("abort", () => {
          aborted = true;
          reject(signal.reason);
        });
      }),
    connectTimeout: 50,
  });
  try {
    await assert.rejects(pool.request("k:1", GET), /within 50 ms/);
    assert.equal(aborted, true);
  } finally {
    pool.close();
  }
});

Deno.test("H2Pool reports a new connection's handshake time and a connection that dies", async () => {
  const events: string[] = [];
  const peers = new Peers();
  // Streams are answered but left open: the server vanishes in the middle of one.
  peers.onHeaders = (peer, id) => peer.headers(id, [[":status", "200"]]);
  const pool = new H2Pool({
    dial: peers.dial,
    connection: { readIdleTimeout: 0 },
    onConnected: (key, ms) => events.push(`up ${key} ${ms >= 0}`),
    onFailed: (key, err) => events.push(`down ${key} ${err.message}`),
  });
  try {
    const s = await pool.request("k:1", { ...GET, endStream: false });
    await s.response;
    assert.deepEqual(events, ["up k:1 true"]);
    // The server vanishes with a stream open: news about the server.
    peers.peers[0].close();
    await waitFor(() => events.length === 2);
    assert.match(events[1], /^down k:1 peer closed the connection/);
  } finally {
    pool.close();
    await peers.close();
  }
});

Deno.test("H2Pool does not report a server closing an idle connection after GOAWAY", async () => {
  const events: string[] = [];
  const peers = new Peers();
  const pool = new H2Pool({
    dial: peers.dial,
    connection: { readIdleTimeout: 0 },
    onFailed: (key, err) => events.push(`down ${key} ${err.message}`),
  });
  try {
    await (await pool.request("k:1", GET)).response;
    // RFC 9113 §6.8: GOAWAY NO_ERROR (last stream 1), then the close — a graceful idle end.
    await peers.peers[0].send(T.GOAWAY, 0, 0, Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 0));
    peers.peers[0].close();
    // The next request needs a new connection: the old one is gone from the pool by then.
    await waitFor(() => pool.connectionCount === 0);
    assert.deepEqual(events, []);
  } finally {
    pool.close();
    await peers.close();
  }
});

Deno.test("H2Pool.retire() closes a connection, fails its streams, and opens a new one next", async () => {
  await withPool(async (pool, peers) => {
    const first = await pool.open("k:1", { ...GET, endStream: false });
    pool.retire(first.connection);
    await assert.rejects(first.stream.response);
    const second = await pool.open("k:1", GET);
    assert.notEqual(second.connection, first.connection);
    assert.equal(peers.dials.length, 2);
    await second.stream.response;
  }, (peers) => {
    // The first stream is never answered.
    peers.onHeaders = (peer, id) =>
      id === 1 && peers.peers.length === 1
        ? Promise.resolve()
        : peer.headers(id, [[":status", "200"]], { endStream: true });
  });
});

/** Polls every 5 ms, at most 5 s: for outcomes reported from another task. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), "condition not met within 5 s");
}
