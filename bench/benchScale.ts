/**
 * `npm run bench:scale`: how the stack's cost grows with the shard count, for each count in
 * BENCH_SHARDS (default 3,12,30; one replica per shard, the prod stack's other settings):
 *  - preview: the real program (index.ts) under Pulumi's mocks, as the unit tests run it (no cloud): the
 *    time the program takes to register its resources, how many it registers, and the largest gzip'd
 *    user-data (EC2 takes at most 16 KiB: every node's user-data carries the whole cluster plan, so it
 *    is the one thing that grows with the cluster on every node). Each run in its own process (the Pulumi
 *    runtime is process-global), BENCH_RUNS times (default 5).
 *  - formation (BENCH_FORMATION=1, the default): the local loopback mode, redis-server processes on
 *    127.0.0.1 formed by the same lib-cluster.sh the user-data runs, from the processes started to a
 *    healthy cluster (every slot served, every replica attached), once per count (2 x 30 processes do
 *    not fit this machine as hosts). No root needed.
 * Prints a table with per-shard costs (linear growth keeps them flat) and writes bench-results/scale.json.
 */
import { execFile } from "child_process";
import { promisify } from "util";
import * as path from "path";
import { performance } from "perf_hooks";
import { machine, stats, Stats, writeResults } from "./benchUtil";
import { stackSettings } from "../lab/stackFiles";
import { Settings } from "../components/config/settings";
import { USER_DATA_LIMIT_BYTES } from "../components/ec2/node/userData";

const execFileP = promisify(execFile);
const SHARDS = (process.env.BENCH_SHARDS ?? "3,12,30").split(",").map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const FORMATION = (process.env.BENCH_FORMATION ?? "1") === "1";
const CHILD_FLAG = "--preview-child";

interface PreviewRun {
  ms: number;
  resources: number;
  instances: number;
  maxUserDataBytes: number;
  error?: string;
}

/** In the child: one preview of the prod stack at `shards`, printed as one JSON line. */
async function previewChild(shards: number): Promise<void> {
  // Loaded here, not at the top: the harness patches the Pulumi runtime of this process.
  const { runStack } = await import("../tests/unit/support/stackHarness");
  const started = performance.now();
  const run = await runStack("prod", { "redis-stack:shards": String(shards) });
  const ms = performance.now() - started;
  const instances = run.resources.filter((r) => r.type === "aws:ec2/instance:Instance");
  const sizes = instances.map((r) => {
    const b64 = r.inputs.userDataBase64;
    return typeof b64 === "string" ? Buffer.from(b64, "base64").length : 0;
  });
  const out: PreviewRun = {
    ms,
    resources: run.resources.length,
    instances: instances.length,
    maxUserDataBytes: Math.max(0, ...sizes),
    ...(run.error ? { error: String(run.error).split("\n")[0] } : {}),
  };
  console.log(JSON.stringify(out));
}

async function preview(shards: number): Promise<PreviewRun> {
  const { stdout } = await execFileP(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", __filename, CHILD_FLAG, String(shards)],
    { cwd: path.join(__dirname, ".."), maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
  );
  const line = stdout
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (!line) throw new Error(`preview at ${shards} shards printed no result: ${stdout.slice(-500)}`);
  return JSON.parse(line) as PreviewRun;
}

function withShards(base: Settings, shards: number): Settings {
  if (!base.ec2) throw new Error("the prod stack must be ec2");
  return { ...base, ec2: { ...base.ec2, shards, replicasPerShard: 1 } };
}

/** Loopback formation: processes started -> healthy, ms. */
async function formation(settings: Settings): Promise<number> {
  const { startLoopback, convergeLoopback, stopLoopback } = await import("../local/loopback");
  const { adminTarget, clusterHealth, sleep } = await import("../local/localCluster");
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("ec2 settings expected");
  await stopLoopback(() => undefined);
  try {
    const started = Date.now();
    const state = await startLoopback(settings, () => undefined);
    const converge = convergeLoopback(state, 300);
    for (;;) {
      const h = await clusterHealth(adminTarget(state), ec2.shards, ec2.replicasPerShard);
      if (h.ok) break;
      if (Date.now() - started > 300_000)
        throw new Error(`loopback cluster of ${ec2.shards} shards not healthy: ${h.detail}`);
      await sleep(50);
    }
    const ms = Date.now() - started;
    await converge;
    return ms;
  } finally {
    await stopLoopback(() => undefined);
  }
}

const sec = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const base = stackSettings("prod");
  const rows: Array<{
    shards: number;
    nodes: number;
    preview: Stats;
    resources: number;
    maxUserDataBytes: number;
    previewError?: string;
    formationMs?: number;
  }> = [];
  for (const shards of SHARDS) {
    const runs: PreviewRun[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await preview(shards);
      runs.push(r);
      console.log(
        `  ${shards} shards, preview ${i + 1}/${RUNS}: ${sec(r.ms)} s, ${r.resources} resources, largest user-data ${r.maxUserDataBytes} B${r.error ? `, FAILED: ${r.error}` : ""}`,
      );
    }
    let formationMs: number | undefined;
    if (FORMATION) {
      formationMs = await formation(withShards(base, shards));
      console.log(`  ${shards} shards, loopback formation: ${sec(formationMs)} s`);
    }
    rows.push({
      shards,
      nodes: shards * 2,
      preview: stats(runs.map((r) => r.ms)),
      resources: runs[0].resources,
      maxUserDataBytes: Math.max(...runs.map((r) => r.maxUserDataBytes)),
      ...(runs[0].error ? { previewError: runs[0].error } : {}),
      ...(formationMs !== undefined ? { formationMs } : {}),
    });
  }
  console.log(
    `\nshards  nodes  resources  preview median  p95     per shard  | largest user-data (of ${USER_DATA_LIMIT_BYTES} B)  | loopback formation  per shard`,
  );
  for (const r of rows)
    console.log(
      `${String(r.shards).padStart(6)}  ${String(r.nodes).padStart(5)}  ${String(r.resources).padStart(9)}  ${sec(r.preview.median).padStart(13)} s  ${sec(r.preview.p95)} s  ${(r.preview.median / r.shards).toFixed(0).padStart(6)} ms  | ${String(r.maxUserDataBytes).padStart(8)} B${r.previewError ? ` FAILED: ${r.previewError}` : ""}  | ${r.formationMs !== undefined ? `${sec(r.formationMs).padStart(8)} s  ${(r.formationMs / r.shards).toFixed(0).padStart(8)} ms` : "skipped"}`,
    );
  const file = writeResults(process.env.BENCH_OUT ?? "scale", { machine: machine(), runs: RUNS, rows });
  console.log(`written to ${file}`);
}

if (process.argv[2] === CHILD_FLAG) {
  previewChild(Number(process.argv[3])).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
