/**
 * redis-stack-client as an app gets it: `npm pack` of the workspace gives a tarball of the built dist/ (no
 * sources, no tests) that installs into an empty project and, from there (its own node_modules, not the
 * workspace), reads the env contract and talks to a real redis-server. Judged from outside: redis-cli.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, spawn, spawnSync, SpawnSyncReturns } from "child_process";
import { describeRedis, redisCli } from "../support/redisCli";
import { plainContractEnv } from "../support/contractEnv";

const ROOT = path.resolve(__dirname, "../../..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `command args` in cwd; throws with its output unless it exits 0. */
function run(cwd: string, command: string, args: string[], env = process.env): SpawnSyncReturns<string> {
  const r = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 100_000 });
  if (r.status !== 0)
    throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "client-package-"));
let tarball: string;

beforeAll(() => {
  const packDir = path.join(dir, "pack");
  fs.mkdirSync(packDir);
  // Runs the client's `prepack` (tsc), so the tarball holds what the current sources build to.
  run(ROOT, "npm", ["pack", "--workspace", "client", "--pack-destination", packDir]);
  const tgz = fs.readdirSync(packDir).filter((f) => f.endsWith(".tgz"));
  expect(tgz).toHaveLength(1);
  tarball = path.join(packDir, tgz[0]);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test("the tarball holds the built entry point and its types, and no sources or tests", () => {
  const files = run(dir, "tar", ["-tzf", tarball])
    .stdout.split("\n")
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ""));
  expect(files).toEqual(expect.arrayContaining(["package.json", "dist/index.js", "dist/index.d.ts"]));
  expect(files.filter((f) => f.startsWith("src/") || /(^|\/)tests?\/|\.test\.|\.spec\./.test(f))).toEqual([]);
  // Only compiled output ships: every .ts file is a declaration.
  expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
  // Nothing runs at the app's install: the build is `prepack`, not `prepare` (which npm counts as an install
  // script of a tarball or git dependency, to approve in allowScripts).
  const manifest = JSON.parse(run(dir, "tar", ["-xzOf", tarball, "package/package.json"]).stdout) as {
    scripts?: Record<string, string>;
  };
  const installScripts = /^(preinstall|install|postinstall|prepare)$/;
  expect(Object.keys(manifest.scripts ?? {}).filter((name) => installScripts.test(name))).toEqual([]);
});

describeRedis("the packed client installed into an empty project, against a real redis-server", () => {
  // 127.0.0.1 and a range no other suite uses (17000-28999 are taken) and below the ephemeral ports.
  const port = 30000 + (process.pid % 2000);
  const user = "app";
  const password = "package-test-pass";
  const app = path.join(dir, "app");
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    const data = path.join(dir, "redis");
    fs.mkdirSync(data);
    fs.writeFileSync(
      path.join(data, "redis.conf"),
      [
        `port ${port}`,
        "bind 127.0.0.1",
        `dir ${data}`,
        'save ""',
        "appendonly no",
        "user default off",
        `user ${user} on >${password} ~* &* +@all`,
      ].join("\n") + "\n",
    );
    server = spawn("redis-server", [path.join(data, "redis.conf")], { stdio: "ignore" });

    fs.mkdirSync(app);
    run(app, "npm", ["init", "-y"]);
    // The npm cache holds the client's dependencies after the root `npm ci`; the registry is the fallback.
    run(app, "npm", ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund"]);

    for (let t = 0; t < 100; t++) {
      if (redisCli("127.0.0.1", port, { user, password }, "PING").stdout.trim() === "PONG") return;
      await sleep(100);
    }
    throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING`);
  });

  afterAll(() => {
    server?.kill("SIGKILL");
  });

  test("require('redis-stack-client') resolves to the installed copy, which SETs and GETs through the env contract", () => {
    const key = `package-test:${process.pid}`;
    const value = `installed-from-tarball-${Date.now()}`;
    fs.writeFileSync(
      path.join(app, "check.js"),
      [
        'const { createClient } = require("redis-stack-client");',
        "(async () => {",
        "  const redis = await createClient(process.env, { retryBudgetMs: 5000 });",
        "  await redis.set(process.env.CHECK_KEY, process.env.CHECK_VALUE);",
        "  const got = await redis.get(process.env.CHECK_KEY);",
        "  await redis.close();",
        '  console.log(JSON.stringify({ resolved: require.resolve("redis-stack-client"), got }));',
        "})().catch((e) => {",
        "  console.error(e);",
        "  process.exit(1);",
        "});",
      ].join("\n") + "\n",
    );
    const env = plainContractEnv(user, password, port, {
      CHECK_KEY: key,
      CHECK_VALUE: value,
    });
    const out = run(app, process.execPath, ["check.js"], env).stdout.trim().split("\n");
    const printed = JSON.parse(out[out.length - 1]) as { resolved: string; got: string };
    expect(printed.got).toBe(value);
    expect(printed.resolved).toBe(
      path.join(fs.realpathSync(app), "node_modules", "redis-stack-client", "dist", "index.js"),
    );
    // An outside client sees the key the installed package wrote.
    const seen = redisCli("127.0.0.1", port, { user, password }, "GET", key);
    expect(seen.status).toBe(0);
    expect(seen.stdout.trim()).toBe(value);
  });
});
