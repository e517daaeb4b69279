/** Sample configs (v2ray JSON) and a helper that collects a config's problems, for config tests. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ConfigError, parseConfigObject, type ParseConfigOptions } from "../../lib/config/parse.ts";

/** tests/support/certs/, with a trailing slash. */
export const CERTS = fileURLToPath(new URL("./certs/", import.meta.url));
export const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";

// deno-lint-ignore no-explicit-any
export type Json = any;

/** A valid client config: SOCKS in, VLESS over h2+TLS out. */
export function client(): Json {
  return {
    inbounds: [{ protocol: "socks", port: 1080 }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: [{ address: "example.com", port: 443, users: [{ id: ID, encryption: "none" }] }],
      },
      streamSettings: { network: "h2", security: "tls" },
    }],
  };
}

/** A valid server config: VLESS over h2+TLS in, freedom out. */
export function server(): Json {
  return {
    inbounds: [{
      protocol: "vless",
      listen: "127.0.0.1",
      port: 8443,
      settings: { clients: [{ id: ID }], decryption: "none" },
      streamSettings: {
        network: "http",
        security: "tls",
        tlsSettings: { certificates: [{ certificateFile: "server.pem", keyFile: "server.key" }] },
        httpSettings: { path: "/ray" },
      },
    }],
    outbounds: [{ protocol: "freedom" }],
  };
}

/** The problems parseConfigObject() reports for `config`; fails when it reports none. */
export function problems(config: Json, opts: ParseConfigOptions = { baseDir: CERTS }): string[] {
  try {
    parseConfigObject(config, opts);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail("expected a ConfigError");
}

/** [what, a change to a valid client config, the exact problems it must produce]. */
export type ProblemCase = [string, (c: Json) => void, string[]];

/** One test per case: `parseConfigObject() reports <what>`. */
export function testProblemCases(cases: ProblemCase[]): void {
  for (const [what, change, expected] of cases) {
    Deno.test(`parseConfigObject() reports ${what}`, () => {
      const c = client();
      change(c);
      assert.deepEqual(problems(c), expected);
    });
  }
}
