import assert from "node:assert/strict";
import { buildRouter } from "../../lib/routing/build_router.ts";
import { RoutingRouter } from "../../lib/dispatch/routing_router.ts";
import { FakeOutbound } from "../support/fake_outbound.ts";

function routingRouter(domainStrategy: "AsIs" | "IPOnDemand" = "AsIs") {
  const outbounds = ["direct", "proxy", "px-1"].map((t) => new FakeOutbound(t));
  const { router } = buildRouter({
    routing: {
      domainStrategy,
      balancers: [{ tag: "bal", selector: ["px-"] }],
      rules: [
        {
          path: "routing.rules[0]",
          domain: [{ value: "domain:example.com", path: "routing.rules[0].domain[0]" }],
          outboundTag: "proxy",
        },
        {
          path: "routing.rules[1]",
          ip: [{ value: "10.0.0.0/8", path: "routing.rules[1].ip[0]" }],
          outboundTag: "proxy",
        },
        { path: "routing.rules[2]", network: ["udp"], balancerTag: "bal" },
      ],
    },
    outboundTags: outbounds.map((o) => o.tag),
    lookup: () => Promise.resolve(["10.1.2.3"]),
  });
  return { router: new RoutingRouter({ rules: router, outbounds }), outbounds };
}

const ctx = (host: string, network: "tcp" | "udp" = "tcp") => ({
  destination: { network, host, port: 443 },
  inboundTag: "in",
  source: { host: "127.0.0.1", port: 5000 },
});

Deno.test("RoutingRouter.select() hands on the outbound and the rule that chose it", async () => {
  const { router, outbounds: [direct, proxy, px1] } = routingRouter();
  assert.deepEqual(router.select(ctx("www.example.com")), {
    outbound: proxy,
    rule: "rule 1: domain:example.com",
  });
  assert.deepEqual(router.select(ctx("q.test")), { outbound: direct });
  assert.deepEqual(router.select(ctx("q.test", "udp")), {
    outbound: px1,
    rule: "rule 3: network udp, balancer bal",
  });
  // AsIs: a name never reaches the ip rule.
  assert.deepEqual(await router.select(ctx("resolved.test")), { outbound: direct });
});

Deno.test("RoutingRouter.select() resolves a name when IPOnDemand reaches an ip rule", async () => {
  const { router, outbounds: [, proxy] } = routingRouter("IPOnDemand");
  const r = router.select(ctx("resolved.test"));
  assert.ok(r instanceof Promise);
  assert.deepEqual(await r, { outbound: proxy, rule: "rule 2: ip 10.0.0.0/8" });
});
