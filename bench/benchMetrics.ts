/**
 * `npm run bench:metrics`: what the nodes' metrics cost and whether the stack's alarms stay quiet on a
 * healthy cluster under load. Needs root (six real Debian hosts booted from the user-data, TLS on as in
 * prod, each collector under systemd publishing through awscli to the lab's CloudWatch stand-in).
 *
 * One run: boot -> one writer per shard (a SET every 2 ms + round trip) for BENCH_SECONDS (default 300)
 * -> every alarm of the prod stack, at the lab's period, replayed over everything published while the
 * cluster was whole (none may fire) -> the collector's CPU per run on every node (3 runs by hand, timed
 * by bash: user + sys of python and the awscli it runs), the metric series and PutMetricData
 * calls per node -> a monthly bill at CloudWatch's list prices for the prod stack at 60 s and at 10 s.
 * Prints a table, writes bench-results/metrics.json.
 *   BENCH_SECONDS=300 BENCH_PERIOD=10
 */
import { canRunLab } from "../lab/hosts/hostLab";
import { ClusterLab, createClusterLab, RunningWriter, startWriter, tagForSlots } from "../lab/clusterLab";
import { at, firedAlarms, labAlarms, series, waitForMetrics } from "../lab/labMetrics";
import { alarmSpecs, monitoringInput } from "../components/monitoring/alarms";
import { METRICS_INTERVALS, MetricsInterval, NODE_METRICS, stackDimension } from "../components/monitoring/metrics";
import { planTopology } from "../components/ec2/topology";
import { METRICS_SCRIPT } from "../components/ec2/node/userData";
import { stackSettings } from "../lab/stackFiles";
import { sleep } from "../local/localCluster";
import { machine, writeResults } from "./benchUtil";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 300);
const PERIOD = Number(process.env.BENCH_PERIOD ?? 10) as MetricsInterval;
const settings = stackSettings("prod");

/**
 * CloudWatch list prices, us-east-1 (aws.amazon.com/cloudwatch/pricing, read 2026-11-28): custom metrics
 * $0.30 per metric-month (first 10,000), API requests $0.01 per 1,000, alarms $0.10 per standard-resolution
 * and $0.30 per high-resolution alarm metric per month, dashboards $3.00 per month (3 free). The free
 * tier (1 M API requests, 10 alarms, 3 dashboards) is left out: it is per account, not per stack.
 */
const PRICE = { metricMonth: 0.3, perThousandRequests: 0.01, alarm: 0.1, highResAlarm: 0.3, dashboard: 3.0 };
const MONTH_SECONDS = 30 * 24 * 3600;

/**
 * CPU (user + sys, the collector and the awscli it runs) of `runs` collections run by hand on host i,
 * exactly as the unit runs it: ms per run. (systemd's own per-run accounting is off in the lab's hosts.)
 */
async function collectorCpu(c: ClusterLab, i: number, runs = 3): Promise<number[]> {
  const r = await c.hosts[i].sh(
    `TIMEFORMAT='%U %S'; for _ in $(seq ${runs}); do { time /usr/bin/python3 ${METRICS_SCRIPT} >/dev/null 2>&1; } 2>&1; done`,
    { timeoutMs: 120_000 },
  );
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => l.split(" ").map(Number))
    .filter((p) => p.length === 2 && p.every(Number.isFinite))
    .map(([user, sys]) => (user + sys) * 1000);
}

async function main(): Promise<void> {
  const can = canRunLab();
  if (!can.ok) {
    console.error(`bench:metrics needs the hosts lab: ${can.reason}`);
    process.exit(2);
  }
  if (!(METRICS_INTERVALS as readonly number[]).includes(PERIOD))
    throw new Error(`BENCH_PERIOD must be one of ${METRICS_INTERVALS.join(", ")}`);
  const c = await createClusterLab(settings, { log: (l) => console.log(l), metricsIntervalSeconds: PERIOD });
  try {
    await c.boot();
    await c.waitConverged(120_000);
    const wholeFrom = Date.now();
    console.log(`cluster whole; ${SECONDS} s of writes on every shard, metrics every ${PERIOD} s`);
    const writers: RunningWriter[] = [];
    for (const n of c.nodes.filter((x) => x.node.role === "master"))
      writers.push(await startWriter(c, tagForSlots(n.node.slots.start, n.node.slots.end, "bench")));
    await sleep(SECONDS * 1000);
    const results = await Promise.all(writers.map((w) => w.stop()));
    const end = Date.now();
    const all = await waitForMetrics(
      c,
      (m) => c.nodes.every((n) => series(m, "Up", n.node.name).some((d) => at(d) > end)),
      3 * PERIOD * 1000,
    );
    const cpuRuns: number[][] = [];
    for (let i = 0; i < c.hosts.length; i++) cpuRuns.push(await collectorCpu(c, i));

    const specs = labAlarms(c, PERIOD);
    const fired = firedAlarms(specs, all, wholeFrom, Math.floor(end / (PERIOD * 1000)) * PERIOD * 1000);
    const acked = results.reduce((s, r) => s + r.acked.length, 0);

    const perRunCpuMs = cpuRuns.map((runs) =>
      runs.length > 0 ? runs.reduce((a, b) => a + b, 0) / runs.length : Number.NaN,
    );
    const inRun = all.filter((d) => d.receivedAt >= wholeFrom && d.receivedAt <= end);
    const series3 = new Set(
      all.map((d) => `${d.metricName}|${d.dimensions.map((x) => `${x.name}=${x.value}`).join(",")}`),
    );
    const calls = c.nodes.map((n) => new Set(inRun.filter((d) => d.sourceIp === n.ip).map((d) => d.receivedAt)).size);
    const callsPerNodePerPeriod =
      calls.reduce((a, b) => a + b, 0) / c.nodes.length / ((end - wholeFrom) / 1000 / PERIOD);

    // The prod stack's bill: its series (counted from what the lab's six nodes published: the same
    // topology), its calls, its alarms at each period.
    const nodes = planTopology(settings.ec2?.shards ?? 3, settings.ec2?.replicasPerShard ?? 1, 3);
    const bill = (period: MetricsInterval) => {
      const ec2 = settings.ec2;
      if (!ec2) throw new Error("prod is an EC2 stack");
      const alarms = alarmSpecs(
        monitoringInput(
          { ...ec2, metricsIntervalSeconds: period },
          settings,
          stackDimension("redis-stack", "prod"),
          nodes.map((n) => ({ name: n.name, shard: n.shard })),
        ),
      ).length;
      const requests = nodes.length * (MONTH_SECONDS / period);
      const items = {
        metrics: series3.size * PRICE.metricMonth,
        requests: (requests / 1000) * PRICE.perThousandRequests,
        alarms: alarms * (period < 60 ? PRICE.highResAlarm : PRICE.alarm),
        dashboard: PRICE.dashboard,
      };
      return {
        period,
        series: series3.size,
        requestsPerMonth: requests,
        alarms,
        dollars: items,
        total: Object.values(items).reduce((a, b) => a + b, 0),
      };
    };
    const bills = [bill(60), bill(10)];
    const cpuPct = (period: number) => perRunCpuMs.map((ms) => (100 * ms) / 1000 / period);

    console.log(`\nhealthy run: ${((end - wholeFrom) / 1000).toFixed(0)} s, ${acked} acknowledged writes`);
    console.log(
      `alarms replayed (${specs.length}): ${fired.length === 0 ? "none fired" : `FIRED ${fired.join(", ")}`}`,
    );
    console.log(
      `collector CPU per run (python + awscli), per node: ${perRunCpuMs.map((x) => x.toFixed(0)).join(", ")} ms`,
    );
    console.log(
      `  as a share of one core: at 60 s ${cpuPct(60)
        .map((x) => x.toFixed(2))
        .join(", ")} %; at 10 s ${cpuPct(10)
        .map((x) => x.toFixed(2))
        .join(", ")} %`,
    );
    console.log(
      `PutMetricData calls per node per period: ${callsPerNodePerPeriod.toFixed(2)}; metric series in all: ${series3.size} (${NODE_METRICS.length} names)`,
    );
    console.log("\nprod stack (6 nodes), month of 30 days, us-east-1 list prices");
    console.log("period  series  requests/month  alarms  metrics $  requests $  alarms $  dashboard $  total $");
    for (const b of bills)
      console.log(
        `${String(b.period).padStart(4)} s  ${String(b.series).padStart(6)}  ${String(b.requestsPerMonth).padStart(14)}  ${String(b.alarms).padStart(6)}  ${b.dollars.metrics.toFixed(2).padStart(9)}  ${b.dollars.requests.toFixed(2).padStart(10)}  ${b.dollars.alarms.toFixed(2).padStart(8)}  ${b.dollars.dashboard.toFixed(2).padStart(11)}  ${b.total.toFixed(2).padStart(7)}`,
      );
    const file = writeResults("metrics", {
      machine: machine(),
      periodSeconds: PERIOD,
      healthySeconds: (end - wholeFrom) / 1000,
      ackedWrites: acked,
      alarms: specs.map((s) => s.id),
      fired,
      collectorCpuMsPerRun: perRunCpuMs,
      putMetricDataCallsPerNodePerPeriod: callsPerNodePerPeriod,
      series: series3.size,
      prices: PRICE,
      bills,
    });
    console.log(`\nwritten: ${file}`);
    if (fired.length > 0) process.exitCode = 1;
  } finally {
    await c.destroy();
  }
}

main().catch((e: Error) => {
  console.error(e);
  process.exit(1);
});
