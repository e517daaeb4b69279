/**
 * A minimal SOCKS5 client for end-to-end tests (no auth, CONNECT or UDP ASSOCIATE), and SOCKS4
 * request bytes.
 */
import { ConnDuplex } from "../../lib/net/conn_duplex.ts";
import { encodeAddress } from "../../lib/socks/socks5.ts";
import { concat, readN } from "./fake_outbound.ts";

export interface SocksConn {
  duplex: ConnDuplex;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** The reply's BND.ADDR port (for UDP ASSOCIATE: where to send datagrams). */
  bndPort: number;
  carry: { buf: Uint8Array };
}

/** Connects to a SOCKS5 proxy and sends greeting + request in one write (pipelined). */
export async function socksConnect(
  proxyPort: number,
  command: number,
  host: string,
  port: number,
): Promise<SocksConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  const duplex = new ConnDuplex(conn);
  const reader = duplex.readable.getReader();
  const writer = duplex.writable.getWriter();
  await writer.write(concat([Uint8Array.of(5, 1, 0, 5, command, 0), encodeAddress(host, port)]));
  const carry = { buf: new Uint8Array(0) };
  const method = await readN(reader, 2, carry);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`method reply ${method}`);
  const head = await readN(reader, 4, carry);
  if (head[1] !== 0) {
    duplex.close();
    throw new Error(`SOCKS REP ${head[1]}`);
  }
  const addrLen = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await readN(reader, 1, carry))[0];
  const rest = await readN(reader, addrLen + 2, carry);
  const bndPort = (rest[addrLen] << 8) | rest[addrLen + 1];
  return { duplex, reader, writer, bndPort, carry };
}

/** Everything the proxy sends after its reply until the stream ends (at most 1000 reads). */
export async function readToEnd(c: SocksConn): Promise<Uint8Array> {
  const parts = [c.carry.buf];
  for (let i = 0; i < 1000; i++) {
    const { value, done } = await c.reader.read();
    if (done) break;
    parts.push(value);
  }
  return concat(parts);
}

/** A SOCKS4(a) request: VN CD DSTPORT DSTIP USERID NUL [HOST NUL]. */
export function encodeSocks4Request(
  opts: { cmd?: number; ip: number[]; port: number; user?: string; host?: string },
) {
  const enc = new TextEncoder();
  const user = enc.encode(opts.user ?? "");
  const host = opts.host === undefined ? [] : [...enc.encode(opts.host), 0];
  return Uint8Array.of(
    4,
    opts.cmd ?? 1,
    opts.port >> 8,
    opts.port & 0xff,
    ...opts.ip,
    ...user,
    0,
    ...host,
  );
}
