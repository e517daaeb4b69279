import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import type { Outbound } from "../../lib/outbound/outbound.ts";
import { Observatory, probeThrough } from "../../lib/probe/observatory.ts";

/** An outbound that connects every destination to `port` on 127.0.0.1 (or refuses). */
function toLocal(tag: string, port: number | "refuse"): Outbound {
  return {
    tag,
    open: async () => {
      if (port === "refuse") throw new Error(`${tag} refused`);
      return new ConnDuplex(await Deno.connect({ hostname: "127.0.0.1", port }));
    },
    close: () => Promise.resolve(),
  };
}

function serve(status: number) {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(null, { status }),
  );
}

Deno.test("probeThrough() times a GET through an outbound and wants a 2xx status", async () => {
  await using ok204 = serve(204);
  await using bad = serve(503);
  const url = new URL("http://probe.test/generate_204");
  const ms = await probeThrough(toLocal("a", ok204.addr.port), url, { timeoutMs: 5000 });
  ok(ms >= 0);
  await rejects(
    probeThrough(toLocal("b", bad.addr.port), url, { timeoutMs: 5000 }),
    /HTTP status 503 from probe\.test:80/,
  );
});

Deno.test("Observatory probes its subjects and records alive, dead and delay", async () => {
  await using server = serve(204);
  for (const enableConcurrency of [false, true]) {
    const outbounds = [
      toLocal("proxy-a", server.addr.port),
      toLocal("proxy-b", "refuse"),
      toLocal("direct", server.addr.port),
    ];
    const o = new Observatory({
      subjectSelector: ["proxy-"],
      probeUrl: "http://probe.test/generate_204",
      probeIntervalMs: 60_000,
      enableConcurrency,
      outbounds,
    });
    try {
      assertEquals(o.subjects.map((s) => s.tag), ["proxy-a", "proxy-b"]);
      equal(o.status("direct"), undefined);
      await o.probeAll();
      equal(o.status("proxy-a")!.alive, true);
      ok(o.status("proxy-a")!.delay! >= 0);
      equal(o.status("proxy-b")!.alive, false);
      equal(o.status("proxy-b")!.lastError, "proxy-b refused");
      // Passive health between probes.
      o.failed("proxy-a", new Error("dial timed out"));
      equal(o.status("proxy-a")!.alive, false);
      o.succeeded("proxy-a");
      equal(o.status("proxy-a")!.alive, true);
    } finally {
      await o.close();
    }
  }
});

Deno.test("Observatory refuses a probe URL that is not http or https", () => {
  let threw = false;
  try {
    new Observatory({ subjectSelector: ["a"], probeUrl: "ftp://x/", outbounds: [] });
  } catch (err) {
    threw = err instanceof TypeError && /must be http or https/.test(err.message);
  }
  ok(threw);
});
