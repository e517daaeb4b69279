/**
 * Runs main.ts's CLI with a fake app, for tests/cli_test.ts: the fake prints "fake: started" once
 * running and "fake: close" when asked to close; FAKE_CLOSE=hang makes close() never finish, so
 * the shutdown limit (FAKE_LIMIT_MS) is what ends the process.
 */
import { main } from "../../main.ts";

const hang = Deno.env.get("FAKE_CLOSE") === "hang";
const code = await main(Deno.args, {
  shutdownLimitMs: Number(Deno.env.get("FAKE_LIMIT_MS") ?? "5000"),
  startApp: () => {
    console.log("fake: started");
    return Promise.resolve({
      close: () => {
        console.log("fake: close");
        return hang ? new Promise<void>(() => {}) : Promise.resolve();
      },
      done: new Promise<void>(() => {}),
    });
  },
});
console.log(`fake: exit ${code}`);
Deno.exit(code);
