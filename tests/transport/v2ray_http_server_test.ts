import { dispatcherFor } from "../support/fake_outbound.ts";
import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/h2/errors.ts";
import { DEFAULT_POLICY } from "../../lib/dispatch/policy.ts";
import { VlessInbound } from "../../lib/inbound/vless.ts";
import { InboundServer } from "../../lib/inbound/server.ts";
import { Logger } from "../../lib/log.ts";
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { FreedomOutbound } from "../../lib/outbound/freedom.ts";
import { H2ClientPeer, readU32, requestFields, T } from "../support/h2_client_peer.ts";
import { abortively } from "../../lib/net/duplex.ts";
import { listenTcp } from "../../lib/transport/listener.ts";
import { V2rayHttpServer } from "../../lib/transport/v2ray_http_server.ts";
import { literalBlock } from "../support/h2_peer.ts";

/** A logger that keeps its warnings, and lets a test await the next one. */
class WarningLog extends Logger {
  readonly lines: string[] = [];
  #wake: (() => void) | undefined;
  constructor() {
    super({ level: "none", access: "none" });
  }
  override warn(message: string): void {
    this.lines.push(message);
    this.#wake?.();
  }
  /** Resolves once a warning matches `re` (bounded by `ms`). */
  async waitFor(re: RegExp, ms = 5000): Promise<string | undefined> {
    const deadline = Date.now() + ms;
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
      const hit = this.lines.find((l) => re.test(l));
      if (hit) return hit;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, deadline - Date.now());
      });
      clearTimeout(timer);
    }
    return this.lines.find((l) => re.test(l));
  }
}

Deno.test("V2rayHttpServer (h2c): a rapid-reset client is cut off with ENHANCE_YOUR_CALM and logged as a warning; others keep being served", async () => {
  const logger = new WarningLog();
  const server = await InboundServer.listen({
    tag: "vless-h2c",
    port: 0,
    handler: new VlessInbound({ clients: [{ id: new Uint8Array(16).fill(7) }] }),
    dispatcher: dispatcherFor(new FreedomOutbound(), logger),
    policy: DEFAULT_POLICY,
    logger,
    http: { path: "/" },
  });
  const open = async () => {
    const peer = new H2ClientPeer(
      new ConnDuplex(await Deno.connect({ hostname: "127.0.0.1", port: server.port })),
    );
    await peer.clientHandshake();
    return peer;
  };
  const abuser = await open();
  const bystander = await open();
  try {
    // 1500 streams opened and cancelled at once: past the burst of 1000.
    const block = literalBlock(requestFields());
    const frames: Uint8Array[] = [];
    for (let id = 1; id < 3000; id += 2) {
      frames.push(abuser.frame(T.HEADERS, 4, id, block));
      frames.push(abuser.frame(T.RST_STREAM, 0, id, Uint8Array.of(0, 0, 0, ErrorCode.CANCEL)));
    }
    const wire = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
    let o = 0;
    for (const f of frames) {
      wire.set(f, o);
      o += f.byteLength;
    }
    // The server may reset the socket before it has read everything.
    await abuser.write(wire).catch(() => {});
    // The server hangs up. Its GOAWAY may be lost to the TCP reset that closing a socket with
    // unread bytes sends; if it arrives, it says ENHANCE_YOUR_CALM.
    for (let i = 0; i < 100_000; i++) {
      const f = await abuser.readFrame().catch(() => undefined);
      if (!f) break;
      if (f.type === T.GOAWAY) {
        assert.equal(
          new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(4),
          ErrorCode.ENHANCE_YOUR_CALM,
        );
      }
    }
    const line = await logger.waitFor(/ended: .*too many stream resets/);
    assert.ok(line, `warnings: ${JSON.stringify(logger.lines)}`);
    // The other connection was not touched: its request is still answered.
    await bystander.request(1, requestFields());
    const h = await bystander.expectOn(T.HEADERS, 1);
    assert.equal(h.streamId, 1);
  } finally {
    abuser.close();
    bystander.close();
    await server.close();
  }
});

Deno.test("V2rayHttpServer stream reset() sends RST_STREAM CANCEL, never an empty END_STREAM, when cut before any downlink byte", async () => {
  const server = new V2rayHttpServer(listenTcp({ hostname: "127.0.0.1", port: 0 }), {
    tag: "h2c",
    path: "/",
    logger: Logger.silent(),
  });
  const peer = new H2ClientPeer(
    new ConnDuplex(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port })),
  );
  try {
    await peer.clientHandshake();
    await peer.request(1, requestFields());
    const accepted = await server.accept();
    // What the relay does when the target resets before answering: the client must see a cut,
    // not a complete empty response.
    abortively(accepted.duplex);
    let ended = false;
    let code: number | undefined;
    for (let i = 0; i < 100 && code === undefined; i++) {
      const f = await peer.readFrame(5000);
      if (!f) throw new Error("EOF before RST_STREAM");
      if (f.streamId !== 1) continue;
      if ((f.type === T.DATA || f.type === T.HEADERS) && f.flags & 1) ended = true;
      if (f.type === T.RST_STREAM) code = readU32(f.payload);
    }
    assert.equal(ended, false, "the response ended with END_STREAM");
    assert.equal(code, ErrorCode.CANCEL);
  } finally {
    peer.close();
    await server.close();
  }
});
