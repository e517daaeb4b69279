import assert from "node:assert/strict";
import { AssetLocator } from "../../lib/routing/asset_locator.ts";

Deno.test("AssetLocator.find() searches the env dirs, then the config dir, then the share dirs", () => {
  const present = new Set(["/cfg/geoip.dat", "/usr/share/v2ray/geosite.dat", "/xr/my.dat"]);
  const env: Record<string, string> = { V2RAY_LOCATION_ASSET: "/v2", XRAY_LOCATION_ASSET: "/xr" };
  const a = new AssetLocator({
    env: (n) => env[n],
    configDir: "/cfg",
    exists: (p) => present.has(p),
  });
  assert.deepEqual(a.dirs.slice(0, 3), ["/v2", "/xr", "/cfg"]);
  assert.equal(a.find("geoip.dat"), "/cfg/geoip.dat");
  assert.equal(a.find("geosite.dat"), "/usr/share/v2ray/geosite.dat");
  assert.equal(a.find("my.dat"), "/xr/my.dat");
  assert.throws(() => a.find("none.dat"), {
    name: "NotFound",
    message:
      /^Cannot find none\.dat; searched \/v2\/none\.dat, \/xr\/none\.dat, \/cfg\/none\.dat, /,
  });
});

Deno.test("AssetLocator.find() uses the executable's folder without env, and absolute paths as is", () => {
  const a = new AssetLocator({
    env: () => undefined,
    execPath: "/opt/dray/dray",
    exists: (p) => p === "/opt/dray/geoip.dat" || p === "/abs/x.dat",
  });
  assert.equal(a.dirs[0], "/opt/dray");
  assert.equal(a.find("geoip.dat"), "/opt/dray/geoip.dat");
  assert.equal(a.find("/abs/x.dat"), "/abs/x.dat");
});
