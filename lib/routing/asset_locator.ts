/**
 * Where geoip.dat, geosite.dat and `ext:` files are found, as v2ray looks for them
 * (common/platform/others.go GetAssetLocation, filesystem.ReadAsset) plus what Xray users and
 * dray's own users expect:
 *
 * 1. `V2RAY_LOCATION_ASSET` (or `v2ray.location.asset`), then `XRAY_LOCATION_ASSET`;
 * 2. without either, the executable's directory (a compiled dray's own folder);
 * 3. the config file's directory;
 * 4. /usr/local/share/v2ray, /usr/share/v2ray, /usr/local/share/xray, /usr/share/xray.
 *
 * An absolute file name is used as is (4.34 joins it onto the asset directory even then).
 */
import { dirname, isAbsolute, join } from "node:path";

export interface AssetLocatorOptions {
  /** Environment lookup; default Deno.env.get. */
  env?: (name: string) => string | undefined;
  /** The running executable; default Deno.execPath(). */
  execPath?: string;
  /** The config file's directory, when the config came from a file. */
  configDir?: string;
  /** Whether a regular file exists there; default a Deno.statSync probe. */
  exists?: (path: string) => boolean;
}

const SHARE_DIRS = [
  "/usr/local/share/v2ray",
  "/usr/share/v2ray",
  "/usr/local/share/xray",
  "/usr/share/xray",
];

export class AssetLocator {
  readonly #dirs: string[];
  readonly #exists: (path: string) => boolean;

  constructor(options: AssetLocatorOptions = {}) {
    const env = options.env ?? ((name) => Deno.env.get(name));
    const fromEnv = [
      env("V2RAY_LOCATION_ASSET") || env("v2ray.location.asset"),
      env("XRAY_LOCATION_ASSET"),
    ].filter((d): d is string => !!d);
    const dirs = fromEnv.length > 0 ? fromEnv : [dirname(options.execPath ?? Deno.execPath())];
    if (options.configDir) dirs.push(options.configDir);
    this.#dirs = [...new Set([...dirs, ...SHARE_DIRS])];
    this.#exists = options.exists ?? isFile;
  }

  /** The directories searched, in order. */
  get dirs(): readonly string[] {
    return this.#dirs;
  }

  /**
   * The path of `file`, or throws Deno.errors.NotFound naming every path tried.
   */
  find(file: string): string {
    if (isAbsolute(file)) {
      if (this.#exists(file)) return file;
      throw new Deno.errors.NotFound(`Cannot find ${file}`);
    }
    const tried: string[] = [];
    for (const dir of this.#dirs) {
      const path = join(dir, file);
      if (this.#exists(path)) return path;
      tried.push(path);
    }
    throw new Deno.errors.NotFound(`Cannot find ${file}; searched ${tried.join(", ")}`);
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
