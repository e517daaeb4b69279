import assert from "node:assert/strict";
import { defaultThreshold, ReceiveWindow, SendWindow } from "../../lib/h2/flow.ts";

Deno.test("ReceiveWindow.consume() returns 0 until an eighth of the window (64 KiB-1 MiB) or half of it is unsent", () => {
  const w = new ReceiveWindow(4 * 1024 * 1024);
  assert.equal(w.receive(600_000), true);
  assert.equal(w.available, 4 * 1024 * 1024 - 600_000);
  assert.equal(w.consume(500_000), 0);
  assert.equal(w.unsent, 500_000);
  assert.equal(w.consume(24_288), 524_288);
  assert.equal(w.unsent, 0);
  assert.equal(w.available, 4 * 1024 * 1024 - 600_000 + 524_288);

  // The floor: 64 KiB for a 256 KiB window; the ceiling: 1 MiB for a 16 MiB one.
  assert.equal(defaultThreshold(256 * 1024), 64 * 1024);
  assert.equal(defaultThreshold(16 * 1024 * 1024), 1024 * 1024);
  assert.equal(defaultThreshold(1 << 30), 1024 * 1024);

  // An explicit threshold wins.
  const fixed = new ReceiveWindow(4 * 1024 * 1024, { threshold: 1000 });
  assert.equal(fixed.receive(5000), true);
  assert.equal(fixed.consume(999), 0);
  assert.equal(fixed.consume(1), 1000);

  // A small window refreshes at half its size.
  const small = new ReceiveWindow(1000);
  assert.equal(small.receive(1000), true);
  assert.equal(small.consume(499), 0);
  assert.equal(small.consume(1), 500);
  assert.equal(small.available, 500);
});

Deno.test("ReceiveWindow.receive() refuses bytes beyond what was advertised", () => {
  const w = new ReceiveWindow(10);
  assert.equal(w.receive(10), true);
  assert.equal(w.receive(1), false);
  assert.equal(w.available, 0);
  assert.equal(w.flush(), 0);
  w.consume(3);
  assert.equal(w.flush(), 3);
  assert.equal(w.receive(3), true);
  assert.equal(w.receive(1), false);
});

Deno.test("ReceiveWindow.grow() raises the window and stops at 2^31-1", () => {
  const w = new ReceiveWindow(65_535);
  w.grow(16 * 1024 * 1024 - 65_535);
  assert.equal(w.size, 16 * 1024 * 1024);
  assert.equal(w.available, 16 * 1024 * 1024);
  assert.throws(() => w.grow(2 ** 31), RangeError);
  assert.equal(w.size, 16 * 1024 * 1024);
});

Deno.test("SendWindow goes negative on a SETTINGS shrink: 3 → send 3 → window 2 → +2 → 1 byte", () => {
  // RFC 9113 §6.9.2: the window of a stream with 3 bytes in flight, after SETTINGS_INITIAL_WINDOW_SIZE
  // drops from 3 to 2, is -1; a WINDOW_UPDATE of 2 leaves exactly 1 byte to send.
  const w = new SendWindow(3);
  w.consume(3);
  assert.equal(w.size, 0);
  assert.equal(w.add(2 - 3), true);
  assert.equal(w.size, -1);
  assert.throws(() => w.consume(1), RangeError);
  assert.equal(w.add(2), true);
  assert.equal(w.size, 1);
  w.consume(1);
  assert.equal(w.size, 0);
});

Deno.test("SendWindow.add() refuses to pass 2^31-1 and leaves the window unchanged", () => {
  const w = new SendWindow(65_535);
  assert.equal(w.add(2 ** 31 - 1 - 65_535), true);
  assert.equal(w.size, 2 ** 31 - 1);
  assert.equal(w.add(1), false);
  assert.equal(w.size, 2 ** 31 - 1);
  w.consume(10);
  assert.equal(w.add(10), true);
});
