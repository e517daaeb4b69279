/**
 * Copies an HTTP/1.1 body from a reader to a writer as it is framed (RFC 9112 §6): chunked bodies
 * are passed through verbatim while being parsed, so their end is known.
 */
import type { ByteReader } from "../net/byte_reader.ts";
import type { Framing } from "./framing.ts";
import { HttpError } from "./message.ts";

/** A chunk-size line or trailer line longer than this is malformed. */
const MAX_LINE_BYTES = 8 * 1024;

const latin1 = new TextDecoder("latin1");

/** One line including its LF, at most MAX_LINE_BYTES. */
async function readLine(reader: ByteReader): Promise<Uint8Array> {
  for (let need = 1; need <= MAX_LINE_BYTES; need = reader.buffered + 1) {
    if (!(await reader.ensure(need))) {
      throw new HttpError(400, "Connection closed inside a chunked body");
    }
    const b = reader.peek(Math.min(reader.buffered, MAX_LINE_BYTES));
    const lf = b.indexOf(0x0a);
    if (lf >= 0) return (await reader.readExact(lf + 1))!.slice();
  }
  throw new HttpError(400, `Chunked body line longer than ${MAX_LINE_BYTES} bytes`);
}

type Writer = WritableStreamDefaultWriter<Uint8Array>;

/** Copies exactly `n` bytes; returns the count, or throws on early EOF. */
async function copyLength(
  reader: ByteReader,
  writer: Writer,
  n: number,
  tick: () => void,
): Promise<number> {
  let left = n;
  for (let i = 0; left > 0 && i < Number.MAX_SAFE_INTEGER; i++) {
    const chunk = await reader.read(left);
    if (chunk === null) throw new Deno.errors.UnexpectedEof(`body ended ${left} bytes early`);
    tick();
    await writer.write(chunk.slice());
    left -= chunk.byteLength;
  }
  return n;
}

/** Copies until EOF. */
async function copyToEnd(reader: ByteReader, writer: Writer, tick: () => void): Promise<number> {
  let n = 0;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
    const chunk = await reader.read();
    if (chunk === null) break;
    tick();
    await writer.write(chunk.slice());
    n += chunk.byteLength;
  }
  return n;
}

/** RFC 9112 §7.1: passes a chunked body through unchanged, parsing it to find its end. */
async function copyChunked(reader: ByteReader, writer: Writer, tick: () => void): Promise<number> {
  let n = 0;
  for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
    const line = await readLine(reader);
    const text = latin1.decode(line).trim();
    const m = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(text);
    if (!m) throw new HttpError(400, `Cannot parse chunk size "${text.slice(0, 40)}"`);
    const size = parseInt(m[1], 16);
    await writer.write(line);
    n += line.byteLength;
    if (size === 0) {
      // The trailer section, ended by an empty line.
      for (let t = 0; t < 1000; t++) {
        const trailer = await readLine(reader);
        await writer.write(trailer);
        n += trailer.byteLength;
        if (trailer.byteLength <= 2 && latin1.decode(trailer).trim() === "") return n;
      }
      throw new HttpError(400, "Too many trailer lines");
    }
    n += await copyLength(reader, writer, size, tick);
    const crlf = await readLine(reader);
    if (latin1.decode(crlf).trim() !== "") {
      throw new HttpError(400, "Chunk data not followed by CRLF");
    }
    await writer.write(crlf);
    n += crlf.byteLength;
  }
  return n;
}

/** Copies one body framed as `framing`; resolves with the bytes copied. `tick` marks progress. */
export function copyBody(
  reader: ByteReader,
  writer: Writer,
  framing: Framing,
  tick: () => void,
): Promise<number> {
  switch (framing.kind) {
    case "none":
      return Promise.resolve(0);
    case "length":
      return copyLength(reader, writer, framing.length, tick);
    case "chunked":
      return copyChunked(reader, writer, tick);
    case "close":
      return copyToEnd(reader, writer, tick);
  }
}
