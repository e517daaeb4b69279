import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import {
  encodeUdpPacket,
  MAX_UDP_PACKET,
  UdpPacketDecoder,
  UdpPacketDecoderStream,
  UdpPacketEncoderStream,
} from "../../lib/vless/udp.ts";

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

Deno.test("encodeUdpPacket() prefixes a 2-byte big-endian length", () => {
  assertEquals(encodeUdpPacket(Uint8Array.of(7, 8, 9)), Uint8Array.of(0, 3, 7, 8, 9));
  const big = encodeUdpPacket(new Uint8Array(4000));
  assertEquals([big[0], big[1], big.byteLength], [0x0f, 0xa0, 4002]);
  assertEquals(
    encodeUdpPacket(new Uint8Array(MAX_UDP_PACKET)).subarray(0, 2),
    Uint8Array.of(255, 255),
  );
  throws(() => encodeUdpPacket(new Uint8Array(65536)), /65536 bytes does not fit/);
});

Deno.test("UdpPacketDecoder.push() splits coalesced packets and joins split ones at every cut", () => {
  const packets = [bytes(1, 1), bytes(4000, 2), bytes(0, 0), bytes(300, 3), bytes(65535, 4)];
  const wire = new Uint8Array(packets.reduce((n, p) => n + p.byteLength + 2, 0));
  let off = 0;
  for (const p of packets) {
    wire.set(encodeUdpPacket(p), off);
    off += p.byteLength + 2;
  }
  // Cut points around every packet boundary (and one within each length prefix).
  const cuts = [
    0,
    1,
    2,
    3,
    4,
    5,
    1000,
    4004,
    4005,
    4006,
    4007,
    4008,
    4309,
    4310,
    70000,
    wire.byteLength,
  ];
  for (const a of cuts) {
    for (const b of cuts) {
      if (b < a) continue;
      const d = new UdpPacketDecoder();
      const got = [
        ...d.push(wire.subarray(0, a)),
        ...d.push(wire.subarray(a, b)),
        ...d.push(wire.subarray(b)),
      ];
      d.finish();
      assertEquals(got.length, packets.length, `cuts ${a},${b}`);
      got.forEach((g, i) => assertEquals(g, packets[i], `packet ${i}, cuts ${a},${b}`));
    }
  }
});

Deno.test("UdpPacketDecoder.finish() reports a packet cut off by end of stream", () => {
  const d = new UdpPacketDecoder();
  assertEquals(d.push(Uint8Array.of(0, 5, 1, 2)), []);
  assertEquals(d.pending, 4);
  throws(() => d.finish(), /ended inside a packet: got 4 of 7 bytes/);
});

Deno.test("UdpPacketEncoderStream drops oversize datagrams through onReject and keeps going", async () => {
  const rejected: string[] = [];
  const enc = new UdpPacketEncoderStream({ onReject: (e) => rejected.push(e.message) });
  const src = ReadableStream.from([
    bytes(10, 1),
    new Uint8Array(70000),
    new Uint8Array(0),
    bytes(4000, 2),
  ]);
  const out = await collect(src.pipeThrough(enc).pipeThrough(new UdpPacketDecoderStream()));
  assertEquals(out, [bytes(10, 1), bytes(4000, 2)]);
  assertEquals(rejected.length, 1);
  assertEquals(/70000 bytes/.test(rejected[0]), true);
});

Deno.test("UdpPacketEncoderStream errors on an oversize datagram without onReject", async () => {
  const src = ReadableStream.from([new Uint8Array(65536)]);
  await rejects(collect(src.pipeThrough(new UdpPacketEncoderStream())), RangeError);
});

Deno.test("UdpPacketDecoderStream errors when the stream ends mid-packet", async () => {
  const src = ReadableStream.from([Uint8Array.of(0, 2, 1, 0, 0, 9, 1)]);
  await rejects(collect(src.pipeThrough(new UdpPacketDecoderStream())), /got 3 of 11 bytes/);
});
