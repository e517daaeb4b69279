/**
 * Several share links (repeated `--link`, a subscription) as one v2ray JSON config: the local
 * inbounds of {@link linkToV2rayJson}, then one outbound per link, each exactly what that link
 * alone would give, with its tag made unique.
 */
import {
  DEFAULT_LINK_TAG,
  type LinkInbounds,
  linkToV2rayJson,
  type VlessLink,
} from "./share_link.ts";

/**
 * Tags from link names (or {@link DEFAULT_LINK_TAG}), made unique by a "-2", "-3", … suffix in
 * input order, so the first of a name keeps it as written.
 */
export function uniqueLinkTags(links: readonly VlessLink[]): string[] {
  const used = new Set<string>();
  return links.map((link) => {
    const base = link.name === "" ? DEFAULT_LINK_TAG : link.name;
    let tag = base;
    // Bounded: each round tries a suffix no earlier link can have taken twice.
    for (let n = 2; used.has(tag); n++) tag = `${base}-${n}`;
    used.add(tag);
    return tag;
  });
}

/** The v2ray JSON config of `links` (at least one): local inbounds and one outbound per link. */
export function linksToV2rayJson(
  links: readonly VlessLink[],
  inbounds: LinkInbounds = {},
): Record<string, unknown> {
  if (links.length === 0) throw new RangeError("linksToV2rayJson needs at least one link");
  const json = linkToV2rayJson(links[0], inbounds);
  const tags = uniqueLinkTags(links);
  json.outbounds = links.map((link, i) => {
    const [outbound] = linkToV2rayJson(link, { socks: null, http: null }).outbounds as Array<
      Record<string, unknown>
    >;
    return { ...outbound, tag: tags[i] };
  });
  return json;
}
