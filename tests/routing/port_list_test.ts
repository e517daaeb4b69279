import assert from "node:assert/strict";
import { PortList } from "../../lib/routing/port_list.ts";

Deno.test("PortList.parse() accepts single ports, ranges and comma lists", () => {
  const list = PortList.parse("53,443,1000-2000");
  for (const p of [53, 443, 1000, 1500, 2000]) assert.equal(list.has(p), true, `${p}`);
  for (const p of [52, 54, 999, 2001, 0]) assert.equal(list.has(p), false, `${p}`);
  assert.equal(list.toString(), "53,443,1000-2000");
  assert.equal(PortList.parse(53).has(53), true);
  assert.equal(PortList.parse(" 80 , 8080").has(8080), true);
});

Deno.test("PortList.has() matches nothing for a reversed range, as v2ray 4.34", () => {
  const list = PortList.parse("3000-2500");
  assert.equal(list.has(2500), false);
  assert.equal(list.has(2800), false);
  assert.equal(list.has(3000), false);
});

Deno.test("PortList.parse() refuses arrays, bad numbers and empty lists", () => {
  assert.throws(() => PortList.parse([53, 443]), { name: "TypeError", message: /an array/ });
  assert.throws(() => PortList.parse("70000"), { name: "RangeError", message: /"70000"/ });
  assert.throws(() => PortList.parse("1000 - 2000"), RangeError);
  assert.throws(() => PortList.parse("http"), { name: "RangeError", message: /"http"/ });
  assert.throws(() => PortList.parse(""), { name: "RangeError", message: /empty/ });
  assert.throws(() => PortList.parse(65536), RangeError);
});
