/**
 * Builds TLS 1.2-shaped ClientHello records for sniffing tests: enough structure for a sniffer
 * (and for v2ray 4.34's), not a handshake anyone could complete.
 */
export interface ClientHelloOptions {
  /** host_name in the server_name extension; absent = no SNI extension. */
  sni?: string;
  /** Pad with an extension so the whole record (with its 5-byte header) is this long. */
  recordSize?: number;
}

const u16 = (n: number) => [n >> 8, n & 0xff];

export function clientHello(options: ClientHelloOptions = {}): Uint8Array {
  const extensions: number[] = [];
  if (options.sni !== undefined) {
    const name = [...new TextEncoder().encode(options.sni)];
    const list = [0, ...u16(name.length), ...name];
    extensions.push(...u16(0), ...u16(list.length + 2), ...u16(list.length), ...list);
  }
  // supported_versions (TLS 1.3, 1.2), so the hello looks like a modern one.
  extensions.push(...u16(43), ...u16(5), 4, 3, 4, 3, 3);
  const body = (padding: number[]) => [
    3,
    3, // legacy_version
    ...new Array(32).fill(7), // random
    32,
    ...new Array(32).fill(9), // session id
    ...u16(4),
    0x13,
    0x01,
    0x13,
    0x02, // cipher suites
    1,
    0, // compression: null
    ...u16(extensions.length + padding.length),
    ...extensions,
    ...padding,
  ];
  let padding: number[] = [];
  if (options.recordSize !== undefined) {
    const bare = 5 + 4 + body([]).length;
    const extra = options.recordSize - bare - 4;
    if (extra < 0) throw new RangeError(`recordSize ${options.recordSize} below ${bare + 4}`);
    padding = [...u16(21), ...u16(extra), ...new Array(extra).fill(0)];
  }
  const hello = body(padding);
  const handshake = [1, 0, ...u16(hello.length), ...hello];
  return Uint8Array.from([0x16, 3, 1, ...u16(handshake.length), ...handshake]);
}
