/**
 * The little of the protobuf wire format that geoip.dat and geosite.dat need: varints,
 * length-delimited fields, and skipping whatever else a newer generator wrote. Errors are
 * SyntaxErrors naming the file and the absolute byte offset.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** A cursor over one message's bytes; offsets in errors are relative to the whole file. */
export class ProtoReader {
  readonly #b: Uint8Array;
  readonly #file: string;
  readonly #base: number;
  #pos: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, file: string, base = 0) {
    this.#b = bytes;
    this.#file = file;
    this.#base = base;
    this.#pos = 0;
    this.#end = bytes.length;
  }

  get done(): boolean {
    return this.#pos >= this.#end;
  }

  /** Offset of the next byte in the file. */
  get offset(): number {
    return this.#base + this.#pos;
  }

  fail(what: string, at = this.offset): SyntaxError {
    return new SyntaxError(`Cannot read ${this.#file}: ${what} at byte ${at}`);
  }

  /** A new reader over the same bytes, from their start. */
  rewound(): ProtoReader {
    return new ProtoReader(this.#b, this.#file, this.#base);
  }

  /** Reads a varint of up to 64 bits; values beyond 2^53 lose precision (only skipped here). */
  varint(): number {
    const start = this.offset;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) throw this.fail("truncated varint", start);
      const byte = this.#b[this.#pos++];
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
    }
    throw this.fail("varint longer than 10 bytes", start);
  }

  /** Reads a field key: [field number, wire type]. */
  key(): [number, number] {
    const at = this.offset;
    const k = this.varint();
    const field = Math.floor(k / 8);
    if (field === 0) throw this.fail("field number 0", at);
    return [field, k & 7];
  }

  /** Reads a length-delimited payload as a sub-reader (no copy). */
  message(): ProtoReader {
    const at = this.offset;
    const len = this.varint();
    if (len > this.#end - this.#pos) {
      throw this.fail(`length ${len} runs past the end (${this.#end - this.#pos} bytes left)`, at);
    }
    const start = this.#pos;
    this.#pos += len;
    return new ProtoReader(this.#b.subarray(start, start + len), this.#file, this.#base + start);
  }

  /** Reads a length-delimited payload as bytes (a view, no copy). */
  bytes(): Uint8Array {
    const m = this.message();
    return m.#b;
  }

  string(): string {
    return DECODER.decode(this.bytes());
  }

  /** Skips one field's value of the given wire type. */
  skip(wireType: number): void {
    const at = this.offset;
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_LEN: {
        // Advance without building a sub-reader: skipping is the common case in big lists.
        const len = this.varint();
        if (len > this.#end - this.#pos) {
          throw this.fail(
            `length ${len} runs past the end (${this.#end - this.#pos} bytes left)`,
            at,
          );
        }
        this.#pos += len;
        return;
      }
      case WIRE_FIXED64:
      case WIRE_FIXED32: {
        const n = wireType === WIRE_FIXED64 ? 8 : 4;
        if (this.#end - this.#pos < n) throw this.fail("truncated fixed-width field", at);
        this.#pos += n;
        return;
      }
      default:
        throw this.fail(`unsupported wire type ${wireType}`, at);
    }
  }
}

const DECODER = new TextDecoder("utf-8", { fatal: false });
