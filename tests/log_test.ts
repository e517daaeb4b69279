import assert from "node:assert/strict";
import { formatAccess } from "../lib/log.ts";

const base = {
  inbound: "socks-in",
  source: "127.0.0.1:5000",
  destination: "tcp:www.example.com:443",
  outbound: "proxy",
  up: 10,
  down: 20,
  ms: 7,
};

/** How a script reads the line: everything up to the first "]" is the rule. */
const LINE = /^(\S+) (\S+) -> (\S+) via (\S+) \[([^\]]*)\] (.*) up=(\d+) down=(\d+) (\d+)ms$/;

Deno.test("formatAccess() writes the outbound and the rule in brackets, parseable by one regexp", () => {
  const lines = [
    { ...base, rule: "rule 3: domain:example.com", result: "ok" },
    { ...base, rule: "default", result: "connection refused: [::1]:80" },
    { ...base, outbound: "-", rule: "-", result: "no route" },
    { ...base, rule: "rule 1: regexp:^a[0-9]+$ +1", result: "ok" },
  ].map(formatAccess);
  const parsed = lines.map((l) => LINE.exec(l)?.slice(1));
  assert.deepEqual(parsed, [
    [
      "socks-in",
      "127.0.0.1:5000",
      "tcp:www.example.com:443",
      "proxy",
      "rule 3: domain:example.com",
      "ok",
      "10",
      "20",
      "7",
    ],
    [
      "socks-in",
      "127.0.0.1:5000",
      "tcp:www.example.com:443",
      "proxy",
      "default",
      "connection refused: [::1]:80",
      "10",
      "20",
      "7",
    ],
    [
      "socks-in",
      "127.0.0.1:5000",
      "tcp:www.example.com:443",
      "-",
      "-",
      "no route",
      "10",
      "20",
      "7",
    ],
    // Brackets inside a rule would end the field early: they show as parentheses.
    [
      "socks-in",
      "127.0.0.1:5000",
      "tcp:www.example.com:443",
      "proxy",
      "rule 1: regexp:^a(0-9)+$ +1",
      "ok",
      "10",
      "20",
      "7",
    ],
  ]);
});
