/**
 * `npm run bench:backup`: what a backup and a restore of the prod cluster cost, for growing data sets.
 * Needs root (six real Debian hosts booted from the user-data, TLS on as in prod, the lab's S3 endpoint
 * enforcing SigV4, the role's and the bucket's policies and the bucket's KMS key).
 *
 * One stack is filled in steps to BENCH_SIZES_MB per shard (random 1 KiB values, which the RDB cannot
 * compress, piped into each master, one hash tag per shard). At each size: an app writer (a SET, then a 5 ms pause, one after another) runs for
 * BENCH_BASELINE_S seconds without a backup, then through `node.sh backup now` on a node (as an operator
 * runs it); the writer's round trips (ack to ack minus the pause) before and during give the master's
 * latency cost. The backup's objects are copied out, and once every size is backed up the stack goes and,
 * per size, a new stack is created with restoreFrom: its time from first boot until whole (every slot
 * served, every replica in sync) is the restore time, and the keys it holds are counted by an outside client.
 *
 * Prints a table, writes bench-results/backup.json and ends with the same figures as one JSON line.
 *   BENCH_SIZES_MB=10,100,500 BENCH_BASELINE_S=20
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { canRunLab } from "../lab/hosts/hostLab";
import {
  ClusterLab,
  createClusterLab,
  LAB_BACKUP,
  LAB_DATA_VOLUME_MIB,
  parseClusterNodes,
  startWriter,
  tagForSlots,
} from "../lab/clusterLab";
import { ADMIN_USER, EC2_PATHS } from "../components/ec2/node/redisConf";
import { NODE_SCRIPT } from "../components/ec2/node/userData";
import { stackSettings } from "../lab/stackFiles";
import { machine, writeResults } from "./benchUtil";

const SIZES_MB = (process.env.BENCH_SIZES_MB ?? "10,100,500").split(",").map(Number);
const BASELINE_MS = Number(process.env.BENCH_BASELINE_S ?? 20) * 1000;
const VALUE_BYTES = 1024;
const PAUSE_MS = 5;
/**
 * Each data volume holds the AOF (its RDB base and the fill's increment), dump.rdb and one shard's backup
 * RDB at once, and a restore its download beside both copies it installs: 6x the largest size.
 */
const VOLUME_MIB = Math.max(LAB_DATA_VOLUME_MIB, 6 * Math.max(...SIZES_MB));
const settings = stackSettings("prod");
const log = (line: string) => console.log(line);

/** Nearest-rank percentile (NaN for no values). */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
}

interface Latency {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function latency(acks: number[]): Latency {
  const rtt = acks.slice(1).map((t, i) => Math.max(0, t - acks[i] - PAUSE_MS));
  return { n: rtt.length, p50: percentile(rtt, 0.5), p99: percentile(rtt, 0.99), max: Math.max(...rtt) };
}

interface SizeResult {
  mbPerShard: number;
  keys: number;
  backupSeconds: number;
  /** What the backup uploaded: the RDB files (the manifest is a few hundred bytes more). */
  bytesUploaded: number;
  latencyWithout: Latency;
  latencyDuring: Latency;
  restoreSeconds?: number;
  restoredKeys?: number;
  manifestKey: string;
}

/** The masters now serving slots: address and first range. */
async function masters(c: ClusterLab): Promise<Array<{ addr: string; start: number; end: number }>> {
  const lines = parseClusterNodes((await c.cli(c.nodes[0], ["cluster", "nodes"])).stdout);
  return lines
    .filter((l) => l.flags.includes("master") && l.slots.length > 0)
    .map((l) => {
      const [start, end] = l.slots[0].split("-").map(Number);
      return { addr: l.addr, start, end: end ?? start };
    })
    .sort((a, b) => a.start - b.start);
}

/** Adds keys [from, to) of 1 KiB each to every master (one hash tag per shard), through redis-cli --pipe. */
async function fill(c: ClusterLab, from: number, to: number): Promise<void> {
  for (const m of await masters(c)) {
    const tag = tagForSlots(m.start, m.end, "bench");
    const [host, port] = m.addr.split(":");
    const gen =
      `import random, sys\nw = sys.stdout.buffer\n` +
      `for i in range(${from}, ${to}):\n  k = b"{${tag}}:%d" % i\n  v = random.randbytes(${VALUE_BYTES})\n` +
      `  w.write(b"*3\\r\\n$3\\r\\nSET\\r\\n$%d\\r\\n%s\\r\\n$%d\\r\\n%s\\r\\n" % (len(k), k, len(v), v))\n`;
    const tls = c.clientCa ? `--tls --cacert ${c.clientCa}` : "";
    const r = await c.lab.client.exec(
      ["bash", "-c", `python3 -c "$GEN" | redis-cli -h ${host} -p ${port} --user ${ADMIN_USER} ${tls} --pipe`],
      { env: { GEN: gen, REDISCLI_AUTH: c.passwords.admin }, timeoutMs: 1_800_000 },
    );
    if (r.code !== 0 || !/errors: 0, replies: \d+/.test(r.stdout))
      throw new Error(`filling ${m.addr} failed: ${r.stdout} ${r.stderr}`);
  }
}

/** Keys the stack holds, by DBSIZE on each master (an outside client). */
async function keyCount(c: ClusterLab): Promise<number> {
  let n = 0;
  for (const m of await masters(c)) n += Number((await c.cli(m.addr, ["dbsize"])).stdout.trim());
  return n;
}

async function main(): Promise<void> {
  const can = canRunLab();
  if (!can.ok) throw new Error(`bench:backup needs the host lab: ${can.reason}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-backup-"));
  const results: SizeResult[] = [];
  const copies = new Map<string, Map<string, string>>();
  let c: ClusterLab | undefined = await createClusterLab(settings, { log, dataVolumeMiB: VOLUME_MIB });
  try {
    const boots = await c.boot();
    if (!boots.every((b) => b.status === "done")) throw new Error("the stack did not boot");
    await c.waitConverged(180_000);
    let keysPerShard = 0;
    for (const mb of SIZES_MB) {
      const target = Math.round((mb * 1024 * 1024) / VALUE_BYTES);
      log(`filling to ${mb} MB per shard (${target} keys of ${VALUE_BYTES} B each)`);
      await fill(c, keysPerShard, target);
      keysPerShard = Math.max(keysPerShard, target);
      const keys = await keyCount(c);
      const writer = await startWriter(c, "bench", { intervalMs: PAUSE_MS });
      await new Promise((r) => setTimeout(r, BASELINE_MS));
      const started = Date.now();
      const b = await c.hosts[0].sh(`${NODE_SCRIPT} backup now`);
      const ended = Date.now();
      const run = await writer.stop();
      if (b.code !== 0) throw new Error(`backup failed: ${b.stdout} ${b.stderr}`);
      const acks = run.acked.map(([, t]) => t);
      const uri = b.stdout.trim().split("\n").pop() ?? "";
      const manifestKey = uri.slice(`s3://${LAB_BACKUP.bucket}/`.length);
      const view = await c.aws.bucket(LAB_BACKUP.bucket);
      const dir = manifestKey.slice(0, manifestKey.lastIndexOf("/") + 1);
      const copied = new Map<string, string>();
      let bytesUploaded = 0;
      for (const [key, o] of Object.entries(view.objects)) {
        if (!key.startsWith(dir)) continue;
        const file = path.join(work, key.replace(/\//g, "_"));
        fs.copyFileSync(o.path, file);
        copied.set(key, file);
        if (key.endsWith(".rdb")) bytesUploaded += o.size;
      }
      copies.set(manifestKey, copied);
      const result: SizeResult = {
        mbPerShard: mb,
        keys,
        backupSeconds: (ended - started) / 1000,
        bytesUploaded,
        latencyWithout: latency(acks.filter((t) => t < started)),
        latencyDuring: latency(acks.filter((t) => t >= started && t <= ended)),
        manifestKey,
      };
      results.push(result);
      log(
        `${mb} MB/shard: backup ${result.backupSeconds.toFixed(1)} s, ${(bytesUploaded / 1e6).toFixed(1)} MB uploaded`,
      );
    }
    await c.destroy();
    c = undefined;
    for (const result of results) {
      const restored = await createClusterLab(
        {
          ...settings,
          ec2: settings.ec2 && { ...settings.ec2, restoreFrom: `s3://${LAB_BACKUP.bucket}/${result.manifestKey}` },
        },
        { log, dataVolumeMiB: VOLUME_MIB },
      );
      try {
        for (const [key, file] of copies.get(result.manifestKey) ?? [])
          await restored.aws.putObject(LAB_BACKUP.bucket, key, file);
        const started = Date.now();
        const boots = await restored.boot();
        if (!boots.every((x) => x.status === "done"))
          throw new Error(`the restored stack (${result.mbPerShard} MB) did not boot`);
        await restored.waitConverged(1_800_000);
        result.restoreSeconds = (Date.now() - started) / 1000;
        result.restoredKeys = await keyCount(restored);
        log(
          `${result.mbPerShard} MB/shard: restored in ${result.restoreSeconds.toFixed(1)} s, ${result.restoredKeys} keys`,
        );
      } finally {
        await restored.destroy();
      }
    }
  } finally {
    await c?.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  console.log(
    "\nMB/shard  keys     backup s  MB up    p50/p99 ms without  p50/p99 ms during (n)   restore s  keys after",
  );
  for (const r of results)
    console.log(
      `${String(r.mbPerShard).padEnd(9)} ${String(r.keys).padEnd(8)} ${f(r.backupSeconds).padEnd(9)} ${f(r.bytesUploaded / 1e6).padEnd(8)} ` +
        `${f(r.latencyWithout.p50)}/${f(r.latencyWithout.p99)} (${r.latencyWithout.n})`.padEnd(20) +
        ` ${f(r.latencyDuring.p50)}/${f(r.latencyDuring.p99)} (${r.latencyDuring.n})`.padEnd(25) +
        ` ${f(r.restoreSeconds).padEnd(10)} ${r.restoredKeys ?? "-"}`,
    );
  const out = {
    machine: machine(),
    valueBytes: VALUE_BYTES,
    pauseMs: PAUSE_MS,
    baselineMs: BASELINE_MS,
    dataDir: EC2_PATHS.dataDir,
    results,
  };
  console.log(`results: ${writeResults("backup", out)}`);
  console.log(JSON.stringify(out));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
