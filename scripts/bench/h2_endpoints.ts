/**
 * The HTTP endpoints every HTTP/2 benchmark server offers (Deno.serve or our own server in front):
 * `GET /down?n=N` answers N bytes, any other request answers the number of body bytes it sent.
 */
const block = new Uint8Array(256 * 1024).map((_, i) => (i * 31 + 7) & 0xff);

export async function benchEndpoints(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/down") {
    let left = Number(url.searchParams.get("n"));
    return new Response(
      new ReadableStream({
        pull(c) {
          if (left <= 0) return c.close();
          const n = Math.min(left, block.byteLength);
          left -= n;
          c.enqueue(block.slice(0, n));
        },
      }),
    );
  }
  let total = 0;
  for await (const chunk of req.body ?? []) total += chunk.byteLength;
  return new Response(String(total));
}
