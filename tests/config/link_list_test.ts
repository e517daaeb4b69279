import assert from "node:assert/strict";
import { buildRouting } from "../../lib/app.ts";
import type { Observatory } from "../../lib/probe/observatory.ts";
import {
  LINKS_BALANCER_TAG,
  linksToV2rayJson,
  uniqueLinkTags,
} from "../../lib/config/link_list.ts";
import { parseConfigObject } from "../../lib/config/parse.ts";
import { linkToV2rayJson, parseVlessLink } from "../../lib/config/share_link.ts";

const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";
const link = (host: string, name: string) =>
  parseVlessLink(`vless://${ID}@${host}:443?security=tls${name ? "#" + name : ""}`);

Deno.test("uniqueLinkTags() keeps the first of a name and numbers the rest", () => {
  const tags = uniqueLinkTags([
    link("a.test", "edge"),
    link("b.test", ""),
    link("c.test", "edge"),
    link("d.test", ""),
    link("e.test", "edge-2"),
    link("f.test", "edge"),
  ]);
  assert.deepEqual(tags, ["edge", "proxy", "edge-2", "proxy-2", "edge-2-2", "edge-3"]);
});

Deno.test("linksToV2rayJson() gives one outbound per link, each as the link alone would", () => {
  const links = [link("a.test", "x"), link("b.test", "x")];
  const json = linksToV2rayJson(links, { http: null });
  const outbounds = json.outbounds as Array<Record<string, unknown>>;
  assert.deepEqual(outbounds.map((o) => o.tag), ["x", "x-2"]);
  const alone = linkToV2rayJson(links[1], { http: null });
  assert.deepEqual({ ...outbounds[1], tag: "x" }, (alone.outbounds as unknown[])[0]);
  assert.deepEqual(json.inbounds, alone.inbounds);
  // And the whole is a valid config.
  const config = parseConfigObject(json);
  assert.deepEqual(config.outbounds.map((o) => o.tag), ["x", "x-2"]);
  assert.throws(() => linksToV2rayJson([]), RangeError);
});

Deno.test("linksToV2rayJson() sends every connection to a leastPing balancer over all the links", async () => {
  const links = [link("a.test", "hk"), link("b.test", "hk"), link("c.test", "jp")];
  const json = linksToV2rayJson(links, { http: null });
  const tags = ["hk", "hk-2", "jp"];
  assert.deepEqual(json.routing, {
    balancers: [{ tag: LINKS_BALANCER_TAG, selector: tags, strategy: { type: "leastPing" } }],
    rules: [{ type: "field", network: "tcp,udp", balancerTag: LINKS_BALANCER_TAG }],
  });
  assert.deepEqual(json.observatory, { subjectSelector: tags, probeInterval: "1m" });
  const config = parseConfigObject(json);
  assert.deepEqual(config.observatory?.subjectSelector, tags);
  assert.equal(config.observatory?.probeIntervalMs, 60_000);
  // leastPing over the observatory's view: the alive link with the smallest delay.
  const health: Record<string, { alive: boolean; delay: number | undefined }> = {
    hk: { alive: false, delay: undefined },
    "hk-2": { alive: true, delay: 180 },
    jp: { alive: true, delay: 40 },
  };
  const { router } = buildRouting(config, {
    observatory: { status: (tag: string) => health[tag] } as unknown as Observatory,
  });
  for (const network of ["tcp", "udp"] as const) {
    const d = await router.decide({
      destination: { network, host: "example.com", port: 443 },
      inboundTag: "socks",
    });
    assert.equal(d.rule?.index, 0);
    assert.equal(d.tag, "jp");
  }
  // One link: no balancer, the link's outbound takes everything as before.
  assert.equal(linksToV2rayJson([links[0]]).routing, undefined);
});

Deno.test("linksToV2rayJson(): v2ray 4.34 accepts the config of several links", async () => {
  const links = [link("a.test", "x"), link("b.test", "x"), link("c.test", "")];
  const dir = await Deno.makeTempDir({ prefix: "dray-link-list-" });
  try {
    const path = `${dir}/config.json`;
    await Deno.writeTextFile(path, JSON.stringify(linksToV2rayJson(links)));
    const out = await new Deno.Command(Deno.env.get("V2RAY_BIN") ?? "/usr/bin/v2ray", {
      args: ["-test", "-config", path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /Configuration OK/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
