import assert from "node:assert/strict";
import { Logger } from "../../lib/log.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { acceptEach } from "../../lib/transport/accept_each.ts";
import type { Accepted, Listener } from "../../lib/transport/listener.ts";

/** A listener that fails `failures` accepts (EMFILE-like), yields one stream, then is closed. */
function flakyListener(failures: number): Listener & { closed: () => boolean } {
  let calls = 0;
  let closed = false;
  const [a, b] = duplexPair();
  return {
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    accept(): Promise<Accepted> {
      calls++;
      if (calls <= failures) return Promise.reject(new Error(`too many open files (${calls})`));
      if (calls === failures + 1) {
        return Promise.resolve({
          duplex: a,
          remote: { host: "127.0.0.1", port: 2 },
          local: { host: "127.0.0.1", port: 1 },
        });
      }
      closed = true;
      b.close();
      return Promise.reject(new Deno.errors.BadResource("closed"));
    },
    close: () => Promise.resolve(),
    closed: () => closed,
  };
}

Deno.test("acceptEach() logs failed accepts, pauses after a run of them, serves on, and ends at BadResource", async () => {
  const warnings: string[] = [];
  const logger = Logger.silent();
  logger.warn = (m) => void warnings.push(m);
  const listener = flakyListener(9);
  const served: Accepted[] = [];
  const started = performance.now();
  await acceptEach(listener, (x) => void served.push(x), {
    logger,
    what: 'inbound "t"',
    stopped: () => false,
  });
  assert.equal(served.length, 1);
  assert.equal(warnings.length, 9);
  assert.match(warnings[0], /^inbound "t": accept failed: too many open files \(1\)$/);
  // Eight failures in a row pause the loop (200 ms) instead of spinning.
  assert.ok(performance.now() - started >= 150, "no pause after 8 failures");
  assert.equal(listener.closed(), true);
  served[0].duplex.close();
});
