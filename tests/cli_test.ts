import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const ID = "b831381d-6324-4d53-ad4f-8cda48b30811";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function dray(
  args: string[],
  opts: { cwd?: string; stdin?: string } = {},
): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `fn` with a temporary directory holding `files`, removed afterwards. */
async function withFiles(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dray_cli_" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertNoStack(r: Result): void {
  assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace in stderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /^\s+at /m);
}

const GOOD = `// a client config, comments allowed
{
  "inbounds": [{ "protocol": "socks", "port": 1080 }],
  "outbounds": [{
    "protocol": "vless",
    "settings": { "vnext": [{ "address": "example.com", "port": 443,
      "users": [{ "id": "${ID}", "encryption": "none" }] }] },
    "streamSettings": { "network": "h2", "security": "tls" } /* h2 needs tls */
  }]
}
`;

const BAD = `{
  "inbounds": [{ "protocol": "socks", "port": 1080 }, { "protocol": "http", "port": 1080 }],
  "outbounds": [{
    "protocol": "vless",
    "settings": { "vnext": [{ "address": "example.com", "port": "abc",
      "users": [{ "id": "not-a-uuid-and-much-too-long-to-be-a-name", "encryption": "auto" }] }] },
    "streamSettings": { "network": "h2" }
  }]
}
`;

Deno.test("dray version prints the version and runtime, exit 0", async () => {
  const r = await dray(["version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^dray \d+\.\d+\.\d+ \(deno \d+\.\d+\.\d+, v8 [^,]+, [\w-]+\)\n$/);
  assert.equal(r.stderr, "");
});

Deno.test("dray help lists every command, and each command has -h/--help", async () => {
  const r = await dray(["help"]);
  assert.equal(r.code, 0);
  for (const c of ["run", "test", "link", "probe", "exec", "route", "version", "help"]) {
    assert.match(r.stdout, new RegExp(`^  ${c} `, "m"));
  }
  const cases: Array<[string[], RegExp]> = [
    [["run", "--help"], /^Usage: dray run -c <config\.json>$/m],
    [["run", "-h"], /--link <url>/],
    [["test", "-h"], /^Usage: dray test -c <config\.json>$/m],
    [["link", "--help"], /^ {7}dray link --to-link -c <config\.json>$/m],
    [["version", "--help"], /^Usage: dray version$/m],
    [["help", "link"], /^Usage: dray link <vless:\/\/…>/m],
    [
      ["route", "-h"],
      /^Usage: dray route \(-c <config\.json> \| --link … \| --sub <source>\) DEST/m,
    ],
    [["--help"], /^Commands:$/m],
  ];
  for (const [args, pattern] of cases) {
    const h = await dray(args);
    assert.equal(h.code, 0, args.join(" "));
    assert.match(h.stdout, pattern, args.join(" "));
  }
});

Deno.test("dray rejects unknown options and commands with a usage error, exit 2", async () => {
  const cases: Array<[string[], string]> = [
    [["run", "--bogus"], 'dray run: unknown option "--bogus"\nRun "dray help run" for usage.\n'],
    [["test", "-x"], 'dray test: unknown option "-x"\nRun "dray help test" for usage.\n'],
    [
      ["link", "--to-lnk"],
      'dray link: unknown option "--to-lnk"\nRun "dray help link" for usage.\n',
    ],
    [
      ["version", "--full"],
      'dray version: unknown option "--full"\nRun "dray help version" for usage.\n',
    ],
    [["frob"], 'dray: unknown command "frob"\nRun "dray help" for usage.\n'],
    [
      ["run", "-c"],
      'dray run: option "-c, --config" needs a value\nRun "dray help run" for usage.\n',
    ],
    [
      ["run"],
      "dray run: give either -c <config.json>, or --link <vless://…> (repeatable) and/or " +
      '--sub <source>\nRun "dray help run" for usage.\n',
    ],
    [
      ["run", "--link", `vless://${ID}@example.com:443`, "--socks", "1080"],
      'dray run: --socks must be host:port (e.g. 127.0.0.1:1080) or "none", got "1080"\n' +
      'Run "dray help run" for usage.\n',
    ],
    [["help", "frob"], 'dray help: unknown command "frob"\nRun "dray help help" for usage.\n'],
  ];
  for (const [args, stderr] of cases) {
    const r = await dray(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr, stderr, args.join(" "));
    assert.equal(r.stdout, "");
  }
  const none = await dray([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^Commands:$/m);
});

Deno.test("dray test -c prints Configuration OK for a good config, exit 0", async () => {
  await withFiles({ "good.json": GOOD }, async (dir) => {
    const r = await dray(["test", "-c", `${dir}/good.json`]);
    assert.equal(r.stdout, "Configuration OK\n");
    assert.equal(r.code, 0);
    const l = await dray(["test", "--link", `vless://${ID}@example.com:443?security=tls`]);
    assert.equal(l.stdout, "Configuration OK\n");
    assert.equal(l.code, 0);
  });
});

Deno.test("dray test -c prints every problem of a bad config, exit 23", async () => {
  await withFiles({ "bad.json": BAD }, async (dir) => {
    const r = await dray(["test", "--config", `${dir}/bad.json`]);
    assert.equal(r.code, 23);
    assert.equal(
      r.stdout,
      [
        "inbounds[1].port: 1080 is already used by inbounds[0] (listen 127.0.0.1)",
        'outbounds[0].settings.vnext[0].port: must be an integer 1-65535, got "abc"',
        "outbounds[0].settings.vnext[0].users[0].id: must be a UUID (8-4-4-4-12 or 32 hex digits) " +
        'or a string of 1-30 bytes, got "not-a-uuid-and-much-too-long-to-be-a-name"',
        'outbounds[0].settings.vnext[0].users[0].encryption: must be "none", got "auto"',
        'outbounds[0].streamSettings.security: the http transport requires TLS ("security": "tls"), as in v2ray',
        "",
      ].join("\n"),
    );
    assertNoStack(r);
  });
});

Deno.test("dray test -c reports truncated JSON with line and column, exit 23", async () => {
  await withFiles({ "cut.json": GOOD.slice(0, GOOD.indexOf('"streamSettings"')) }, async (dir) => {
    const r = await dray(["test", "-c", `${dir}/cut.json`]);
    assert.equal(r.code, 23);
    assert.equal(r.stdout, "Cannot parse config: unexpected end of input at line 8 column 5\n");
    assertNoStack(r);
  });
});

Deno.test("dray test -c names a missing config file without a stack trace, exit 23", async () => {
  await withFiles({}, async (dir) => {
    const r = await dray(["test", "-c", `${dir}/missing.json`]);
    assert.equal(r.code, 23);
    assert.match(r.stdout, new RegExp(`^Cannot read config file "${dir}/missing\\.json": `));
    assertNoStack(r);
  });
});

Deno.test("dray test resolves certificateFile against the config's directory", async () => {
  const certs = fileURLToPath(new URL("./support/certs/", import.meta.url));
  const server = JSON.stringify({
    inbounds: [{
      protocol: "vless",
      port: 8443,
      settings: { clients: [{ id: ID }], decryption: "none" },
      streamSettings: {
        network: "h2",
        security: "tls",
        tlsSettings: { certificates: [{ certificateFile: "s.pem", keyFile: "s.key" }] },
      },
    }],
    outbounds: [{ protocol: "freedom" }],
  });
  await withFiles({
    "server.json": server,
    "s.pem": await Deno.readTextFile(`${certs}server.pem`),
    "s.key": await Deno.readTextFile(`${certs}server.key`),
  }, async (dir) => {
    // Run from another directory: the paths must still resolve next to the config.
    const r = await dray(["test", "-c", `${dir}/server.json`], { cwd: "/" });
    assert.equal(r.stdout, "Configuration OK\n");
    assert.equal(r.code, 0);
  });
  await withFiles({ "server.json": server }, async (dir) => {
    const r = await dray(["test", "-c", `${dir}/server.json`], { cwd: "/" });
    assert.equal(r.code, 23);
    assert.match(
      r.stdout,
      new RegExp(
        `^inbounds\\[0\\]\\.streamSettings\\.tlsSettings\\.certificates\\[0\\]\\.certificateFile: ` +
          `cannot read "${dir}/s\\.pem": `,
      ),
    );
  });
});

Deno.test("dray link converts a share link to JSON and --to-link converts it back", async () => {
  const link = `vless://${ID}@example.com:443?type=http&security=tls&sni=www.example.com` +
    "&path=%2Fray&encryption=none#edge";
  const r = await dray(["link", link, "--socks", "127.0.0.1:11080", "--http", "none"]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.deepEqual(json.inbounds, [
    { tag: "socks", protocol: "socks", listen: "127.0.0.1", port: 11080, settings: { udp: true } },
  ]);
  assert.equal(json.outbounds[0].tag, "edge");
  assert.deepEqual(json.outbounds[0].streamSettings, {
    network: "http",
    security: "tls",
    tlsSettings: { serverName: "www.example.com" },
    httpSettings: { path: "/ray" },
  });
  await withFiles({ "from-link.json": r.stdout }, async (dir) => {
    const back = await dray(["link", "--to-link", "-c", `${dir}/from-link.json`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout, link + "\n");
    assert.equal(back.stderr, "");
  });
});

Deno.test("dray link names the bad field of a share link, exit 23", async () => {
  const r = await dray(["link", `vless://${ID}@example.com?security=tls`]);
  assert.equal(r.code, 23);
  assert.equal(
    r.stderr,
    "Cannot parse share link: port: is required (vless://<id>@<host>:<port>)\n",
  );
  const t = await dray(["test", "--link", `vless://${ID}@2001:db8::1:443`]);
  assert.equal(t.code, 23);
  assert.equal(
    t.stdout,
    "Cannot parse share link: host: an IPv6 address must be in brackets, as in " +
      'vless://<id>@[::1]:443, got "2001:db8::1:443"\n',
  );
});

Deno.test("dray run -c with a bad config prints the problems to stderr, exit 23", async () => {
  await withFiles({ "bad.json": BAD }, async (dir) => {
    const r = await dray(["run", "-c", `${dir}/bad.json`]);
    assert.equal(r.code, 23);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.split("\n").length, 6);
    assert.match(r.stderr, /^inbounds\[1\]\.port: 1080 is already used/);
    assertNoStack(r);
  });
});

Deno.test("dray run relaunches itself with certificate checks off for allowInsecure hosts only", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const config = JSON.stringify({
    inbounds: [{ protocol: "socks", port }],
    outbounds: [{
      protocol: "vless",
      settings: {
        vnext: [{ address: "127.0.0.1", port: 1, users: [{ id: ID, encryption: "none" }] }],
      },
      streamSettings: {
        security: "tls",
        tlsSettings: { serverName: "insecure.dray.test", allowInsecure: true },
      },
    }],
  });
  await withFiles({ "insecure.json": config }, async (dir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "run", "-c", `${dir}/insecure.json`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Read stderr until the relaunched child has said it runs without checks for that host,
    // then stop it as a user would. (With the placeholder app it exits by itself.)
    let seen = "";
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      for (let i = 0; i < 1000 && !/verification is OFF/.test(seen); i++) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      for (let i = 0; i < 1000; i++) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      const status = await child.status;
      assert.ok(status.code === 0 || status.code === 1, `exit ${status.code}: ${seen}`);
    } finally {
      clearTimeout(deadline);
      reader.releaseLock();
    }
    assert.match(
      seen,
      // Deno's own notice, possibly coloured, naming exactly the one host.
      // deno-lint-ignore no-control-regex
      /DANGER: TLS certificate validation is disabled for: insecure\.dray\.test(\x1b\[0m)?\n/,
    );
    assert.match(
      seen,
      /\[warning\] TLS certificate verification is OFF for insecure\.dray\.test \(allowInsecure\)/,
    );
    // Exactly one relaunch: the marker keeps the child from starting another.
    assert.equal(seen.match(/DANGER/g)?.length, 1);
    assertNoStack({ code: 0, stdout: "", stderr: seen });
  });
});

/** Starts the CLI with a fake app, waits until it runs, sends `signal`, returns what it printed. */
async function runFakeUntilSignal(
  signal: Deno.Signal,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string }> {
  const fake = fileURLToPath(new URL("./support/cli_fake_app.ts", import.meta.url));
  const link = `vless://${ID}@example.com:443?security=tls`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      fake,
      "run",
      "--link",
      link,
      "--http",
      "none",
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let stdout = "";
  try {
    let signalled = false;
    for (let i = 0; i < 1000; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
      if (!signalled && stdout.includes("fake: started\n")) {
        child.kill(signal);
        signalled = true;
      }
    }
    return { code: (await child.status).code, stdout };
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
}

Deno.test("dray run closes the app on SIGTERM and SIGINT and exits 0", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const r = await runFakeUntilSignal(signal, {});
    assert.equal(r.stdout, "fake: started\nfake: close\nfake: exit 0\n", signal);
    assert.equal(r.code, 0, signal);
  }
});

Deno.test("dray run exits 0 after the shutdown limit when close() hangs", async () => {
  const r = await runFakeUntilSignal("SIGTERM", { FAKE_CLOSE: "hang", FAKE_LIMIT_MS: "200" });
  assert.equal(r.stdout, "fake: started\nfake: close\nfake: exit 0\n");
  assert.equal(r.code, 0);
});

Deno.test("dray link --sub prints one outbound per usable line and warns about the others", async () => {
  const sub = [
    `vless://${ID}@a.example.com:443?security=tls#edge`,
    "vmess://eyJ9",
    `vless://${ID}@b.example.com:443?type=http&security=tls#edge`,
    "",
  ].join("\n");
  await withFiles({ "sub.txt": btoa(sub) }, async (dir) => {
    const r = await dray(["link", "--sub", `${dir}/sub.txt`, "--http", "none"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      'dray: warning: subscription line 2 skipped: unsupported scheme "vmess://" ' +
        "(dray speaks VLESS only)\n",
    );
    const json = JSON.parse(r.stdout);
    assert.deepEqual(json.outbounds.map((o: { tag: string }) => o.tag), ["edge", "edge-2"]);
    assert.deepEqual(
      json.outbounds.map((o: { settings: { vnext: Array<{ address: string }> } }) =>
        o.settings.vnext[0].address
      ),
      ["a.example.com", "b.example.com"],
    );
    assert.deepEqual(json.inbounds.map((i: { tag: string }) => i.tag), ["socks"]);
    assert.deepEqual(json.routing.balancers, [
      { tag: "links", selector: ["edge", "edge-2"], strategy: { type: "leastPing" } },
    ]);
    assert.deepEqual(json.observatory.subjectSelector, ["edge", "edge-2"]);
    assert.deepEqual(json.routing.rules, [
      { type: "field", network: "tcp,udp", balancerTag: "links" },
    ]);
  });
  // Repeated --link and stdin (-) mix, links first.
  const r = await dray(
    ["link", "--link", `vless://${ID}@c.example.com:443#c`, "--sub", "-"],
    { stdin: sub },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).outbounds.map((o: { tag: string }) => o.tag), [
    "c",
    "edge",
    "edge-2",
  ]);
});

Deno.test("dray test --sub: an empty or unusable subscription is an invalid config, exit 23", async () => {
  await withFiles({ "empty.txt": "# none yet\n", "bad.txt": "ss://x\n" }, async (dir) => {
    const empty = await dray(["test", "--sub", `${dir}/empty.txt`]);
    assert.equal(empty.code, 23);
    assert.equal(
      empty.stdout,
      "Cannot use subscription: no usable vless:// link, it is empty\n",
    );
    const bad = await dray(["test", "--sub", `${dir}/bad.txt`]);
    assert.equal(bad.code, 23);
    assert.equal(bad.stderr, "");
    assert.equal(
      bad.stdout,
      "Cannot use subscription: no usable vless:// link, every line was skipped (1):\n" +
        '  line 1: unsupported scheme "ss://" (dray speaks VLESS only)\n',
    );
    const missing = await dray(["run", "--sub", `${dir}/missing.txt`]);
    assert.equal(missing.code, 23);
    assert.match(missing.stderr, /^Cannot read subscription file /);
    assertNoStack(missing);
  });
});

Deno.test("dray run --sub with an unreachable URL is a runtime failure, exit 1", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const r = await dray(["run", "--sub", `http://127.0.0.1:${port}/sub/token`]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`^Cannot fetch subscription http://127\\.0\\.0\\.1:${port}/…: `),
  );
  assert.doesNotMatch(r.stderr, /token/);
});

const ROUTED = JSON.stringify({
  inbounds: [{ tag: "in", protocol: "socks", port: 1080 }],
  outbounds: [{ tag: "proxy", protocol: "freedom" }, { tag: "lan", protocol: "freedom" }],
  routing: {
    rules: [{ type: "field", ip: ["geoip:private"], outboundTag: "lan" }],
  },
});

Deno.test("dray route prints the rule and outbound a destination takes (text and --json), exit 0", async () => {
  await withFiles({ "config.json": ROUTED }, async (dir) => {
    const lan = await dray(["route", "-c", `${dir}/config.json`, "192.168.1.20:22"]);
    assert.equal(lan.code, 0, lan.stderr);
    assert.match(lan.stdout, /^destination +tcp:192\.168\.1\.20:22$/m);
    assert.match(lan.stdout, /^rule +rule 1: ip geoip:private \(routing\.rules\[0\]\)$/m);
    assert.match(lan.stdout, /^outbound +lan \(freedom\)$/m);
    const web = await dray(["route", "-c", `${dir}/config.json`, "[2001:db8::1]:443", "--json"]);
    assert.equal(web.code, 0, web.stderr);
    const e = JSON.parse(web.stdout);
    assert.deepEqual([e.rule, e.outbound.tag, e.inbound], [null, "proxy", "in"]);
  });
});

Deno.test("dray route: an invalid config exits 23, a bad destination or inbound 2", async () => {
  const badTag = ROUTED.replace('"outboundTag":"lan"', '"outboundTag":"nowhere"');
  const badGeo = ROUTED.replace("geoip:private", "ext:nofile.dat:xx");
  await withFiles({ "bad.json": badTag, "geo.json": badGeo, "ok.json": ROUTED }, async (dir) => {
    const tag = await dray(["route", "-c", `${dir}/bad.json`, "example.com"]);
    assert.equal(tag.code, 23);
    assert.match(tag.stderr, /routing\.rules\[0\]\.outboundTag/);
    const geo = await dray(["route", "-c", `${dir}/geo.json`, "example.com"]);
    assert.equal(geo.code, 23);
    assert.match(geo.stderr, /routing\.rules\[0\]\.ip\[0\].*nofile\.dat/);
    for (const args of [["example.com:99999"], ["example.com", "--inbound", "out"]]) {
      const r = await dray(["route", "-c", `${dir}/ok.json`, ...args]);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /^dray route: /);
      assertNoStack(r);
    }
  });
});
