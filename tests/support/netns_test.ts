import { equal, ok, rejects } from "node:assert/strict";
import { NetnsHost } from "./netns.ts";

/** A TCP echo server run inside the namespace (Deno itself, via `ip netns exec`). */
async function startEcho(ns: NetnsHost): Promise<{ port: number; stop(): Promise<void> }> {
  const code = `
    const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    console.log(l.addr.port);
    for await (const c of l) c.readable.pipeTo(c.writable).catch(() => {});
  `;
  const child = ns.command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  // Bounded: a handful of reads until the port line arrives, or EOF if the child died.
  for (let i = 0; i < 100 && !text.includes("\n"); i++) {
    const r = await reader.read();
    if (r.done) break;
    text += r.value;
  }
  const port = Number(text.trim());
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await reader.cancel().catch(() => {});
    await child.status;
  };
  if (!(port > 0)) {
    await stop();
    throw new Error(`echo in ${ns.name} did not start: ${JSON.stringify(text)}`);
  }
  return { port, stop };
}

async function echoOnce(hostname: string, port: number, ms: number): Promise<number[]> {
  const conn = await Deno.connect({ hostname, port, signal: AbortSignal.timeout(ms) });
  try {
    await conn.write(new Uint8Array([1, 2, 3]));
    const buf = new Uint8Array(8);
    const timer = setTimeout(() => conn.close(), ms);
    try {
      const n = await conn.read(buf);
      return [...buf.subarray(0, n ?? 0)];
    } finally {
      clearTimeout(timer);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}

async function ipOut(...args: string[]): Promise<{ ok: boolean; text: string }> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  return { ok: out.success, text: new TextDecoder().decode(out.stdout) };
}

Deno.test("NetnsHost serves a process in its namespace at its address", async () => {
  await using ns = await NetnsHost.create();
  const echo = await startEcho(ns);
  try {
    equal((await echoOnce(ns.address, echo.port, 5000)).join(","), "1,2,3");
    ok(await ns.isUp());
  } finally {
    await echo.stop();
  }
});

Deno.test("NetnsHost.blackhole() makes packets vanish until restore(), root end staying up", async () => {
  await using ns = await NetnsHost.create();
  const echo = await startEcho(ns);
  try {
    // An open connection, then the server's end goes down.
    const conn = await Deno.connect({ hostname: ns.address, port: echo.port });
    try {
      await ns.blackhole();
      equal(await ns.isUp(), false);
      // The root namespace's route to the address is still there (its end never went down).
      const route = await ipOut("route", "get", ns.address);
      ok(route.ok && route.text.includes(" dev dh"), `route: ${route.text}`);
      // A new connect neither succeeds nor is refused: it times out.
      await rejects(
        Deno.connect({ hostname: ns.address, port: echo.port, signal: AbortSignal.timeout(800) }),
        (err: Error) => err.name === "TimeoutError" || err.name === "AbortError",
      );
      // The open connection gets no answer (and no reset).
      await conn.write(new Uint8Array([7]));
      const buf = new Uint8Array(4);
      let answered = false;
      const reading = conn.read(buf).then(() => (answered = true), () => (answered = true));
      await new Promise((r) => setTimeout(r, 500));
      equal(answered, false);
      await ns.restore();
      // The stalled byte is retransmitted once the link is back.
      const timer = setTimeout(() => conn.close(), 10_000);
      await reading;
      clearTimeout(timer);
      equal(buf[0], 7);
    } finally {
      try {
        conn.close();
      } catch {
        // Closed by the safety timer.
      }
    }
    equal((await echoOnce(ns.address, echo.port, 5000)).join(","), "1,2,3");
  } finally {
    await echo.stop();
  }
});

Deno.test("NetnsHost.close() removes the namespace and both ends of the pair", async () => {
  const ns = await NetnsHost.create();
  const name = ns.name;
  const hostIf = (await ipOut("route", "get", ns.address)).text.match(/ dev (\S+)/)?.[1];
  ok(hostIf?.startsWith("dh"), `host interface ${hostIf}`);
  await ns.close();
  equal((await ipOut("netns", "list")).text.includes(name), false);
  equal((await ipOut("link", "show", hostIf!)).ok, false);
  // A second close is harmless.
  await ns.close();
});
