import assert from "node:assert/strict";
import { DefaultRouter } from "../../lib/dispatch/router.ts";
import { FakeOutbound } from "../support/fake_outbound.ts";

Deno.test("DefaultRouter.select() picks the first outbound for every connection, by no rule", () => {
  const first = new FakeOutbound("a");
  const router = new DefaultRouter([first, new FakeOutbound("b")]);
  for (const port of [80, 443]) {
    const ctx = {
      destination: { network: "tcp" as const, host: "x", port },
      inboundTag: "in",
      source: { host: "127.0.0.1", port: 1 },
    };
    assert.deepEqual(router.select(ctx), { outbound: first });
  }
  assert.throws(() => new DefaultRouter([]), TypeError);
});
