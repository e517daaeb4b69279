import assert from "node:assert/strict";
import net from "node:net";
import { listenServer, toDenoError } from "../../lib/net/listen_server.ts";

Deno.test("listenServer() resolves with the port the system picked for port 0", async () => {
  const server = net.createServer((s) => s.end());
  try {
    const addr = await listenServer(server, { hostname: "127.0.0.1", port: 0 });
    assert.equal(addr.hostname, "127.0.0.1");
    assert.ok(addr.port > 0);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: addr.port });
    conn.close();
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("listenServer() rejects with AddrInUse for a taken port and leaves the server closed", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = net.createServer();
  await assert.rejects(
    listenServer(server, { hostname: "127.0.0.1", port: taken.addr.port }),
    Deno.errors.AddrInUse,
  );
  assert.equal(server.listening, false);
});

Deno.test("listenServer() hands later server errors to onError, and survives onError throwing", async () => {
  const server = net.createServer();
  const seen: string[] = [];
  try {
    await listenServer(server, {
      hostname: "127.0.0.1",
      port: 0,
      onError: (err) => {
        seen.push(err.message);
        throw new Error("logger broke");
      },
    });
    server.emit("error", new Error("EMFILE"));
    assert.deepEqual(seen, ["EMFILE"]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("toDenoError() maps node's bind codes to Deno's classes and keeps the cause", () => {
  const err = (code: string) => Object.assign(new Error(`listen ${code}`), { code });
  const inUse = toDenoError(err("EADDRINUSE"));
  assert.ok(inUse instanceof Deno.errors.AddrInUse);
  assert.equal((inUse.cause as Error).message, "listen EADDRINUSE");
  assert.ok(toDenoError(err("EADDRNOTAVAIL")) instanceof Deno.errors.AddrNotAvailable);
  assert.ok(toDenoError(err("EACCES")) instanceof Deno.errors.PermissionDenied);
  const other = err("EOTHER");
  assert.equal(toDenoError(other), other);
});
