import assert from "node:assert/strict";
import { Reader } from "../../lib/config/reader.ts";
import { readFlow, readUserId } from "../../lib/config/vless_user.ts";

Deno.test("readUserId() maps a short string to Xray's UUIDv5 and names a missing id", () => {
  const r = new Reader({});
  assert.equal(readUserId(r, { id: "example" }, "u")?.id, "feb54431-301b-52bb-a6dd-e1e93e81bb9e");
  assert.equal(readUserId(r, {}, "u"), undefined);
  assert.deepEqual(r.problems, ["u.id: is required"]);
});

Deno.test("readFlow() accepts only the empty flow and refuses XTLS flows by name", () => {
  const r = new Reader({});
  assert.equal(readFlow(r, {}, "u"), "");
  assert.equal(readFlow(r, { flow: "xtls-rprx-vision" }, "u"), undefined);
  assert.deepEqual(r.problems, ['u.flow: flow "xtls-rprx-vision" (XTLS) is not supported by dray']);
});
