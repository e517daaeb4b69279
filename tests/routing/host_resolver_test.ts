import assert from "node:assert/strict";
import { HostResolver, systemLookup } from "../../lib/routing/host_resolver.ts";
import { parseIp } from "../../lib/routing/ip_address.ts";

Deno.test("HostResolver.resolve() answers from hosts patterns before the system resolver", async () => {
  const asked: string[] = [];
  const r = new HostResolver({
    hosts: [
      { pattern: { type: "full", value: "a.test" }, address: "10.0.0.1" },
      { pattern: { type: "domain", value: "b.test" }, address: "fd00::2" },
      { pattern: { type: "full", value: "alias.test" }, address: "a.test" },
      { pattern: { type: "full", value: "out.test" }, address: "real.test" },
    ],
    lookup: (name) => {
      asked.push(name);
      return Promise.resolve(name === "real.test" ? ["192.0.2.9"] : []);
    },
  });
  assert.deepEqual(await r.resolve("A.test."), [parseIp("10.0.0.1")]);
  assert.deepEqual(await r.resolve("x.b.test"), [parseIp("fd00::2")]);
  assert.deepEqual(await r.resolve("alias.test"), [parseIp("10.0.0.1")]);
  assert.deepEqual(await r.resolve("out.test"), [parseIp("192.0.2.9")]);
  assert.deepEqual(asked, ["real.test"]);
});

Deno.test("HostResolver.resolve() caches answers for the TTL but not failures", async () => {
  let now = 0;
  let calls = 0;
  let fail = true;
  const r = new HostResolver({
    ttlMs: 1000,
    now: () => now,
    lookup: () => {
      calls++;
      return fail ? Promise.reject(new Error("ENOTFOUND")) : Promise.resolve(["192.0.2.1"]);
    },
  });
  assert.deepEqual(await r.resolve("x.test"), []);
  fail = false;
  assert.deepEqual(await r.resolve("x.test"), [parseIp("192.0.2.1")]);
  assert.deepEqual(await r.resolve("x.test"), [parseIp("192.0.2.1")]);
  assert.equal(calls, 2);
  now = 1001;
  await r.resolve("x.test");
  assert.equal(calls, 3);
});

Deno.test("systemLookup() honours /etc/hosts (getaddrinfo semantics)", async () => {
  const hosts = await Deno.readTextFile("/etc/hosts");
  // Any name mapped to a loopback address in this machine's /etc/hosts, e.g. localhost.
  const line = hosts.split("\n").find((l) => /^127\.0\.0\.1\s+\S+/.test(l));
  assert.ok(line, "/etc/hosts maps a name to 127.0.0.1");
  const name = line.split(/\s+/)[1];
  assert.ok((await systemLookup(name)).includes("127.0.0.1"));
});
