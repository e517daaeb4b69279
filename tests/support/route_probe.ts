/**
 * Observes which outbound a proxy routed a connection to, without any network: every outbound
 * tag T is a freedom outbound redirected to a local "tag server" that writes `T\n` and closes;
 * a blackhole shows as a connection closed with no bytes ("block").
 *
 * The probe speaks SOCKS5 through node:net so it can pick its local port (for sourcePort rules),
 * authenticates when given a user, sends an optional first payload (for sniffing), and reads
 * until the proxy closes, bounded in time.
 */
import net from "node:net";
import { Buffer } from "node:buffer";

export interface TagServers {
  ports: Record<string, number>;
  close(): Promise<void>;
}

export function startTagServers(tags: string[]): TagServers {
  const listeners: Deno.TcpListener[] = [];
  const ports: Record<string, number> = {};
  const loops: Promise<void>[] = [];
  for (const tag of tags) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    listeners.push(l);
    ports[tag] = l.addr.port;
    loops.push(
      (async () => {
        for await (const conn of l) {
          try {
            await conn.write(new TextEncoder().encode(`${tag}\n`));
          } catch {
            // The proxy gave up on it: the probe reports what it saw.
          }
          conn.close();
        }
      })().catch(() => {}),
    );
  }
  return {
    ports,
    async close() {
      for (const l of listeners) l.close();
      await Promise.all(loops);
    },
  };
}

export interface Probe {
  host: string;
  port: number;
  /** Sent right after the SOCKS reply, for sniffing. */
  payload?: Uint8Array;
  /** SOCKS5 username (password "pw"). */
  user?: string;
  /** Local port to connect from. */
  localPort?: number;
}

const PROBE_TIMEOUT_MS = 5_000;

/** The tag that answered, "block" for a silent close, or "error: …". */
export function probe(socksPort: number, p: Probe): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port: socksPort, localPort: p.localPort });
    let buf = Buffer.alloc(0);
    let stage: "method" | "auth" | "reply" | "data" = "method";
    let settled = false;
    const done = (v: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(
      () => done(`error: no answer in ${PROBE_TIMEOUT_MS} ms`),
      PROBE_TIMEOUT_MS,
    );
    socket.on("connect", () => socket.write(Buffer.from([5, 1, p.user ? 2 : 0])));
    socket.on(
      "error",
      (e) => done(stage === "data" && buf.length === 0 ? "block" : `error: ${e.message}`),
    );
    socket.on("end", () => {
      if (stage !== "data") return done(`error: closed during ${stage}`);
      const text = buf.toString("latin1");
      done(text === "" ? "block" : text.replace(/\n$/, ""));
    });
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (stage === "method") {
          if (buf.length < 2) return;
          buf = buf.subarray(2);
          if (p.user) {
            const u = Buffer.from(p.user);
            socket.write(
              Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([2]), Buffer.from("pw")]),
            );
            stage = "auth";
          } else {
            socket.write(request(p.host, p.port));
            stage = "reply";
          }
        } else if (stage === "auth") {
          if (buf.length < 2) return;
          if (buf[1] !== 0) return done("error: auth refused");
          buf = buf.subarray(2);
          socket.write(request(p.host, p.port));
          stage = "reply";
        } else if (stage === "reply") {
          if (buf.length < 5) return;
          if (buf[1] !== 0) return done(`error: SOCKS REP ${buf[1]}`);
          const len = buf[3] === 1 ? 4 : buf[3] === 4 ? 16 : 1 + buf[4];
          if (buf.length < 4 + len + 2) return;
          buf = buf.subarray(4 + len + 2);
          stage = "data";
          if (p.payload) socket.write(p.payload);
        } else {
          // A tag line is the whole answer; no need to wait for the proxy's close timers.
          const nl = buf.indexOf(10);
          if (nl >= 0) return done(buf.subarray(0, nl).toString("latin1"));
          return;
        }
      }
    });
  });
}

function request(host: string, port: number): Buffer {
  let addr: Buffer;
  if (net.isIPv4(host)) addr = Buffer.from([1, ...host.split(".").map(Number)]);
  else if (net.isIPv6(host)) {
    const full = new URL(`http://[${host}]`).hostname.slice(1, -1);
    const groups = expand(full);
    addr = Buffer.from([4, ...groups.flatMap((g) => [g >> 8, g & 0xff])]);
  } else addr = Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)]);
  return Buffer.concat([Buffer.from([5, 1, 0]), addr, Buffer.from([port >> 8, port & 0xff])]);
}

function expand(v6: string): number[] {
  const [head, tail] = v6.split("::");
  const parse = (s: string | undefined) => (s ? s.split(":").map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  if (tail === undefined) return h;
  return [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}
