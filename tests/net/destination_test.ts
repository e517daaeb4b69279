import assert from "node:assert/strict";
import { forwardedSource } from "../../lib/net/destination.ts";

Deno.test("forwardedSource() takes the first X-Forwarded-For entry when it is an IP, else the socket's address", () => {
  const remote = { host: "10.0.0.1", port: 4000 };
  assert.deepEqual(forwardedSource("203.0.113.7, 10.0.0.2", remote), {
    host: "203.0.113.7",
    port: 0,
  });
  assert.deepEqual(forwardedSource(" 2001:db8::1 ", remote), { host: "2001:db8::1", port: 0 });
  assert.deepEqual(forwardedSource("proxy.example", remote), remote);
  assert.deepEqual(forwardedSource("", remote), remote);
  assert.deepEqual(forwardedSource(undefined, remote), remote);
});
