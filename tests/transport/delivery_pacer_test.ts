import assert from "node:assert/strict";
import {
  DeliveryPacer,
  GATHER_BYTES,
  HOLD_MS,
  STREAM_BYTES,
} from "../../lib/transport/delivery_pacer.ts";

Deno.test("DeliveryPacer.hold() holds nothing until the connection moves STREAM_BYTES in a window", () => {
  const pacer = new DeliveryPacer(() => {});
  try {
    assert.equal(pacer.hold(4096), false);
    pacer.delivered(STREAM_BYTES - 1);
    assert.equal(pacer.hold(4096), false, "a request/response or a handshake never waits");
    pacer.delivered(1);
    assert.equal(pacer.hold(4096), true);
    assert.equal(pacer.hold(GATHER_BYTES - 1), true);
    assert.equal(pacer.hold(GATHER_BYTES), false, "enough is pending: it goes");
  } finally {
    pacer.close();
  }
});

Deno.test("DeliveryPacer runs the flush within HOLD_MS of a hold, once, and never after close()", async () => {
  let flushes = 0;
  const flushed = Promise.withResolvers<void>();
  const pacer = new DeliveryPacer(() => {
    flushes++;
    flushed.resolve();
  });
  pacer.delivered(STREAM_BYTES);
  assert.equal(pacer.hold(100), true);
  assert.equal(pacer.hold(200), true, "a second hold shares the first one's timer");
  const safety = setTimeout(() => flushed.reject(new Error("no flush within 5 s")), 5_000);
  try {
    await flushed.promise;
  } finally {
    clearTimeout(safety);
  }
  assert.equal(flushes, 1);
  assert.ok(HOLD_MS <= 1);
  assert.equal(pacer.hold(100), true);
  pacer.close();
  assert.equal(pacer.hold(100), false, "closed: nothing waits");
  // The sanitizers fail this test if close() left the second hold's timer behind.
});
