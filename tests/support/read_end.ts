/**
 * Reads a connection until EOF or an error, and says which, with how many bytes came first: how a
 * test tells a clean end (EOF) from a reset (ConnectionReset) after the bytes it expects.
 */
export async function readToEndOrError(conn: Deno.Conn): Promise<{ bytes: number; end: string }> {
  const buf = new Uint8Array(256 * 1024);
  let bytes = 0;
  for (let i = 0; i < 1_000_000; i++) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      return { bytes, end: (err as Error).name };
    }
    if (n === null) return { bytes, end: "EOF" };
    bytes += n;
  }
  return { bytes, end: "too long" };
}
