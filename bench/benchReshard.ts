/**
 * `npm run bench:reshard`: how long the prod cluster takes to grow from 3 to 4 shards online with a data
 * set in it, and what the writers see meanwhile. Needs root (six real Debian hosts booted from the
 * user-data, TLS on as in prod; the lab's `deploy` does what `pulumi up` does: boots the new shard's two
 * hosts from their user-data and rewrites the desired settings; the nodes reshard by themselves).
 *
 * One run: load BENCH_KEYS keys spread over every slot -> one writer per original master (a hash tag in
 * its slot range, a SET every 2 ms + round trip) -> deploy shards = 4 while `cluster nodes` is polled
 * every 1 s -> time until the new shard's master serves its first slot and until the slots are even
 * (4 masters, each 4096 +- 1, none open) -> writers stopped, acknowledged writes and every loaded key
 * checked. BENCH_SHRINK=1 then also deploys shards = 3 again (the leaving shard drains, then its hosts
 * are deleted) with a writer on each of the four masters.
 * Prints a table, writes bench-results/reshard.json and ends with the same figures as one JSON line.
 *   BENCH_KEYS=100000 BENCH_SHRINK=1
 */
import { canRunLab } from "../lab/hosts/hostLab";
import {
  ClusterLab,
  createClusterLab,
  infoField,
  keySet,
  missingWrites,
  parseClusterNodes,
  RunningWriter,
  startWriter,
  tagForSlots,
} from "../lab/clusterLab";
import { WriteResult } from "../lab/writer";
import { Settings } from "../components/config/settings";
import { TOTAL_SLOTS } from "../components/ec2/topology";
import { stackSettings } from "../lab/stackFiles";
import { sleep } from "../local/localCluster";
import { machine, writeResults } from "./benchUtil";

const KEYS = Number(process.env.BENCH_KEYS ?? 100000);
const SHRINK = process.env.BENCH_SHRINK === "1";
const INTERVAL_MS = 2;
/** Writers measure the steady state this long before the deploy (the baseline of their inter-ack intervals). */
const BASELINE_MS = 5000;
/** Give up polling this long after the deploy call. */
const POLL_LIMIT_MS = 900_000;
/** startWriter's writers end by themselves after 300 s: a writer whose last ack is older than this at stop ran out. */
const WRITER_STALE_MS = 5000;
const settings = stackSettings("prod");
const log = (line: string) => console.log(line);

/** Nearest-rank percentile (NaN for no values). */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
}

interface MasterSlots {
  addr: string;
  /** Slots it serves (importing/migrating markers not counted). */
  slots: number;
  /** Its first served range, "a-b" or "a". */
  firstRange?: string;
}

interface SlotView {
  masters: MasterSlots[];
  /** Some slot is importing or migrating ("[" in a line). */
  open: boolean;
  total: number;
}

function countSlots(entries: string[]): number {
  return entries
    .filter((s) => !s.startsWith("["))
    .reduce((sum, s) => {
      const [lo, hi] = s.split("-").map(Number);
      return sum + (hi === undefined ? 1 : hi - lo + 1);
    }, 0);
}

/** The slot map as shard0-0 sees it (undefined when it does not answer). */
async function slotView(c: ClusterLab): Promise<SlotView | undefined> {
  const r = await c.cli("shard0-0", ["cluster", "nodes"], "admin", 3000);
  if (r.code !== 0 || r.stdout.trim() === "") return undefined;
  const lines = parseClusterNodes(r.stdout);
  const masters = lines
    .filter((l) => l.flags.includes("master") && !l.flags.some((f) => f.startsWith("fail")))
    .map((l) => ({
      addr: l.addr,
      slots: countSlots(l.slots),
      firstRange: l.slots.find((s) => !s.startsWith("[")),
    }))
    .filter((m) => m.slots > 0);
  return {
    masters,
    open: r.stdout.split("\n").some((l) => l.includes("[")),
    total: masters.reduce((sum, m) => sum + m.slots, 0),
  };
}

function even(v: SlotView, shards: number): boolean {
  const share = TOTAL_SLOTS / shards;
  return (
    v.masters.length === shards &&
    !v.open &&
    v.total === TOTAL_SLOTS &&
    v.masters.every((m) => Math.abs(m.slots - share) <= 1)
  );
}

const describeView = (v: SlotView | undefined) =>
  v
    ? `${v.masters.map((m) => `${m.addr}=${m.slots}`).join(" ")}${v.open ? " (open slots)" : ""}, ${v.total} served`
    : "shard0-0 did not answer";

interface WriterFigures {
  tag: string;
  slots: string;
  acked: number;
  maxGapMs: number;
  /** Writes still failing when the writer stopped (a gap without an end). */
  unfinishedGap: boolean;
  gaps: number;
  lost: number;
  /** The writer's last ack was recent when it was stopped (it did not run out its own 300 s first). */
  coveredToStop: boolean;
  /** Intervals between consecutive acknowledged writes (ms) in the window, each including the 2 ms pause. */
  interAck: { p50: number; p99: number; max: number; n: number };
  interAckBaseline: { p50: number; p99: number; n: number };
}

function intervals(acked: Array<[number, number]>, from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = 1; i < acked.length; i++) {
    const t = acked[i][1];
    if (t > from && t <= to) out.push(t - acked[i - 1][1]);
  }
  return out;
}

async function startWriters(c: ClusterLab, ranges: Array<[number, number]>, salt: string): Promise<RunningWriter[]> {
  return Promise.all(ranges.map(([lo, hi]) => startWriter(c, tagForSlots(lo, hi, salt), { intervalMs: INTERVAL_MS })));
}

async function stopWriters(
  c: ClusterLab,
  writers: RunningWriter[],
  ranges: Array<[number, number]>,
  baseline: [number, number],
  window: [number, number],
): Promise<WriterFigures[]> {
  const stoppedAt = Date.now();
  const results: WriteResult[] = await Promise.all(writers.map((w) => w.stop()));
  return Promise.all(
    results.map(async (r, k) => {
      const lost = await missingWrites(
        c,
        writers[k].tag,
        r.acked.map(([seq]) => seq),
      );
      const during = intervals(r.acked, window[0], window[1]);
      const before = intervals(r.acked, baseline[0], baseline[1]);
      const finished = r.gaps.filter((g) => Number.isFinite(g.ms));
      const lastAck = r.acked.length > 0 ? r.acked[r.acked.length - 1][1] : 0;
      return {
        tag: writers[k].tag,
        slots: `${ranges[k][0]}-${ranges[k][1]}`,
        acked: r.acked.length,
        maxGapMs: Math.max(0, ...finished.map((g) => g.ms)),
        unfinishedGap: finished.length < r.gaps.length,
        gaps: r.gaps.length,
        lost: lost.length,
        coveredToStop: stoppedAt - lastAck < WRITER_STALE_MS,
        interAck: {
          p50: percentile(during, 0.5),
          p99: percentile(during, 0.99),
          max: during.length > 0 ? Math.max(...during) : Number.NaN,
          n: during.length,
        },
        interAckBaseline: { p50: percentile(before, 0.5), p99: percentile(before, 0.99), n: before.length },
      };
    }),
  );
}

/** Each serving master's first slot range, as writer targets. */
function rangesOf(v: SlotView): Array<[number, number]> {
  return v.masters.map((m) => {
    const [lo, hi] = (m.firstRange ?? "0").split("-").map(Number);
    return [lo, hi ?? lo];
  });
}

/** Deploys `next` while polling the slot map every second until `done(view)` holds and the deploy returned. */
async function deployAndWatch(
  c: ClusterLab,
  next: Settings,
  watch: (view: SlotView, sinceDeployMs: number) => boolean,
): Promise<{ deployMs: number; convergedMs: number; added: string[]; removed: string[]; last?: SlotView }> {
  const t0 = Date.now();
  let deployed: { ms: number; convergedMs: number; added: string[]; removed: string[] } | undefined;
  let failed: unknown;
  const deploying = c.deploy(next, { timeoutMs: POLL_LIMIT_MS, log }).then(
    (r) => {
      deployed = { ms: Date.now() - t0, convergedMs: r.convergedMs, added: r.added, removed: r.removed };
    },
    (e: unknown) => {
      failed = e ?? new Error("deploy failed");
    },
  );
  let last: SlotView | undefined;
  let done = false;
  for (let tick = 1; ; tick++) {
    if (failed !== undefined) break;
    last = await slotView(c);
    if (last && !done) done = watch(last, Date.now() - t0);
    if (done && deployed) break;
    if (Date.now() - t0 > POLL_LIMIT_MS)
      throw new Error(
        `after ${POLL_LIMIT_MS / 1000} s: deploy ${deployed ? "returned" : "still running"}; slots: ${describeView(last)}`,
      );
    await sleep(Math.max(0, t0 + tick * 1000 - Date.now()));
  }
  await deploying;
  if (failed !== undefined || !deployed) {
    const e = failed instanceof Error ? failed : new Error(String(failed));
    e.message = `deploy failed: ${e.message}; slots as shard0-0 saw them: ${describeView(last)}`;
    throw e;
  }
  return {
    deployMs: deployed.ms,
    convergedMs: deployed.convergedMs,
    added: deployed.added,
    removed: deployed.removed,
    last,
  };
}

interface ShrinkFigures {
  deployMs: number;
  convergedMs: number;
  removed: string[];
  slotsAfter: string;
  writers: WriterFigures[];
  keysMissing: number;
}

async function run(c: ClusterLab) {
  const boots = await c.boot();
  if (boots.some((b) => b.status !== "done")) throw new Error("cloud-init did not finish every user-data");
  await c.waitConverged(60000);
  log(`cluster formed; loading ${KEYS} keys over every slot`);

  const loadStarted = Date.now();
  const notLoaded = await keySet(c, "load", "bench", KEYS);
  const loadMs = Date.now() - loadStarted;
  if (notLoaded.length > 0) throw new Error(`load: ${notLoaded.length} keys not written`);
  const masters = c.nodes.filter((n) => n.node.role === "master");
  const perMaster = await Promise.all(
    masters.map(async (m) => {
      const role = (await c.cli(m, ["role"])).stdout.split("\n")[0];
      if (role !== "master") throw new Error(`${m.node.name} is ${role}, not master, before the reshard`);
      return Number(infoField((await c.cli(m, ["info", "memory"])).stdout, "used_memory_dataset"));
    }),
  );
  const datasetBytes = perMaster.reduce((a, b) => a + b, 0);
  log(
    `loaded ${KEYS} keys in ${(loadMs / 1000).toFixed(1)} s; used_memory_dataset per master ${perMaster.join(", ")} = ${datasetBytes} bytes`,
  );

  const original = new Set(c.nodes.map((n) => `${n.ip}:${n.port}`));
  const ranges = masters.map((m): [number, number] => [m.node.slots.start, m.node.slots.end]);
  const writers = await startWriters(c, ranges, "r");
  const baselineFrom = Date.now();
  await sleep(BASELINE_MS);

  const s4: Settings = { ...settings, ec2: { ...settings.ec2!, shards: 4 } };
  const deployAt = Date.now();
  let firstSlotMs: number | undefined;
  let rebalanceMs: number | undefined;
  log("deploying shards = 4");
  const grow = await deployAndWatch(c, s4, (v, ms) => {
    if (firstSlotMs === undefined && v.masters.some((m) => !original.has(m.addr))) {
      firstSlotMs = ms;
      log(`  new shard's master serves its first slot ${(ms / 1000).toFixed(1)} s after the deploy call`);
    }
    if (even(v, 4)) {
      rebalanceMs = ms;
      log(`  slots even ${(ms / 1000).toFixed(1)} s after the deploy call: ${describeView(v)}`);
      return true;
    }
    return false;
  });
  if (firstSlotMs === undefined || rebalanceMs === undefined) throw new Error("unreachable: no rebalance time");
  const movedSlots =
    grow.last?.masters.filter((m) => !original.has(m.addr)).reduce((sum, m) => sum + m.slots, 0) ?? Number.NaN;
  const growWriters = await stopWriters(
    c,
    writers,
    ranges,
    [baselineFrom, deployAt],
    [deployAt, deployAt + rebalanceMs],
  );
  const keysMissing = (await keySet(c, "check", "bench", KEYS)).length;

  let shrink: ShrinkFigures | undefined;
  if (SHRINK) {
    const view = await slotView(c);
    if (!view || !even(view, 4)) throw new Error(`before the shrink: ${describeView(view)}`);
    const shrinkRanges = rangesOf(view);
    const shrinkWriters = await startWriters(c, shrinkRanges, "s");
    const from = Date.now();
    await sleep(BASELINE_MS);
    log("deploying shards = 3 again (the leaving shard drains, then its hosts are deleted)");
    const at = Date.now();
    const r = await deployAndWatch(c, { ...settings }, (v) => v.masters.length === 3 && !v.open);
    const after = await slotView(c);
    shrink = {
      deployMs: r.deployMs,
      convergedMs: r.convergedMs,
      removed: r.removed,
      slotsAfter: describeView(after),
      writers: await stopWriters(c, shrinkWriters, shrinkRanges, [from, at], [at, at + r.deployMs]),
      keysMissing: (await keySet(c, "check", "bench", KEYS)).length,
    };
    if (!after || after.masters.length !== 3 || after.total !== TOTAL_SLOTS || after.open)
      throw new Error(`after the shrink: ${describeView(after)}`);
  }

  const moveMs = rebalanceMs - firstSlotMs;
  return {
    keys: KEYS,
    loadMs,
    datasetBytes,
    datasetBytesPerMaster: perMaster,
    deployMs: grow.deployMs,
    deployConvergedMs: grow.convergedMs,
    added: grow.added,
    firstSlotMs,
    rebalanceMs,
    movedSlots,
    /** rebalanceMs / (datasetBytes / 1e9): a linear extrapolation, boot of the new hosts included. */
    msPerGB: rebalanceMs / (datasetBytes / 1e9),
    /** From the new master's first slot to even slots: the move itself, without the new hosts' boot. */
    moveMs,
    moveMsPerGB: moveMs / (datasetBytes / 1e9),
    keysMissing,
    writers: growWriters,
    shrink,
  };
}

async function main(): Promise<void> {
  const can = canRunLab();
  if (!can.ok) {
    console.error(`bench:reshard needs the lab hosts: ${can.reason}`);
    process.exit(2);
  }
  const c = await createClusterLab(stackSettings("prod"), { log });
  let figures: Awaited<ReturnType<typeof run>>;
  try {
    figures = await run(c);
  } catch (e) {
    for (const [i, h] of c.hosts.entries()) {
      console.error(`--- ${h.name}: redis-stack.log and journal`);
      console.error(await c.diagnose(i).catch((d: Error) => `(diagnose failed: ${d.message})`));
    }
    throw e;
  } finally {
    await c.destroy();
  }

  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const f = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(0) : "-");
  console.log(`\nreshard 3 -> 4 shards, ${figures.keys} keys, used_memory_dataset ${figures.datasetBytes} bytes`);
  console.log(`  deploy call returned (new hosts booted, every node ok)   ${s(figures.deployMs)}`);
  console.log(`  new shard's master serves its first slot (1 s polls)     ${s(figures.firstSlotMs)}`);
  console.log(`  slots even (4 x 4096 +- 1, none open)                     ${s(figures.rebalanceMs)}`);
  console.log(`  the move alone (first slot -> even, ${figures.movedSlots} slots)            ${s(figures.moveMs)}`);
  console.log(
    `  per GB of data set, linear extrapolation: ${(figures.msPerGB / 1000).toFixed(0)} s/GB with the boot, ${(figures.moveMsPerGB / 1000).toFixed(0)} s/GB for the move alone`,
  );
  console.log(`  loaded keys missing afterwards: ${figures.keysMissing}`);
  const writerTable = (ws: WriterFigures[]) => {
    console.log("  writer slots        acked   max gap ms  lost  inter-ack ms p50 / p99 / max (before: p50 / p99)");
    for (const w of ws)
      console.log(
        `  ${w.slots.padEnd(18)} ${String(w.acked).padStart(6)}   ${String(w.maxGapMs).padStart(10)}${w.unfinishedGap ? "+" : " "} ${String(w.lost).padStart(4)}  ${f(w.interAck.p50)} / ${f(w.interAck.p99)} / ${f(w.interAck.max)} (${f(w.interAckBaseline.p50)} / ${f(w.interAckBaseline.p99)})${w.coveredToStop ? "" : "  [writer ran out before the stop]"}`,
      );
  };
  writerTable(figures.writers);
  console.log(
    "  inter-ack = time between consecutive acknowledged SETs of one writer (round trip + its 2 ms pause + client redirections), not a measured per-command latency",
  );
  if (figures.shrink) {
    const k = figures.shrink;
    console.log(
      `\nshrink 4 -> 3 shards: deploy returned after ${s(k.deployMs)} (drained, ${k.removed.join(", ")} deleted)`,
    );
    console.log(`  slots after: ${k.slotsAfter}; loaded keys missing: ${k.keysMissing}`);
    writerTable(k.writers);
  }
  const file = writeResults("reshard", { machine: machine(), tls: settings.tls, intervalMs: INTERVAL_MS, ...figures });
  console.log(`written to ${file}`);
  console.log(
    JSON.stringify({
      keys: figures.keys,
      datasetBytes: figures.datasetBytes,
      deployMs: figures.deployMs,
      firstSlotMs: figures.firstSlotMs,
      rebalanceMs: figures.rebalanceMs,
      msPerGB: Math.round(figures.msPerGB),
      msPerGBNote: "rebalanceMs / (datasetBytes / 1e9): linear extrapolation, new hosts' boot included",
      moveMs: figures.moveMs,
      moveMsPerGB: Math.round(figures.moveMsPerGB),
      keysMissing: figures.keysMissing,
      writers: figures.writers.map((w) => ({
        slots: w.slots,
        maxGapMs: w.maxGapMs,
        unfinishedGap: w.unfinishedGap,
        lost: w.lost,
        interAckP50Ms: w.interAck.p50,
        interAckP99Ms: w.interAck.p99,
        coveredToStop: w.coveredToStop,
      })),
      shrink: figures.shrink && {
        deployMs: figures.shrink.deployMs,
        keysMissing: figures.shrink.keysMissing,
        writers: figures.shrink.writers.map((w) => ({
          slots: w.slots,
          maxGapMs: w.maxGapMs,
          unfinishedGap: w.unfinishedGap,
          lost: w.lost,
          interAckP99Ms: w.interAck.p99,
        })),
      },
    }),
  );
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
