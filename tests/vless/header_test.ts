import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  encodeAddons,
  encodeRequestHeader,
  encodeResponseHeader,
  parseAddons,
  parseRequestHeader,
  parseResponseHeader,
  ResponseHeaderStripper,
} from "../../lib/vless/header.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/[\s-]/g, "");
  return Uint8Array.from(clean.match(/../g)!.map((h) => parseInt(h, 16)));
}

const ID_HEX = "b831381d63244d53ad4f8cda48b30811";
const ID = hex(ID_HEX);

Deno.test("encodeRequestHeader() writes TCP/IPv4 with port before address and type 1", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "127.0.0.1", port: 443 },
  });
  assertEquals(got, hex(`00 ${ID_HEX} 00 01 01bb 01 7f000001`));
  const edges = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "255.0.10.199", port: 65535 },
    flow: "x",
  });
  assertEquals(edges, hex(`00 ${ID_HEX} 03 0a0178 01 ffff 01 ff000ac7`));
});

Deno.test("encodeRequestHeader() writes TCP/domain with type 2 and a length byte", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "example.com", port: 80 },
  });
  assertEquals(got, hex(`00 ${ID_HEX} 00 01 0050 02 0b 6578616d706c652e636f6d`));
});

Deno.test("encodeRequestHeader() writes TCP/IPv6 with type 3", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "2001:db8::1", port: 8080 },
  });
  assertEquals(got, hex(`00 ${ID_HEX} 00 01 1f90 03 20010db8000000000000000000000001`));
});

Deno.test("encodeRequestHeader() writes UDP with command 2", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "udp",
    dest: { network: "udp", host: "8.8.8.8", port: 53 },
  });
  assertEquals(got, hex(`00 ${ID_HEX} 00 02 0035 01 08080808`));
});

Deno.test("encodeRequestHeader() writes Mux as command 3 with no address", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "mux",
    dest: { network: "tcp", host: "v1.mux.cool", port: 0 },
  });
  assertEquals(got, hex(`00 ${ID_HEX} 00 03`));
});

Deno.test("encodeRequestHeader() puts a flow into the protobuf addons", () => {
  const got = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "1.2.3.4", port: 443 },
    flow: "xtls-rprx-vision",
  });
  const flow = "78746c73 2d 72707278 2d 766973696f6e"; // "xtls-rprx-vision"
  assertEquals(got, hex(`00 ${ID_HEX} 12 0a10 ${flow} 01 01bb 01 01020304`));
});

Deno.test("encodeRequestHeader() rejects a domain over 255 bytes locally", () => {
  assertThrows(
    () =>
      encodeRequestHeader({
        userId: ID,
        command: "tcp",
        dest: { network: "tcp", host: "a".repeat(256), port: 80 },
      }),
    (err: Error) => err instanceof RangeError && /256 bytes, at most 255/.test(err.message),
  );
  // 255 still fits.
  const ok = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "a".repeat(255), port: 80 },
  });
  assertEquals(ok.byteLength, 1 + 16 + 1 + 1 + 2 + 1 + 1 + 255);
});

Deno.test("encodeRequestHeader() rejects a user id that is not 16 bytes", () => {
  assertThrows(
    () =>
      encodeRequestHeader({
        userId: new Uint8Array(15),
        command: "tcp",
        dest: { network: "tcp", host: "1.1.1.1", port: 1 },
      }),
    RangeError,
  );
});

Deno.test("parseRequestHeader() round-trips every command and address type", () => {
  const cases = [
    { command: "tcp", dest: { network: "tcp", host: "127.0.0.1", port: 443 } },
    { command: "tcp", dest: { network: "tcp", host: "example.com", port: 80 } },
    { command: "tcp", dest: { network: "tcp", host: "2001:db8::1", port: 8080 } },
    { command: "udp", dest: { network: "udp", host: "8.8.8.8", port: 53 } },
    { command: "mux", dest: { network: "tcp", host: "v1.mux.cool", port: 0 } },
  ] as const;
  for (const c of cases) {
    for (const flow of ["", "xtls-rprx-direct"]) {
      const bytes = encodeRequestHeader({ userId: ID, command: c.command, dest: c.dest, flow });
      // Embedded at an offset with trailing payload, as a server sees it.
      const framed = new Uint8Array(3 + bytes.byteLength + 4);
      framed.set(bytes, 3);
      const parsed = parseRequestHeader(framed, 3);
      assertEquals(parsed?.consumed, bytes.byteLength);
      assertEquals(parsed?.header.command, c.command);
      assertEquals(parsed?.header.dest, c.dest);
      assertEquals(parsed?.header.userId, ID);
      assertEquals(parsed?.header.addons.flow, flow);
    }
  }
});

Deno.test("parseRequestHeader() returns null for every proper prefix", () => {
  const bytes = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "example.com", port: 80 },
    flow: "xtls-rprx-origin",
  });
  for (let n = 0; n < bytes.byteLength; n++) {
    assertEquals(parseRequestHeader(bytes.subarray(0, n), 0), null, `prefix of ${n} bytes`);
  }
  assertEquals(parseRequestHeader(bytes, 0)?.consumed, bytes.byteLength);
});

Deno.test("parseRequestHeader() rejects bad version, command and address type", () => {
  const good = encodeRequestHeader({
    userId: ID,
    command: "tcp",
    dest: { network: "tcp", host: "127.0.0.1", port: 443 },
  });
  const badVersion = good.slice();
  badVersion[0] = 1;
  assertThrows(() => parseRequestHeader(badVersion), /unsupported version 1 at offset 0/);
  const badCommand = good.slice();
  badCommand[18] = 9;
  assertThrows(() => parseRequestHeader(badCommand), /unknown command 9 at offset 18/);
  const badType = good.slice();
  badType[21] = 4; // SOCKS5's IPv6 code is not a VLESS code
  assertThrows(() => parseRequestHeader(badType), /unknown address type 4 at offset 21/);
});

Deno.test("parseAddons() skips unknown fields and reads the seed", () => {
  const bytes = hex("0a0378797a 1202abcd 1801 2d01020304");
  const addons = parseAddons(bytes);
  assertEquals(addons.flow, "xyz");
  assertEquals(addons.seed, hex("abcd"));
  assertEquals(encodeAddons({ flow: "" }).byteLength, 0);
  assertThrows(() => parseAddons(hex("0a05 7879")), /wants 5 bytes at offset 2, 2 left/);
});

Deno.test("encodeResponseHeader() is version then empty addons", () => {
  assertEquals(encodeResponseHeader(), hex("0000"));
  const parsed = parseResponseHeader(hex("00 04 0a027879 ff"), 0);
  assertEquals(parsed?.consumed, 6);
  assertEquals(parsed?.header.addons.flow, "xy");
  assertEquals(parseResponseHeader(hex("00"), 0), null);
  assertThrows(
    () => parseResponseHeader(hex("05 00")),
    /unexpected response version: want 0, got 5/,
  );
});

Deno.test("ResponseHeaderStripper.push() strips a header split across many chunks", () => {
  const payload = hex("deadbeef");
  const wire = new Uint8Array([...hex("00 03 0a0161"), ...payload]);
  // Every way of cutting the first 7 bytes into single-byte chunks then the rest.
  for (let cut = 0; cut <= wire.byteLength; cut++) {
    const s = new ResponseHeaderStripper();
    const out: number[] = [];
    for (let i = 0; i < cut; i++) {
      out.push(...s.push(wire.subarray(i, i + 1)));
      assertEquals(s.done, i >= 4, `done after byte ${i}`);
    }
    out.push(...s.push(wire.subarray(cut)));
    assertEquals(s.done, true);
    s.finish();
    assertEquals(Uint8Array.from(out), payload, `cut at ${cut}`);
    assertEquals(s.header?.addons.flow, "a");
  }
});

Deno.test("ResponseHeaderStripper.finish() explains a missing or truncated header", () => {
  const none = new ResponseHeaderStripper();
  assertThrows(
    () => none.finish(),
    /closed the connection before sending the VLESS response header/,
  );
  const partial = new ResponseHeaderStripper();
  partial.push(hex("00 05 0a"));
  assertThrows(() => partial.finish(), /VLESS response header truncated: got 3 of 7 bytes/);
  const wrong = new ResponseHeaderStripper();
  assertThrows(() => wrong.push(hex("01 00")), /unexpected response version: want 0, got 1/);
});

Deno.test("ResponseHeaderStripper.push() passes payload chunks through without copying", () => {
  const s = new ResponseHeaderStripper();
  s.push(hex("0000"));
  const chunk = new Uint8Array(1024);
  assertEquals(s.push(chunk) === chunk, true);
});
