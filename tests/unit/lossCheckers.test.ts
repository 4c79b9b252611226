/**
 * Self-tests of the checkers that count lost writes (the fault suites and benches trust them): each is run
 * against a real redis-server on this machine, a loss is injected from outside (keys deleted or
 * overwritten with redis-cli), and the checker must name exactly the writes that were lost. And the write
 * gap is measured from the last acknowledged write before a fault to the first after it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, spawn, spawnSync } from "child_process";
import { describeRedis, redisCli } from "./support/redisCli";
import { VerifyKeysResult, VerifyResult, WriteResult, WriterConfig, writeGap } from "../../lab/writer";
import { LoadReport } from "../../lab/clientLoad";
import { plainContractEnv } from "./support/contractEnv";

const ROOT = path.resolve(__dirname, "../..");
const TS_NODE = require.resolve("ts-node/register/transpile-only");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("the write gap runs from the last write acknowledged before the fault to the first after it", () => {
  const acked: Array<[number, number]> = [
    [1, 1000],
    [2, 1010],
    [3, 1020],
    [4, 4100],
    [5, 4110],
  ];
  expect(writeGap(acked, 1500)).toEqual({ lastBeforeAt: 1020, firstAfterAt: 4100, ms: 3080 });
  // A fault right after an acknowledgement: the gap still starts at that acknowledgement, not at the fault.
  expect(writeGap(acked, 1020).ms).toBe(3080);
  expect(writeGap(acked, 5000).ms).toBeNaN();
  expect(() => writeGap(acked, 500)).toThrow(/no write was acknowledged before/);
});

describeRedis("the loss checkers catch an injected loss", () => {
  const port = 29000 + (process.pid % 500);
  const user = "app";
  const password = "loss-checker-pass";
  const login = { user, password };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loss-checkers-"));
  let server: ChildProcess | undefined;

  /** lab/writer.ts with this config, on this machine, against the local server. */
  const writer = <T>(cfg: Omit<WriterConfig, "nodes" | "user" | "password" | "direct">): T => {
    const full: WriterConfig = { ...cfg, nodes: [`127.0.0.1:${port}`], user, password, direct: true };
    // In a file, as the lab passes it: a fast machine acknowledges enough writes that their list, in one
    // environment variable, passes Linux's 128 KiB limit for a single one and execve fails (E2BIG).
    const file = path.join(dir, `writer-${cfg.mode}.json`);
    fs.writeFileSync(file, JSON.stringify(full));
    const r = spawnSync(process.execPath, ["-r", TS_NODE, path.join(ROOT, "lab/writer.ts")], {
      env: { ...process.env, WRITER_CONFIG_FILE: file },
      encoding: "utf8",
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`writer ${cfg.mode}: ${r.error?.message ?? r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const cli = (...args: string[]) => redisCli("127.0.0.1", port, login, ...args);

  beforeAll(async () => {
    fs.writeFileSync(
      path.join(dir, "redis.conf"),
      [
        `port ${port}`,
        "bind 127.0.0.1",
        `dir ${dir}`,
        'save ""',
        "user default off",
        `user ${user} on >${password} ~* &* +@all`,
      ].join("\n") + "\n",
    );
    server = spawn("redis-server", [path.join(dir, "redis.conf")], { stdio: "ignore" });
    for (let t = 0; t < 100; t++) {
      if (cli("PING").stdout.trim() === "PONG") return;
      await sleep(100);
    }
    throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING`);
  });
  afterAll(() => {
    server?.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the writer's verify names exactly the acknowledged writes deleted or overwritten after the fact", () => {
    const res = writer<WriteResult>({ mode: "write", tag: "self", durationMs: 1000 });
    const seqs = res.acked.map(([seq]) => seq);
    expect(seqs.length).toBeGreaterThan(100);
    expect(writer<VerifyResult>({ mode: "verify", tag: "self", seqs }).missing).toEqual([]);
    const lost = [seqs[3], seqs[Math.floor(seqs.length / 2)], seqs[seqs.length - 1]];
    for (const seq of lost) expect(cli("DEL", `{self}:${seq}`).stdout.trim()).toBe("1");
    const overwritten = seqs[10];
    cli("SET", `{self}:${overwritten}`, "something else");
    const found = writer<VerifyResult>({ mode: "verify", tag: "self", seqs }).missing;
    expect(found.sort((a, b) => a - b)).toEqual([...lost, overwritten].sort((a, b) => a - b));
  });

  test("the app load's acknowledged writes, judged by an outside client, show every key deleted after the fact", () => {
    const env = plainContractEnv(user, password, port, {
      LOAD_SECONDS: "2",
      LOAD_RATE: "50",
      LOAD_PREFIX: "selfload",
    });
    const run = spawnSync(process.execPath, ["-r", TS_NODE, path.join(ROOT, "lab/clientLoad.ts")], {
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    if (run.status !== 0) throw new Error(`client load: ${run.stderr}`);
    const report = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as LoadReport;
    expect(report.acked.length).toBeGreaterThan(50);
    // Every acknowledged write has its own key.
    expect(new Set(report.acked.map(([k]) => k)).size).toBe(report.acked.length);
    const pairs = report.acked.map(([k, v]) => [k, v] as [string, string]);
    expect(writer<VerifyKeysResult>({ mode: "verify-keys", tag: "", pairs }).missing).toEqual([]);
    const lost = [pairs[0][0], pairs[20][0], pairs[pairs.length - 1][0]];
    for (const key of lost) expect(cli("DEL", key).stdout.trim()).toBe("1");
    expect(writer<VerifyKeysResult>({ mode: "verify-keys", tag: "", pairs }).missing.sort()).toEqual(lost.sort());
    // The counter an outside client reads is within what the load was told.
    const counter = Number(cli("GET", report.verify.counterKey).stdout.trim());
    expect(counter).toBeGreaterThanOrEqual(report.verify.incrAcked);
    expect(counter).toBeLessThanOrEqual(report.verify.incrAcked + report.verify.incrUnknown);
  });
});
