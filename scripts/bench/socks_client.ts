/**
 * A small SOCKS5 client (RFC 1928, no authentication) for driving the benchmark through a proxy's
 * SOCKS inbound: CONNECT to an IPv4 destination, and UDP ASSOCIATE. It does what an ordinary
 * client does — one round trip for the method, one for the request — so connection setup is
 * measured as users see it.
 */

const VERSION = 5;
const NO_AUTH = 0;
const CONNECT = 1;
const UDP_ASSOCIATE = 3;
const ATYP_IPV4 = 1;
const ATYP_DOMAIN = 3;
const ATYP_IPV6 = 4;

export interface Endpoint {
  hostname: string;
  port: number;
}

/** Reads exactly `n` bytes (never more, so nothing after them is consumed), or throws at EOF. */
export async function readExact(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  for (let have = 0; have < n;) {
    const got = await conn.read(buf.subarray(have));
    if (got === null) throw new Error(`EOF after ${have} of ${n} bytes`);
    have += got;
  }
  return buf;
}

export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

function ipv4Address(dest: Endpoint): Uint8Array {
  const parts = dest.hostname.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) {
    throw new TypeError(`Cannot use "${dest.hostname}": only IPv4 destinations are supported`);
  }
  return Uint8Array.of(ATYP_IPV4, ...parts, dest.port >> 8, dest.port & 0xff);
}

/** Sends a request and reads the reply; returns the BND.ADDR/BND.PORT it names. */
async function request(conn: Deno.Conn, command: number, dest: Endpoint): Promise<Endpoint> {
  await writeAll(conn, Uint8Array.of(VERSION, 1, NO_AUTH));
  const method = await readExact(conn, 2);
  if (method[0] !== VERSION || method[1] !== NO_AUTH) {
    throw new Error(`SOCKS5 proxy refused "no authentication" (reply ${method[0]} ${method[1]})`);
  }
  await writeAll(conn, Uint8Array.of(VERSION, command, 0, ...ipv4Address(dest)));
  const head = await readExact(conn, 4);
  if (head[1] !== 0) throw new Error(`SOCKS5 request failed with REP ${head[1]}`);
  let hostname: string;
  if (head[3] === ATYP_IPV4) hostname = [...await readExact(conn, 4)].join(".");
  else if (head[3] === ATYP_IPV6) {
    const b = await readExact(conn, 16);
    hostname = Array.from({ length: 8 }, (_, i) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16))
      .join(":");
  } else if (head[3] === ATYP_DOMAIN) {
    const len = (await readExact(conn, 1))[0];
    hostname = new TextDecoder().decode(await readExact(conn, len));
  } else throw new Error(`SOCKS5 reply has unknown ATYP ${head[3]}`);
  const p = await readExact(conn, 2);
  return { hostname, port: (p[0] << 8) | p[1] };
}

/** A TCP connection to `dest` through the SOCKS5 proxy at 127.0.0.1:`proxyPort`. */
export async function socksConnect(proxyPort: number, dest: Endpoint): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  conn.setNoDelay(true);
  try {
    await request(conn, CONNECT, dest);
  } catch (err) {
    conn.close();
    throw err;
  }
  return conn;
}

/** Datagrams to one destination: sent as given, received one per call. */
export interface UdpChannel {
  send(payload: Uint8Array): Promise<void>;
  /** The next datagram's payload. */
  receive(): Promise<Uint8Array>;
  close(): void;
}

/** A plain UDP socket talking to `dest`. */
export function directUdp(dest: Endpoint): UdpChannel {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to: Deno.NetAddr = { transport: "udp", ...dest };
  return {
    send: async (payload) => void await socket.send(payload, to),
    receive: async () => (await socket.receive())[0],
    close: () => socket.close(),
  };
}

/**
 * UDP ASSOCIATE: the association lives as long as the control connection (RFC 1928 §7), and each
 * datagram carries the header RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT.
 */
export async function socksUdp(proxyPort: number, dest: Endpoint): Promise<UdpChannel> {
  const control = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  let relay: Endpoint;
  try {
    relay = await request(control, UDP_ASSOCIATE, { hostname: "0.0.0.0", port: 0 });
  } catch (err) {
    control.close();
    throw err;
  }
  // A wildcard BND.ADDR means "the address you reached me at".
  if (relay.hostname === "0.0.0.0") relay.hostname = "127.0.0.1";
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const header = Uint8Array.of(0, 0, 0, ...ipv4Address(dest));
  const to: Deno.NetAddr = { transport: "udp", ...relay };
  return {
    send: async (payload) => {
      const datagram = new Uint8Array(header.byteLength + payload.byteLength);
      datagram.set(header);
      datagram.set(payload, header.byteLength);
      await socket.send(datagram, to);
    },
    receive: async () => {
      for (;;) {
        const [d] = await socket.receive();
        if (d.byteLength < 4 || d[2] !== 0) continue; // fragments are not used by anyone here
        const addrLen = d[3] === ATYP_IPV4 ? 4 : d[3] === ATYP_IPV6 ? 16 : 1 + d[4];
        return d.subarray(4 + addrLen + 2);
      }
    },
    close: () => {
      socket.close();
      control.close();
    },
  };
}
