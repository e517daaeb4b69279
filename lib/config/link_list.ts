/**
 * Several share links (repeated `--link`, a subscription) as one v2ray JSON config: the local
 * inbounds of {@link linkToV2rayJson}, then one outbound per link, each exactly what that link
 * alone would give, with its tag made unique; with two or more, a balancer over all of them and
 * a rule sending every connection to it.
 *
 * The balancer takes the alive link with the smallest delay (`leastPing`), measured by an
 * `observatory` over the same outbounds once a minute (a GET through each; failed connections in
 * between count too), so a dead server drops out. Until the first probes answer, the first link
 * carries everything, as before balancers. v2ray 4.34 reads the same config with its random pick
 * (it ignores `strategy` and `observatory`).
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

/** The balancer tag of a config made from several links. */
export const LINKS_BALANCER_TAG = "links";
/**
 * How often the observatory probes each link: a subscription may hold a hundred servers, and
 * connections that fail in between already mark a server dead.
 */
export const LINKS_PROBE_INTERVAL = "1m";

/**
 * The v2ray JSON config of `links` (at least one): local inbounds, one outbound per link, and
 * for several links a balancer over them all that every connection goes to.
 */
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
  if (links.length > 1) {
    // Selectors are tag prefixes: every link's tag selects it (and only link outbounds exist).
    // 4.34 refuses a rule without a condition, so "tcp,udp" stands for everything.
    json.routing = {
      balancers: [{ tag: LINKS_BALANCER_TAG, selector: tags, strategy: { type: "leastPing" } }],
      rules: [{ type: "field", network: "tcp,udp", balancerTag: LINKS_BALANCER_TAG }],
    };
    json.observatory = { subjectSelector: tags, probeInterval: LINKS_PROBE_INTERVAL };
  }
  return json;
}
