/**
 * `npm run bench:failover`: how long writes to a shard stop when its master's instance dies, for the
 * shipped cluster-node-timeout and two others, and whether the shipped value causes failovers without
 * a fault under load. Needs root (six real Debian hosts booted from the user-data, TLS on as in prod). The
 * instance dies as EC2's do (lab/hosts/hostLab.ts instanceLoss): its packets vanish first (no RST: peers
 * and clients wait for their timeouts), then its processes die.
 *
 * Per node timeout: RUNS (default 20) times { writer on shard 0 -> the master's instance dies -> write gap
 * = last write acknowledged before the death to the first acknowledged after it -> every acknowledged
 * write checked by an outside client (lost ones counted, and whether they fall in asynchronous
 * replication's last second) -> boot the old master again, wait for it to rejoin }. Then, at the default:
 * BENCH_LOAD_SECONDS (default 600) of redis-benchmark (SET, 50 clients, 512 B) with a fork on every master
 * every 30 s (BGSAVE and BGREWRITEAOF in turn), counting failovers (cluster_current_epoch bumps, role changes).
 * In the lab of the default timeout, after the kill -9 runs, RUNS planned stops as well: { writer on shard 0
 * -> clean reboot of its master (the node's ExecStop runs `node.sh handoff`: the replica takes over with
 * CLUSTER FAILOVER before Redis stops) -> the cluster converges with the rebooted node back -> write gap
 * (0 if no write failed) and acknowledged writes the cluster no longer has }.
 * Prints tables and writes bench-results/failover.json.
 *   BENCH_RUNS=10 BENCH_PLANNED_RUNS=10 BENCH_TIMEOUTS=1000,2000,3000 BENCH_LOAD_SECONDS=60 BENCH_LOAD_TIMEOUT=2000
 *   (BENCH_LOAD_SECONDS=0 skips the steady load; BENCH_OUT names the results file)
 * BENCH_FAULT=crash: the victim's redis-server alone is killed (SIGKILL; its instance and systemd live on: the
 * unit's ExecStop has the replica take over, Restart= brings the process back) instead of its instance.
 * BENCH_CLIENTS=ioredis,redis-py,redis-stack-client: each run's fault is measured by one writer per client library,
 * side by side on the same shard (each configured as docs/clients.md says; ioredis alone unless told).
 * `-- --topology sentinel`: the same on the Sentinel topology (one primary, two replicas, three Sentinels;
 * down-after-milliseconds = the node timeout): the victim is the primary the Sentinels name, the writer
 * follows them (REDIS_SENTINELS), a planned stop hands over with SENTINEL FAILOVER, and false failovers
 * count the Sentinels' config-epoch bumps. Writes bench-results/failover-sentinel.json.
 */
import { canRunLab } from "../lab/hosts/hostLab";
import {
  createClusterLab,
  ClusterLab,
  infoField,
  masterOfSlot,
  missingWrites,
  RunningWriter,
  startWriter,
  tagForSlots,
  parseClusterNodes,
  LAB_SENTINEL_MASTER,
} from "../lab/clusterLab";
import { NodeAddress } from "../components/ec2/topology";
import { stackSettings } from "../lab/stackFiles";
import { EC2_PATHS } from "../components/ec2/node/redisConf";
import { sleep } from "../local/localCluster";
import { DEFAULT_NODE_TIMEOUT_MS, Settings } from "../components/config/settings";
import { machine, stats, Stats, writeResults } from "./benchUtil";
import { longestSilence, writeGap, WRITER_CLIENTS, WriterClient } from "../lab/writer";

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
/** Planned stops (clean reboots) in the default's lab; RUNS unless told. */
const PLANNED_RUNS = Number(process.env.BENCH_PLANNED_RUNS ?? RUNS);
const TIMEOUTS = (process.env.BENCH_TIMEOUTS ?? `1000,${DEFAULT_NODE_TIMEOUT_MS},3000`)
  .split(",")
  .filter((t) => t !== "")
  .map(Number);
/** The node timeout the steady-load run checks for false failovers (the shipped default unless told). */
const LOAD_TIMEOUT = Number(process.env.BENCH_LOAD_TIMEOUT ?? DEFAULT_NODE_TIMEOUT_MS);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 600);
/** During the steady load, every master forks this often (BGSAVE and BGREWRITEAOF in turn). */
const FORK_EVERY_S = 30;
/** Asynchronous replication: a write the dying master acknowledged this shortly before may be gone. */
const REPLICATION_WINDOW_MS = 1000;
/** The node timeout whose lab also runs the planned stops (the shipped default). */
const PLANNED_TIMEOUT = DEFAULT_NODE_TIMEOUT_MS;
const topologyArg = process.argv.indexOf("--topology");
const TOPOLOGY = topologyArg >= 0 ? process.argv[topologyArg + 1] : "cluster";
if (TOPOLOGY !== "cluster" && TOPOLOGY !== "sentinel") {
  console.error(`--topology takes cluster or sentinel (got ${TOPOLOGY})`);
  process.exit(2);
}
const SENTINEL = TOPOLOGY === "sentinel";
/** What kills the victim: its instance (silent, then its processes die) or its redis-server alone. */
const FAULT = process.env.BENCH_FAULT ?? "instance";
if (FAULT !== "instance" && FAULT !== "crash") {
  console.error(`BENCH_FAULT takes instance or crash (got ${FAULT})`);
  process.exit(2);
}
const CLIENTS = (process.env.BENCH_CLIENTS ?? "ioredis").split(",").filter((x) => x !== "") as WriterClient[];
const unknownClient = CLIENTS.find((x) => !WRITER_CLIENTS.includes(x));
if (unknownClient !== undefined || CLIENTS.length === 0) {
  console.error(`BENCH_CLIENTS takes a list of ${WRITER_CLIENTS.join(", ")} (got ${process.env.BENCH_CLIENTS})`);
  process.exit(2);
}
const FAULT_TEXT =
  FAULT === "crash"
    ? "the master's redis-server is killed (SIGKILL)"
    : "the master's instance dies (silent, then killed)";
const base = stackSettings(
  "prod",
  "redis-stack",
  SENTINEL ? { topology: "sentinel", shards: "", replicasPerShard: "" } : {},
);

/**
 * SIGKILL of the victim's redis-server alone, the instance and its systemd alive (an OOM kill, a segfault):
 * the unit's ExecStop has the replica take over at once, and Restart= brings the process back as a replica.
 */
async function crashRedis(host: ClusterLab["hosts"][number]): Promise<number> {
  const pid = (await host.sh("systemctl show -p MainPID --value redis-node")).stdout.trim();
  if (!/^[1-9][0-9]*$/.test(pid)) throw new Error(`${host.name}: redis-node has no main process (${pid})`);
  const at = Date.now();
  const r = await host.sh(`kill -KILL ${pid}`);
  if (r.code !== 0) throw new Error(`${host.name}: kill -KILL ${pid}: ${r.stderr}`);
  return at;
}

/** The promoted replica's own account of its takeover (redis-node-watch), from its log. */
async function watcherTakeover(
  c: ClusterLab,
  survivors: NodeAddress[],
  victimId: string,
  killedAt: number,
): Promise<{ detectedInMs: number; takeoverMs: number; how: string } | undefined> {
  const promoted = await masterOfSlot(c, 0, survivors);
  const log = (await c.hosts[promoted.node.index].sh("cat /var/log/redis-stack.log")).stdout;
  const re = new RegExp(
    `watch: master ${victimId} failed \\((.*?)\\); .* at once, (\\d+) ms after seeing the flag \\(at (\\d+) ms since the epoch\\)`,
    "g",
  );
  // The same two nodes trade places run after run: only a takeover after this run's fault counts.
  const last = [...log.matchAll(re)].filter((m) => Number(m[3]) >= killedAt).pop();
  if (!last) return undefined;
  return { detectedInMs: Number(last[3]) - killedAt, takeoverMs: Number(last[2]), how: last[1] };
}

/** The node whose death the runs measure: the master of shard 0, or the primary the Sentinels name. */
async function victimOf(c: ClusterLab): Promise<NodeAddress> {
  if (!SENTINEL) return masterOfSlot(c, 0);
  const [named] = await c.sentinelPrimaries();
  const n = c.nodes.find((x) => `${x.ip}:${x.port}` === named);
  if (!n) throw new Error(`the Sentinels name no node of the lab (${named})`);
  return n;
}
/** The writer's keys: in shard 0's slots (cluster), anything (one primary holds every key). */
const tagFor = (salt: string) => (SENTINEL ? `s${salt}` : tagForSlots(0, 5460, salt));

function withTimeout(ms: number): Settings {
  if (!base.ec2) throw new Error("prod must be ec2");
  return { ...base, ec2: { ...base.ec2, nodeTimeoutMs: ms } };
}

async function bootLab(settings: Settings): Promise<ClusterLab> {
  const c = await createClusterLab(settings);
  const boots = await c.boot();
  if (boots.some((b) => b.status !== "done")) throw new Error("cloud-init did not finish every user-data");
  await c.waitConverged(60000);
  return c;
}

/** What one client's writer saw of one fault. */
interface ClientSeen {
  writeGapMs: number;
  acked: number;
  /** Acknowledged writes the cluster no longer has, as ms from the fault (negative: acknowledged before it). */
  lostAtMs: number[];
}

interface FailoverRun {
  promotedInMs: number;
  /**
   * Redis Cluster, instance loss: from the fault until the promoted replica's watcher saw the cluster's FAIL
   * flag (detection), and from there until it had taken over (takeover), from its log; absent when Redis's
   * own election promoted it.
   */
  detectedInMs?: number;
  takeoverMs?: number;
  /** What the watcher acted on: "a quorum of the masters lost it" (asked directly) or "the cluster's FAIL flag". */
  how?: string;
  clients: Partial<Record<WriterClient, ClientSeen>>;
}

interface PlannedStopRun {
  /** From the reboot call until every node, the rebooted one included, sees the cluster whole again. */
  backInClusterMs: number;
  clients: Partial<Record<WriterClient, ClientSeen>>;
}

/** One writer per client library on the same shard, each with its own keys. */
async function startWriters(c: ClusterLab, salt: string): Promise<Map<WriterClient, RunningWriter>> {
  const writers = new Map<WriterClient, RunningWriter>();
  for (const client of CLIENTS) writers.set(client, await startWriter(c, tagFor(`${salt}${client[0]}`), { client }));
  return writers;
}

/** Stops every writer; its gap (`gapOf` its acknowledged writes) and the acknowledged writes it lost. */
async function judgeWriters(
  c: ClusterLab,
  writers: Map<WriterClient, RunningWriter>,
  faultAt: number,
  gapOf: (acked: Array<[number, number]>) => number,
): Promise<Partial<Record<WriterClient, ClientSeen>>> {
  const seen: Partial<Record<WriterClient, ClientSeen>> = {};
  for (const [client, w] of writers) {
    const res = await w.stop();
    const missing = new Set(
      await missingWrites(
        c,
        w.tag,
        res.acked.map(([seq]) => seq),
      ),
    );
    seen[client] = {
      writeGapMs: gapOf(res.acked),
      acked: res.acked.length,
      lostAtMs: res.acked.filter(([seq]) => missing.has(seq)).map(([, t]) => t - faultAt),
    };
  }
  return seen;
}

const describe = (seen: Partial<Record<WriterClient, ClientSeen>>) =>
  CLIENTS.map((client) => {
    const x = seen[client];
    if (!x) return `${client}: no result`;
    return `${client}: write gap ${(x.writeGapMs / 1000).toFixed(2)} s, ${x.lostAtMs.length} of ${x.acked} acknowledged writes lost${x.lostAtMs.length > 0 ? ` (acknowledged ${x.lostAtMs.join(", ")} ms from the fault)` : ""}`;
  }).join("; ");

/** PLANNED_RUNS clean reboots of the master of shard 0 (its ExecStop hands over first), on a running lab. */
async function plannedStopRuns(c: ClusterLab, nodeTimeoutMs: number): Promise<PlannedStopRun[]> {
  const runs: PlannedStopRun[] = [];
  for (let i = 0; i < PLANNED_RUNS; i++) {
    const victim = await victimOf(c);
    const host = c.hosts[c.nodes.indexOf(victim)];
    const writers = await startWriters(c, `p${i}`);
    await sleep(500);
    const stoppedAt = Date.now();
    await host.reboot({ timeoutMs: 180000 });
    const booted = await host.waitBooted(180000);
    if (booted !== "running" && booted !== "degraded") throw new Error(`${host.name} after its reboot: ${booted}`);
    await c.waitConverged(120000);
    const backInClusterMs = Date.now() - stoppedAt;
    await c.waitFailoverReady(120000);
    await sleep(1000);
    // The longest stop between two acknowledged writes over the whole reboot (the writers never pause).
    const clients = await judgeWriters(c, writers, stoppedAt, (acked) =>
      longestSilence(acked.filter(([, t]) => t >= stoppedAt - 1000)),
    );
    runs.push({ backInClusterMs, clients });
    console.log(
      `  node-timeout ${nodeTimeoutMs} ms, planned stop ${i + 1}/${PLANNED_RUNS} (reboot of ${host.name}): ${describe(clients)} (cluster whole again after ${(backInClusterMs / 1000).toFixed(2)} s)`,
    );
  }
  return runs;
}

async function failoverRuns(
  nodeTimeoutMs: number,
  withPlannedStops: boolean,
): Promise<{ runs: FailoverRun[]; planned?: PlannedStopRun[] }> {
  const c = await bootLab(withTimeout(nodeTimeoutMs));
  const runs: FailoverRun[] = [];
  let planned: PlannedStopRun[] | undefined;
  try {
    for (let i = 0; i < RUNS; i++) {
      const victim = await victimOf(c);
      const survivors = c.nodes.filter((n) => n !== victim);
      const writers = await startWriters(c, `b${i}`);
      await sleep(500);
      const host = c.hosts[victim.node.index];
      const victimId = SENTINEL ? "" : (await c.cli(victim, ["cluster", "myid"])).stdout.trim();
      const killedAt = FAULT === "crash" ? await crashRedis(host) : await host.instanceLoss();
      const promotedInMs = await c.waitConverged(60000, survivors);
      const watched = SENTINEL ? undefined : await watcherTakeover(c, survivors, victimId, killedAt);
      // The slowest client may still be on its way back: every writer gets a write through before it stops.
      await sleep(CLIENTS.length > 1 ? 5000 : 1000);
      // A crash lands a round trip after killedAt (the kill runs on the host): the longest stop between two
      // acknowledged writes from just before it, rather than "the first write after killedAt", which may
      // still be the old master's. An instance loss is silent from killedAt on.
      const clients = await judgeWriters(c, writers, killedAt, (acked) =>
        FAULT === "crash"
          ? longestSilence(acked.filter(([, t]) => t >= killedAt - 1000))
          : writeGap(acked, killedAt).ms,
      );
      runs.push({ promotedInMs, clients, ...watched });
      console.log(
        `  node-timeout ${nodeTimeoutMs} ms, run ${i + 1}/${RUNS}: ${describe(clients)} (cluster converged without the victim after ${(promotedInMs / 1000).toFixed(2)} s${watched ? `; the replica saw its master lost (${watched.how}) after ${(watched.detectedInMs / 1000).toFixed(2)} s, took over ${watched.takeoverMs} ms later` : ""})`,
      );
      // A crashed process is brought back by its unit (RestartSec); a dead instance boots again.
      if (FAULT === "instance") await host.start();
      await c.waitConverged(120000);
      // The next run starts once the returned node is a failover candidate again (as a node's own status says).
      await c.waitFailoverReady(120000);
    }
    if (withPlannedStops) {
      console.log(
        `node-timeout ${nodeTimeoutMs} ms: ${PLANNED_RUNS} x planned stop (clean reboot) of the master of shard 0`,
      );
      planned = await plannedStopRuns(c, nodeTimeoutMs);
    }
  } finally {
    await c.destroy();
  }
  return { runs, planned };
}

/** redis-benchmark -q, stopped by SIGINT, leaves progress lines: keep each test's last overall rate. */
function benchmarkSummary(text: string): string {
  const last = new Map<string, string>();
  for (const m of text.replace(/\r/g, "\n").matchAll(/^(\w+): rps=[\d.]+ \(overall: ([\d.]+)\)/gm))
    last.set(m[1], m[2]);
  for (const m of text.matchAll(/^(\w+): ([\d.]+) requests per second/gm)) last.set(m[1], m[2]);
  return last.size === 0
    ? `no throughput figures (output: ${text.trim().slice(-200)})`
    : [...last].map(([t, r]) => `${t} ${Math.round(Number(r))} ops/s`).join(", ");
}

interface LoadResult {
  seconds: number;
  failovers: number;
  epochBefore: number;
  epochAfter: number;
  rolesChanged: number;
  benchmarkTail: string;
  /** What the nodes' own logs say happened: stalls Redis reported, and the Sentinels' down and failover events. */
  evidence: string[];
  /**
   * The error replies each master counted during the load (INFO errorstats, e.g. NOREPLICAS when a Sentinel
   * primary refused writes for lack of a replica acknowledgement): a failover is not the only way a load
   * can fail.
   */
  errorReplies: string[];
}

/** Log lines that explain a failover without a fault (or show there was none), per host. */
const LOAD_EVIDENCE =
  "Asynchronous AOF fsync is taking too long|[+]sdown|[+]odown|[+]switch-master|[+]failover-state|FAIL message received|Failover election|Marking node .* as failing";

async function loadEvidence(c: ClusterLab): Promise<string[]> {
  const out: string[] = [];
  for (const [i, n] of c.nodes.entries()) {
    const r = await c.hosts[i].sh(
      `{ cat ${EC2_PATHS.logDir}/redis-node.log; journalctl -u redis-node-sentinel --no-pager -o cat 2>/dev/null; } | grep -E '${LOAD_EVIDENCE}' | tail -n 20 || true`,
    );
    for (const line of r.stdout
      .trim()
      .split("\n")
      .filter((l) => l !== ""))
      out.push(`${n.ip}: ${line}`);
  }
  return out;
}

async function steadyLoad(nodeTimeoutMs: number): Promise<LoadResult> {
  const c = await bootLab(withTimeout(nodeTimeoutMs));
  try {
    const view = async () => {
      if (SENTINEL) {
        // Every failover bumps the Sentinels' config epoch for the master name.
        const lines = (await c.sentinelCli(c.nodes[0], ["sentinel", "master", LAB_SENTINEL_MASTER])).stdout
          .trim()
          .split("\n");
        return {
          epoch: Number(lines[lines.indexOf("config-epoch") + 1]),
          masters: (await c.sentinelPrimaries()).join(","),
        };
      }
      const info = (await c.cli(c.nodes[0], ["cluster", "info"])).stdout;
      const nodes = parseClusterNodes((await c.cli(c.nodes[0], ["cluster", "nodes"])).stdout);
      return {
        epoch: Number(infoField(info, "cluster_current_epoch")),
        masters: nodes
          .filter((l) => l.flags.includes("master"))
          .map((l) => l.addr)
          .sort()
          .join(","),
      };
    };
    const before = await view();
    const first = SENTINEL ? await victimOf(c) : c.nodes[0];
    const bench = c.lab.client.exec(
      [
        "timeout",
        "-s",
        "INT",
        String(LOAD_SECONDS),
        "redis-benchmark",
        ...(SENTINEL ? [] : ["--cluster"]),
        "-h",
        first.ip,
        "-p",
        String(first.port),
        "--user",
        "app",
        "-a",
        c.passwords.app,
        "--tls",
        "--cacert",
        c.clientCa ?? "",
        "-t",
        "set",
        "-c",
        "50",
        "-d",
        "512",
        "-r",
        "200000",
        "-n",
        "100000000",
        "-q",
      ],
      { timeoutMs: (LOAD_SECONDS + 30) * 1000 },
    );
    const masters = SENTINEL ? [first] : c.nodes.filter((n) => n.node.role === "master");
    const everyMaster = (cmd: string[]) => Promise.all(masters.map((m) => c.cli(m, cmd)));
    // A fork on every master every FORK_EVERY_MS, RDB saves and AOF rewrites in turn (SCHEDULE: a save
    // asked while a rewrite still runs starts after it instead of being refused).
    const at = Array.from(
      { length: Math.max(1, Math.floor(LOAD_SECONDS / FORK_EVERY_S) - 1) },
      (_, i) => (i + 1) * FORK_EVERY_S * 1000,
    );
    const started = Date.now();
    for (const [i, t] of at.entries()) {
      await sleep(Math.max(0, started + t - Date.now()));
      await everyMaster(i % 2 === 0 ? ["bgsave", "schedule"] : ["bgrewriteaof"]);
      console.log(
        `  load: ${i % 2 === 0 ? "BGSAVE" : "BGREWRITEAOF"} on every master at ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
    }
    await everyMaster(["bgrewriteaof"]);
    const out = await bench;
    const errorReplies = (await everyMaster(["info", "errorstats"])).flatMap((r, i) =>
      r.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.startsWith("errorstat_"))
        .map((l) => `${masters[i].ip}: ${l}`),
    );
    const after = await view();
    const evidence = await loadEvidence(c);
    for (const line of evidence) console.log(`  load evidence: ${line}`);
    return {
      seconds: LOAD_SECONDS,
      failovers: after.epoch - before.epoch,
      epochBefore: before.epoch,
      epochAfter: after.epoch,
      rolesChanged: before.masters === after.masters ? 0 : 1,
      benchmarkTail: benchmarkSummary(out.stdout + out.stderr),
      evidence,
      errorReplies,
    };
  } finally {
    await c.destroy();
  }
}

async function main(): Promise<void> {
  const can = canRunLab();
  if (!can.ok) {
    console.error(`bench:failover needs the lab hosts: ${can.reason}`);
    process.exit(2);
  }
  /** One row per node timeout and client library. */
  const table: Array<{
    nodeTimeoutMs: number;
    client: WriterClient;
    gap: Stats;
    promoted: Stats;
    lost: { total: number; outsideReplicationWindow: number };
  }> = [];
  const planned: Array<{
    nodeTimeoutMs: number;
    client: WriterClient;
    gap: Stats;
    backInCluster: Stats;
    lost: number;
  }> = [];
  const rawRuns: Array<{ nodeTimeoutMs: number; failover: FailoverRun[]; plannedStop?: PlannedStopRun[] }> = [];
  for (const t of TIMEOUTS) {
    console.log(
      SENTINEL
        ? `Sentinel topology, down-after ${t} ms: ${RUNS} x ${FAULT_TEXT.replace("master", "primary")}; clients ${CLIENTS.join(", ")}`
        : `cluster-node-timeout ${t} ms: ${RUNS} x ${FAULT_TEXT} (shard 0); clients ${CLIENTS.join(", ")}`,
    );
    const withPlanned = t === PLANNED_TIMEOUT && PLANNED_RUNS > 0;
    const { runs, planned: stops } = await failoverRuns(t, withPlanned);
    rawRuns.push({ nodeTimeoutMs: t, failover: runs, ...(stops ? { plannedStop: stops } : {}) });
    const watchedRuns = runs.filter((r) => r.detectedInMs !== undefined && r.takeoverMs !== undefined);
    if (watchedRuns.length > 0) {
      // Where the gap went: detection (fault -> the FAIL flag seen), takeover, then the client's share.
      const client = CLIENTS[0];
      const share = watchedRuns
        .map((r) => (r.clients[client]?.writeGapMs ?? Number.NaN) - (r.detectedInMs ?? 0) - (r.takeoverMs ?? 0))
        .filter((x) => !Number.isNaN(x));
      const line = (name: string, x: Stats) =>
        `${name} median ${x.median} ms, p95 ${x.n >= 20 ? `${x.p95} ms` : "-"}, max ${x.max} ms`;
      const byQuorum = watchedRuns.filter((r) => r.how?.startsWith("a quorum")).length;
      console.log(
        `  breakdown at ${t} ms over ${watchedRuns.length} runs the watcher took over (of ${runs.length}; ${byQuorum} on the masters' quorum, ${watchedRuns.length - byQuorum} on the FAIL flag): ` +
          [
            line("detection (quorum or FAIL flag seen)", stats(watchedRuns.map((r) => r.detectedInMs ?? 0))),
            line("takeover", stats(watchedRuns.map((r) => r.takeoverMs ?? 0))),
            line(`${client}'s share (its gap minus both)`, stats(share)),
          ].join("; "),
      );
    }
    for (const client of CLIENTS) {
      const seen = runs.map((r) => r.clients[client]).filter((x): x is ClientSeen => x !== undefined);
      const lostAt = seen.flatMap((x) => x.lostAtMs);
      table.push({
        nodeTimeoutMs: t,
        client,
        gap: stats(seen.map((x) => x.writeGapMs)),
        promoted: stats(runs.map((r) => r.promotedInMs)),
        lost: {
          total: lostAt.length,
          outsideReplicationWindow: lostAt.filter((ms) => ms < -REPLICATION_WINDOW_MS || ms > 0).length,
        },
      });
      if (stops) {
        const ps = stops.map((r) => r.clients[client]).filter((x): x is ClientSeen => x !== undefined);
        planned.push({
          nodeTimeoutMs: t,
          client,
          gap: stats(ps.map((x) => x.writeGapMs)),
          backInCluster: stats(stops.map((r) => r.backInClusterMs)),
          lost: ps.reduce((sum, x) => sum + x.lostAtMs.length, 0),
        });
      }
    }
  }
  let load: LoadResult | undefined;
  if (LOAD_SECONDS > 0) {
    console.log(
      `steady load at node-timeout ${LOAD_TIMEOUT} ms: ${LOAD_SECONDS} s of redis-benchmark with BGSAVE/BGREWRITEAOF on every master`,
    );
    load = await steadyLoad(LOAD_TIMEOUT);
  }

  const s = (ms: number) => (ms / 1000).toFixed(2);
  // Nearest-rank p95 over fewer than 20 runs is the maximum: it is then shown as "-".
  const p95 = (x: Stats) => (x.n >= 20 ? s(x.p95) : "  -  ");
  console.log(
    `\nwrite unavailability on the affected shard when ${FAULT_TEXT} (seconds, ${FAULT === "crash" ? "the longest stop between acknowledged writes from 1 s before the kill on" : "last ack before -> first after"})`,
  );
  console.log(
    "node-timeout  client              n    median  p95    max    | lost (outside the 1 s window) | healthy again: median  p95",
  );
  for (const r of table) {
    const mark = r.nodeTimeoutMs === DEFAULT_NODE_TIMEOUT_MS ? " (default)" : "";
    console.log(
      `${String(r.nodeTimeoutMs).padStart(6)} ms     ${r.client.padEnd(18)}  ${String(r.gap.n).padStart(3)}  ${s(r.gap.median)}    ${p95(r.gap)}   ${s(r.gap.max)}   | ${String(r.lost.total).padStart(4)} (${r.lost.outsideReplicationWindow})                     |                ${s(r.promoted.median)}   ${p95(r.promoted)}${mark}`,
    );
  }
  if (planned.length > 0) {
    console.log(
      "\nwrite unavailability after a planned stop of the master (clean reboot: ExecStop hands over before Redis stops)",
    );
    console.log(
      "node-timeout  client              runs  median  p95    max    | lost writes | rebooted node back, cluster whole: median  p95",
    );
    for (const p of planned)
      console.log(
        `${String(p.nodeTimeoutMs).padStart(6)} ms     ${p.client.padEnd(18)}  ${String(p.gap.n).padStart(3)}   ${s(p.gap.median)}    ${p95(p.gap)}   ${s(p.gap.max)}   | ${String(p.lost).padStart(11)} |                                    ${s(p.backInCluster.median)}  ${p95(p.backInCluster)}`,
      );
  } else console.log(`\nplanned stop: skipped (BENCH_TIMEOUTS has no ${PLANNED_TIMEOUT}, or BENCH_PLANNED_RUNS=0)`);
  console.log(
    load
      ? `\nfailovers without a fault during ${load.seconds} s of load at ${LOAD_TIMEOUT} ms: ${load.failovers} (epoch ${load.epochBefore} -> ${load.epochAfter}); ${load.benchmarkTail}; error replies: ${load.errorReplies.length > 0 ? load.errorReplies.join(", ") : "none"}`
      : "\nsteady load: skipped (BENCH_LOAD_SECONDS=0)",
  );
  const file = writeResults(process.env.BENCH_OUT ?? (SENTINEL ? "failover-sentinel" : "failover"), {
    machine: machine(),
    topology: TOPOLOGY,
    fault: FAULT,
    tls: base.tls,
    defaultNodeTimeoutMs: DEFAULT_NODE_TIMEOUT_MS,
    clients: CLIENTS,
    failover: table,
    plannedStop: planned,
    runs: rawRuns,
    steadyLoad: load ? { nodeTimeoutMs: LOAD_TIMEOUT, ...load } : { skipped: "BENCH_LOAD_SECONDS=0" },
  });
  console.log(`written to ${file}`);
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
