import assert from "node:assert/strict";
import {
  readSubscriptionSource,
  SubscriptionFetchError,
} from "../../lib/config/subscription_source.ts";
import { errorMessage } from "../../lib/error_message.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const BODY = "vless://b831381d-6324-4d53-ad4f-8cda48b30811@a.test:443?security=tls#A\n";

/** A local HTTP server answering with `handler`; closed by the caller. */
function serve(handler: (req: Request) => Response | Promise<Response>) {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("readSubscriptionSource() fetches a URL with User-Agent dray/VERSION", async () => {
  let agent = "";
  await using server = serve((req) => {
    agent = req.headers.get("user-agent") ?? "";
    return new Response(BODY);
  });
  const body = await readSubscriptionSource(`${server.url}/sub/s3cret`, { version: "9.8.7" });
  assert.equal(dec.decode(body), BODY);
  assert.equal(agent, "dray/9.8.7");
});

Deno.test("readSubscriptionSource() fails on a non-2xx status without showing the URL's path", async () => {
  await using server = serve(() => new Response("no", { status: 404 }));
  await assert.rejects(
    readSubscriptionSource(`${server.url}/sub/s3cret`, { version: "1" }),
    (e) => {
      assert.ok(e instanceof SubscriptionFetchError);
      assert.equal(e.message, `Cannot fetch subscription ${server.url}/…: HTTP status 404`);
      return true;
    },
  );
});

Deno.test("readSubscriptionSource() says why a fetch failed without the URL's token, in the message and its causes", async () => {
  // A port nobody listens on: the connection is refused.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const url = `http://127.0.0.1:${port}/sub/S3CRETPATH?token=S3CRETQUERY`;
  await assert.rejects(readSubscriptionSource(url, { version: "1", timeoutMs: 5000 }), (e) => {
    assert.ok(e instanceof SubscriptionFetchError);
    assert.match(
      e.message,
      new RegExp(`^Cannot fetch subscription http://127\\.0\\.0\\.1:${port}/…: `),
    );
    assert.match(e.message, /refused/i);
    assert.doesNotMatch(errorMessage(e), /S3CRET/);
    return true;
  });
});

Deno.test("readSubscriptionSource() gives up on a URL that never answers within the timeout", async () => {
  // A listener that accepts and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/sub`;
    await assert.rejects(readSubscriptionSource(url, { version: "1", timeoutMs: 300 }), (e) => {
      assert.ok(e instanceof SubscriptionFetchError);
      assert.match(e.message, /^Cannot fetch subscription http:\/\/127\.0\.0\.1:\d+\/…: /);
      assert.match(e.message, /no complete answer within 300 ms$/);
      return true;
    });
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});

Deno.test("readSubscriptionSource() stops reading past the limit: URL (streamed or announced), stdin, file", async () => {
  const big = "A".repeat(2000);
  await using server = serve((req) =>
    new URL(req.url).pathname === "/announced"
      ? new Response(big)
      : new Response(ReadableStream.from([enc.encode(big.slice(0, 1000)), enc.encode(big)]))
  );
  await assert.rejects(
    readSubscriptionSource(`${server.url}/announced`, { version: "1", maxBytes: 1500 }),
    {
      name: "RangeError",
      message: /: 2000 bytes \(content-length\), over the limit of 1500 bytes$/,
    },
  );
  await assert.rejects(
    readSubscriptionSource(`${server.url}/streamed`, { version: "1", maxBytes: 1500 }),
    { name: "RangeError", message: /: more than 1500 bytes, over the limit of 1500 bytes$/ },
  );
  let cancelled = false;
  const stdin = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(enc.encode(big));
    },
    cancel() {
      cancelled = true;
    },
  });
  await assert.rejects(readSubscriptionSource("-", { version: "1", maxBytes: 1500, stdin }), {
    name: "RangeError",
    message: "Cannot use subscription stdin: more than 1500 bytes, over the limit of 1500 bytes",
  });
  assert.ok(cancelled, "the endless stdin was cancelled");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/big.txt`, big);
    await assert.rejects(
      readSubscriptionSource(`${dir}/big.txt`, { version: "1", maxBytes: 1500 }),
      { name: "RangeError" },
    );
    await Deno.writeTextFile(`${dir}/ok.txt`, BODY);
    assert.equal(dec.decode(await readSubscriptionSource(`${dir}/ok.txt`, { version: "1" })), BODY);
    await assert.rejects(readSubscriptionSource(`${dir}/missing.txt`, { version: "1" }), {
      message: new RegExp(`^Cannot read subscription file "${dir}/missing\\.txt": `),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSubscriptionSource() reads stdin to its end", async () => {
  const stdin = ReadableStream.from([enc.encode(BODY.slice(0, 10)), enc.encode(BODY.slice(10))]);
  assert.equal(dec.decode(await readSubscriptionSource("-", { version: "1", stdin })), BODY);
});
