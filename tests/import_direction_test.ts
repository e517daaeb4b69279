/**
 * Imports in lib/ point one way, as data flows: inbound → dispatch → outbound → transport → h2 →
 * net. LAYERS names every folder (and top-level file) of lib/, top first; a module may import
 * from its own folder and from any later layer, never from its own layer's other folders nor
 * from an earlier layer. A new folder must be placed here before its test passes.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const LAYERS: readonly (readonly string[])[] = [
  ["cli", "demo"], // commands; demo.ts + demo/ build a Config for startApp
  ["app"], // the one composition root: Config → running objects
  ["probe"], // requests through outbounds: dray probe's engine (from config types), the observatory
  ["config"], // JSON → Config (uses routing's matchers to check rules)
  ["inbound"], // accept, speak the client's protocol, hand over to the dispatcher
  ["dispatch"], // route, dial, relay, log
  ["routing"], // rules, matchers, geo files, sniffers
  ["outbound"], // VLESS, freedom, blackhole
  ["transport"], // tcp, tls, v2ray http, ws: both halves; Listener
  ["h2", "ws"], // HTTP/2 for both roles; WebSocket codec
  ["http1", "socks", "vless"], // codecs
  ["heap_trimmer"], // process memory: gives idle lent buffers and malloc's free pages back
  ["net"], // Duplex, relay, destinations, listeners on node sockets, RouteContext
  ["log", "error_message"],
];

/** The layer unit of a path relative to lib/: its first folder, or a top-level file's name. */
export function unitOf(libPath: string): string {
  const parts = libPath.split("/");
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, "");
}

/** The specifiers of every static import/export and literal dynamic import in `source`. */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm;
  for (const m of source.matchAll(re)) found.push(m[1]);
  return found;
}

/** "a.ts imports b.ts (x → y)" for each import that points up or sideways. */
export function backwardImports(
  graph: ReadonlyMap<string, readonly string[]>,
  layers: readonly (readonly string[])[],
): string[] {
  const rank = new Map<string, number>();
  layers.forEach((units, i) => units.forEach((u) => rank.set(u, i)));
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    const a = unitOf(from);
    const ra = rank.get(a);
    if (ra === undefined) {
      bad.push(`${from}: "${a}" is in no layer`);
      continue;
    }
    for (const to of targets) {
      const b = unitOf(to);
      if (b === a) continue;
      const rb = rank.get(b);
      if (rb === undefined) bad.push(`${from} imports ${to}: "${b}" is in no layer`);
      else if (rb <= ra) bad.push(`${from} imports ${to} (${a} → ${b} points up or sideways)`);
    }
  }
  return bad;
}

const LIB = fileURLToPath(new URL("../lib/", import.meta.url));

/** lib/ path → the lib/ paths it imports (relative specifiers only; node: built-ins are not ours). */
async function libGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (e.isFile && e.name.endsWith(".ts")) {
        const from = relative(LIB, path);
        const targets = importsOf(await Deno.readTextFile(path))
          .filter((s) => s.startsWith("."))
          .map((s) => relative(LIB, join(dir, s)));
        graph.set(from, targets);
      }
    }
  };
  await walk(LIB);
  return graph;
}

Deno.test("lib/ imports point one way: each folder imports only from layers below it", async () => {
  const graph = await libGraph();
  assert.ok(graph.size > 100, `read ${graph.size} files under lib/`);
  assert.ok(
    [...graph.values()].flat().some((t) => t.startsWith("net/")),
    "the walk found imports",
  );
  assert.deepEqual(backwardImports(graph, LAYERS), []);
});

Deno.test("backwardImports() names an import that points up, sideways, or out of every layer", () => {
  const graph = new Map([
    ["outbound/outbound.ts", ["net/duplex.ts", "outbound/vless.ts", "dispatch/router.ts"]],
    ["h2/frame.ts", ["ws/frame.ts", "log.ts"]],
    ["spare/x.ts", ["net/duplex.ts"]],
    ["net/duplex.ts", ["nowhere/y.ts"]],
  ]);
  assert.deepEqual(backwardImports(graph, LAYERS), [
    "outbound/outbound.ts imports dispatch/router.ts (outbound → dispatch points up or sideways)",
    "h2/frame.ts imports ws/frame.ts (h2 → ws points up or sideways)",
    'spare/x.ts: "spare" is in no layer',
    'net/duplex.ts imports nowhere/y.ts: "nowhere" is in no layer',
  ]);
});

Deno.test("importsOf() finds static, type-only, re-exported and dynamic imports", () => {
  const src = [
    'import type { A } from "../a/a.ts";',
    "import {",
    "  B,",
    '} from "./b.ts";',
    'export { C } from "../c/c.ts";',
    'const d = await import("../d/d.ts");',
    'import "./side_effect.ts";',
  ].join("\n");
  assert.deepEqual(importsOf(src), [
    "../a/a.ts",
    "./b.ts",
    "../c/c.ts",
    "../d/d.ts",
    "./side_effect.ts",
  ]);
});
