/**
 * `npm run local -- top`: a live view of the running local cluster, refreshed every second. Each row is
 * what that node's collector (components/ec2/node/metrics.py, run here in dry-run mode against the node)
 * would publish to CloudWatch for the last second: role, memory, ops/s, hit rate, p99, replication lag.
 *   npm run local -- top          until Ctrl-C
 *   npm run local -- top --once   two collections a second apart, one table, then exit
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ADMIN_USER } from "../components/ec2/node/redisConf";
import { NodeAddress } from "../components/ec2/topology";
import { METRICS_NAMESPACE } from "../components/monitoring/metrics";
import { SCRIPTS_DIR, shq } from "../components/ec2/node/userData";
import { Passwords } from "../lab/passwords";
import { sleep } from "./localCluster";

/** One MetricData entry as the collector prints it. */
export interface CollectorDatum {
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Value: number;
}

export interface TopRow {
  node: string;
  role?: "master" | "replica";
  memoryPercent?: number;
  opsPerSecond?: number;
  hitRate?: number;
  p99Us?: number;
  lagBytes?: number;
  clusterOk?: boolean;
  error?: string;
}

/** A row from one collection of a node (its per-node data points). */
export function topRow(node: string, data: CollectorDatum[]): TopRow {
  const v = (name: string) => data.find((d) => d.MetricName === name && d.Dimensions.length === 3)?.Value;
  const isMaster = v("IsMaster");
  const ok = v("ClusterStateOk");
  return {
    node,
    role: isMaster === undefined ? undefined : isMaster === 1 ? "master" : "replica",
    memoryPercent: v("MemoryPercentOfMaxmemory"),
    opsPerSecond: v("OpsPerSecond"),
    hitRate: v("HitRate"),
    p99Us: v("LatencyP99"),
    lagBytes: v("ReplicationLagBytes"),
    clusterOk: ok === undefined ? undefined : ok === 1,
  };
}

const COLUMNS = ["node", "role", "mem %", "ops/s", "hit %", "p99 us", "lag B", "cluster"] as const;

/** The table, fixed-width; "-" where the figure does not exist yet (no previous collection, no reads). */
export function renderTop(rows: TopRow[], at: Date): string {
  const fmt = (n: number | undefined, digits = 1) => (n === undefined ? "-" : n.toFixed(digits));
  const cells = rows.map((r) =>
    r.error
      ? [r.node, "?", "-", "-", "-", "-", "-", r.error]
      : [
          r.node,
          r.role ?? "-",
          fmt(r.memoryPercent),
          fmt(r.opsPerSecond, 0),
          fmt(r.hitRate),
          fmt(r.p99Us, 0),
          r.role === "replica" ? fmt(r.lagBytes, 0) : "",
          r.clusterOk === undefined ? "-" : r.clusterOk ? "ok" : "NOT ok",
        ],
  );
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [
    `redis-stack local cluster, ${at.toISOString().slice(11, 19)} UTC (Ctrl-C to quit)`,
    line(COLUMNS),
    ...cells.map(line),
  ].join("\n");
}

interface Running {
  nodes: NodeAddress[];
  passwords: Passwords;
  caFile?: string;
}

/** The collector's node.env for a node seen from this machine (no data volume here: no disk figure). */
function nodeEnv(n: NodeAddress, passFile: string, caFile: string | undefined): string {
  return Object.entries({
    NODE_NAME: n.node.name,
    NODE_SHARD: String(n.node.shard),
    NODE_IP: n.ip,
    REDIS_PORT: String(n.port),
    AWS_REGION: "local",
    ADMIN_USER,
    ADMIN_PASS_FILE: passFile,
    TLS: caFile ? "yes" : "no",
    TLS_CA: caFile ?? "",
    DATA_DIR: "/nonexistent",
    METRICS_NAMESPACE,
    METRICS_STACK: "redis-stack-local",
    METRICS_INTERVAL_SECONDS: "1",
  })
    .map(([k, v]) => `${k}=${shq(v)}`)
    .join("\n");
}

function collect(dir: string): Promise<CollectorDatum[]> {
  return new Promise((resolve, reject) => {
    const p = spawn("python3", [
      "-B",
      path.join(SCRIPTS_DIR, "metrics.py"),
      "--dry-run",
      ...["--env", path.join(dir, "node.env"), "--state", path.join(dir, "state.json"), "--log", path.join(dir, "log")],
    ]);
    let out = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`collector exited ${code}`));
      try {
        resolve(JSON.parse(out) as CollectorDatum[]);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

export async function top(running: Running, opts: { once?: boolean; intervalMs?: number } = {}): Promise<void> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "redis-stack-top-"));
  const cleanup = () => fs.rmSync(base, { recursive: true, force: true });
  process.once("exit", cleanup);
  process.once("SIGINT", () => process.exit(0));
  const passFile = path.join(base, "admin.pass");
  fs.writeFileSync(passFile, running.passwords.admin, { mode: 0o600 });
  const dirs = running.nodes.map((n) => {
    const dir = path.join(base, n.node.name);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, "node.env"), nodeEnv(n, passFile, running.caFile), { mode: 0o600 });
    return dir;
  });
  const snapshot = async (): Promise<TopRow[]> =>
    Promise.all(
      running.nodes.map(async (n, i) => {
        try {
          return topRow(n.node.name, await collect(dirs[i]));
        } catch (e) {
          return { node: n.node.name, error: (e as Error).message };
        }
      }),
    );
  await snapshot(); // the first collection only sets the counters' baseline
  for (;;) {
    await sleep(opts.intervalMs ?? 1000);
    const table = renderTop(await snapshot(), new Date());
    if (opts.once) {
      console.log(table);
      return;
    }
    process.stdout.write(`\x1b[2J\x1b[H${table}\n`);
  }
}
