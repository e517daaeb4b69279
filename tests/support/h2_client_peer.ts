/**
 * A scripted HTTP/2 client peer for tests of the server role: the test drives it frame by frame.
 *
 * Frames are built by the test-support writer of h2_peer.ts (written from RFC 9113 §4.1, not
 * lib/h2/frame.ts) so the server's codec is not tested against itself; header blocks sent are
 * HPACK literals without indexing (RFC 7541 §6.2.2), no Huffman. Header blocks received are
 * decoded with lib/h2/hpack.ts.
 */
import { duplexPair } from "../../lib/net/duplex_pair.ts";
import type { Duplex } from "../../lib/net/duplex.ts";
import { H2Peer, literalBlock, type PeerFrame, readU32, T, u32 } from "./h2_peer.ts";

export { literalBlock, type PeerFrame, readU32, T, u32 };

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** SETTINGS ids (RFC 9113 §6.5.2), spelled out here rather than imported from lib/. */
export const S = {
  HEADER_TABLE_SIZE: 1,
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
  MAX_HEADER_LIST_SIZE: 6,
} as const;

/** A GET-like request's header list, with `extra` pseudo or regular fields appended. */
export function requestFields(
  path = "/",
  extra: Array<[string, string]> = [],
  method = "POST",
): Array<[string, string]> {
  return [
    [":method", method],
    [":scheme", "https"],
    [":authority", "example.com"],
    [":path", path],
    ...extra,
  ];
}

export function settingsPayload(settings: Array<[number, number]>): Uint8Array {
  const out = new Uint8Array(settings.length * 6);
  settings.forEach(([id, value], i) => {
    out[i * 6] = id >>> 8;
    out[i * 6 + 1] = id & 0xff;
    out.set(u32(value), i * 6 + 2);
  });
  return out;
}

export class H2ClientPeer extends H2Peer {
  /** The server's SETTINGS, as id → value. */
  serverSettings = new Map<number, number>();
  /** The server's connection WINDOW_UPDATE right after its SETTINGS, if it sent one. */
  serverConnectionWindowUpdate = 0;

  constructor(duplex: Duplex) {
    super(duplex);
  }

  /** An in-memory pair: the server's end and a client peer on the other. */
  static pairWithServer(highWaterMark?: number): { server: Duplex; peer: H2ClientPeer } {
    const [server, client] = duplexPair(highWaterMark);
    return { server, peer: new H2ClientPeer(client) };
  }

  /** Sends the client preface: the magic octets and SETTINGS, in one write. */
  sendPreface(settings: Array<[number, number]> = []): Promise<void> {
    const f = this.frame(T.SETTINGS, 0, 0, settingsPayload(settings));
    const out = new Uint8Array(PREFACE.byteLength + f.byteLength);
    out.set(PREFACE);
    out.set(f, PREFACE.byteLength);
    return this.write(out);
  }

  /**
   * Sends the preface, reads the server's SETTINGS (and the WINDOW_UPDATE after it), ACKs them
   * and waits for the ACK of ours.
   */
  async clientHandshake(settings: Array<[number, number]> = []): Promise<void> {
    await this.sendPreface(settings);
    const f = await this.readFrame();
    if (!f || f.type !== T.SETTINGS || f.flags !== 0) {
      throw new Error(`peer: server did not send SETTINGS first (got ${f?.type})`);
    }
    for (let o = 0; o + 6 <= f.payload.byteLength; o += 6) {
      this.serverSettings.set((f.payload[o] << 8) | f.payload[o + 1], readU32(f.payload, o + 2));
    }
    await this.send(T.SETTINGS, 1, 0);
    for (let i = 0; i < 4; i++) {
      const next = await this.readFrame();
      if (!next) throw new Error("peer: EOF during the handshake");
      if (next.type === T.SETTINGS && next.flags & 1) return;
      if (next.type === T.WINDOW_UPDATE && next.streamId === 0) {
        this.serverConnectionWindowUpdate = readU32(next.payload) & 0x7fffffff;
        continue;
      }
      throw new Error(`peer: unexpected frame type ${next.type} during the handshake`);
    }
    throw new Error("peer: no SETTINGS ACK from the server");
  }

  /** HEADERS with END_HEADERS carrying `fields` as literals. */
  request(
    streamId: number,
    fields: Array<[string, string]>,
    opts: { endStream?: boolean } = {},
  ): Promise<void> {
    return this.headers(streamId, fields, opts);
  }

  /**
   * The next frame of `type` (on `streamId` when given), skipping WINDOW_UPDATEs and SETTINGS
   * ACKs unless asked for. Throws on EOF or any other frame.
   */
  async expectOn(type: number, streamId?: number, timeoutMs = 5000): Promise<PeerFrame> {
    for (let i = 0; i < 10_000; i++) {
      const f = await this.readFrame(timeoutMs);
      if (!f) throw new Error(`peer: EOF while expecting frame type ${type}`);
      if (f.type === type && (streamId === undefined || f.streamId === streamId)) return f;
      if (f.type === T.WINDOW_UPDATE || (f.type === T.SETTINGS && f.flags & 1)) continue;
      throw new Error(
        `peer: expected frame type ${type}${
          streamId === undefined ? "" : ` on stream ${streamId}`
        }, got type ${f.type} on stream ${f.streamId}`,
      );
    }
    throw new Error("peer: too many frames skipped");
  }

  /** Reads frames until GOAWAY; returns its last-stream-id, code and debug text. */
  async expectGoAway(
    timeoutMs = 5000,
  ): Promise<{ lastStreamId: number; code: number; debug: string }> {
    for (let i = 0; i < 10_000; i++) {
      const f = await this.readFrame(timeoutMs);
      if (!f) throw new Error("peer: EOF while expecting GOAWAY");
      if (f.type !== T.GOAWAY) continue;
      return {
        lastStreamId: readU32(f.payload) & 0x7fffffff,
        code: readU32(f.payload, 4),
        debug: new TextDecoder().decode(f.payload.subarray(8)),
      };
    }
    throw new Error("peer: too many frames before GOAWAY");
  }

  /** Reads frames until RST_STREAM on `streamId`; returns its code. */
  async expectReset(streamId: number, timeoutMs = 5000): Promise<number> {
    for (let i = 0; i < 10_000; i++) {
      const f = await this.readFrame(timeoutMs);
      if (!f) throw new Error(`peer: EOF while expecting RST_STREAM on stream ${streamId}`);
      if (f.type === T.GOAWAY) {
        throw new Error(`peer: GOAWAY (code ${readU32(f.payload, 4)}) instead of RST_STREAM`);
      }
      if (f.type === T.RST_STREAM && f.streamId === streamId) return readU32(f.payload);
    }
    throw new Error("peer: too many frames before RST_STREAM");
  }
}
