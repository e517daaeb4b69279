import assert from "node:assert/strict";
import { type BodySink, BodyWriter } from "../../lib/h2/body_writer.ts";

/** A sink whose operations finish when the test says so. */
class Sink implements BodySink {
  log: string[] = [];
  aborts = 0;
  #pending: Array<PromiseWithResolvers<void>> = [];
  write(chunk: Uint8Array): Promise<void> {
    this.log.push(`write ${chunk[0]}`);
    return this.#op();
  }
  close(): Promise<void> {
    this.log.push("close");
    return this.#op();
  }
  abort(): void {
    this.aborts++;
  }
  /** Settles the oldest unsettled operation. */
  finish(err?: Error): void {
    const op = this.#pending.shift()!;
    if (err) op.reject(err);
    else op.resolve();
  }
  #op(): Promise<void> {
    const op = Promise.withResolvers<void>();
    this.#pending.push(op);
    return op.promise;
  }
}

const chunk = (n: number) => Uint8Array.of(n);
const turns = async (n = 3) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

Deno.test("BodyWriter runs writes one at a time, in order, with ready and desiredSize of one chunk", async () => {
  const sink = new Sink();
  const w = new BodyWriter(sink);
  assert.equal(w.desiredSize, 1);
  await w.ready;
  const first = w.write(chunk(1));
  const second = w.write(chunk(2));
  assert.deepEqual(sink.log, ["write 1"], "the second waits for the first");
  assert.equal(w.desiredSize, -1);
  let ready = false;
  w.ready.then(() => (ready = true));
  sink.finish();
  await first;
  await turns();
  assert.deepEqual(sink.log, ["write 1", "write 2"]);
  assert.equal(ready, false, "one write still under way");
  sink.finish();
  await second;
  await turns();
  assert.equal(ready, true);
  assert.equal(w.desiredSize, 1);
});

Deno.test("BodyWriter.close() waits for the writes before it; closed resolves; later writes reject", async () => {
  const sink = new Sink();
  const w = new BodyWriter(sink);
  const write = w.write(chunk(1));
  const close = w.close();
  await assert.rejects(w.write(chunk(2)), TypeError);
  assert.deepEqual(sink.log, ["write 1"]);
  sink.finish();
  await write;
  await turns();
  assert.deepEqual(sink.log, ["write 1", "close"]);
  sink.finish();
  await close;
  await w.closed;
  await assert.rejects(w.close(), TypeError);
});

Deno.test("BodyWriter is errored by a failed write: queued writes, ready and closed reject with its error", async () => {
  const sink = new Sink();
  const w = new BodyWriter(sink);
  const closed = w.closed;
  const first = w.write(chunk(1));
  const second = w.write(chunk(2));
  const ready = w.ready;
  const err = new Error("reset by peer");
  sink.finish(err);
  await assert.rejects(first, /reset by peer/);
  await assert.rejects(second, /reset by peer/);
  await assert.rejects(ready, /reset by peer/);
  await assert.rejects(closed, /reset by peer/);
  assert.equal(w.desiredSize, null);
  await assert.rejects(w.write(chunk(3)), /reset by peer/);
  assert.deepEqual(sink.log, ["write 1"], "nothing written after the failure");
});

Deno.test("BodyWriter.abort() and fail() error it at once; abort tells the sink once", async () => {
  const sink = new Sink();
  const w = new BodyWriter(sink);
  const inFlight = w.write(chunk(1));
  inFlight.catch(() => {});
  const queued = w.write(chunk(2));
  const reason = new Error("relay ended");
  await w.abort(reason);
  await w.abort(reason);
  assert.equal(sink.aborts, 1);
  await assert.rejects(queued, /relay ended/);
  await assert.rejects(w.closed, /relay ended/);
  const other = new BodyWriter(new Sink());
  other.fail(new Error("stream reset"));
  await assert.rejects(other.write(chunk(1)), /stream reset/);
  await assert.rejects(other.ready, /stream reset/);
});
