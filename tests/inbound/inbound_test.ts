/**
 * The seam between inbounds and outbounds: an inbound handler is given no outbound, and every
 * connection it makes goes through the dispatcher with a RouteContext naming the inbound, the
 * client and the user it authenticated.
 */
import assert from "node:assert/strict";
import { Dispatcher } from "../../lib/dispatch/dispatcher.ts";
import type { RouteContext } from "../../lib/net/route_context.ts";
import { HttpProxyInbound } from "../../lib/inbound/http_proxy.ts";
import type { InboundContext, InboundHandler } from "../../lib/inbound/inbound.ts";
import { SocksInbound } from "../../lib/inbound/socks.ts";
import { TunnelInbound } from "../../lib/inbound/tunnel.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { Logger } from "../../lib/log.ts";
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import { encodeRequestHeader } from "../../lib/vless/header.ts";
import { FakeOutbound, testContext } from "../support/fake_outbound.ts";

const enc = new TextEncoder();
const ID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

Deno.test("lib/inbound/ imports nothing from lib/outbound/: handlers cannot name an outbound", async () => {
  const dir = new URL("../../lib/inbound/", import.meta.url);
  let files = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".ts")) continue;
    files++;
    const text = await Deno.readTextFile(new URL(e.name, dir));
    assert.doesNotMatch(text, /from "\.\.\/outbound\//, `${e.name} imports an outbound`);
  }
  assert.ok(files >= 8);
});

Deno.test("InboundHandler.handle() reaches outbounds only through the dispatcher, which sees inbound, source and user", async () => {
  const seen: RouteContext[] = [];
  const outbound = new FakeOutbound("only");
  const dispatcher = new Dispatcher({
    router: {
      select: (ctx) => {
        seen.push(ctx);
        return { outbound };
      },
    },
    logger: Logger.silent(),
  });
  const run = async (tag: string, handler: InboundHandler, request: Uint8Array) => {
    const ctx: InboundContext = {
      ...testContext(outbound, { tag, source: { host: "10.0.0.9", port: 5555 } }),
      dispatcher,
    };
    assert.equal("outbound" in ctx, false);
    const [client, server] = duplexPair();
    const handled = handler.handle(server, ctx);
    const w = client.writable.getWriter();
    await w.write(request);
    const { peer } = await outbound.next();
    await w.close();
    await peer.writable.close();
    for await (const _ of client.readable);
    const result = await handled;
    assert.equal(result.outbound, "only");
    client.close();
  };
  await run(
    "socks-in",
    new SocksInbound({ auth: "password", accounts: [{ user: "sam", pass: "pw" }] }),
    Uint8Array.of(
      5,
      1,
      2,
      1,
      3,
      ...enc.encode("sam"),
      2,
      ...enc.encode("pw"),
      5,
      1,
      0,
      1,
      1,
      2,
      3,
      4,
      0,
      80,
    ),
  );
  await run(
    "http-in",
    new HttpProxyInbound({ accounts: [{ user: "hal", pass: "pw" }] }),
    enc.encode(
      `CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Basic ${btoa("hal:pw")}\r\n\r\n`,
    ),
  );
  await run("tunnel-in", new TunnelInbound({ address: "b.test", port: 22 }), enc.encode("x"));
  await run(
    "vless-in",
    new VlessInbound({ clients: [{ id: ID, email: "vic@example.com" }] }),
    encodeRequestHeader({
      userId: ID,
      command: "tcp",
      dest: { network: "tcp", host: "c.test", port: 8080 },
    }),
  );
  await outbound.close();
  const source = { host: "10.0.0.9", port: 5555 };
  assert.deepEqual(seen, [
    {
      destination: { network: "tcp", host: "1.2.3.4", port: 80 },
      inboundTag: "socks-in",
      source,
      user: "sam",
    },
    {
      destination: { network: "tcp", host: "a.test", port: 443 },
      inboundTag: "http-in",
      source,
      user: "hal",
    },
    { destination: { network: "tcp", host: "b.test", port: 22 }, inboundTag: "tunnel-in", source },
    {
      destination: { network: "tcp", host: "c.test", port: 8080 },
      inboundTag: "vless-in",
      source,
      user: "vic@example.com",
    },
  ]);
});
