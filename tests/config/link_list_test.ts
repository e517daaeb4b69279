import assert from "node:assert/strict";
import { linksToV2rayJson, uniqueLinkTags } from "../../lib/config/link_list.ts";
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
