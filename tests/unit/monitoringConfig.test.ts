/**
 * The monitoring keys reach the deployed alarms and dashboard: the prod stack with its interval and every
 * threshold changed, and 2 replicas per shard, AOF only (the RDB alarms go, the replica alarm wants 2).
 */
import { byType, Registered, runStack, RunResult, unwrapSecrets } from "./support/stackHarness";

let run: RunResult;
const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const alarm = (id: string) => {
  const found = byType(run.resources, "aws:cloudwatch/metricAlarm:MetricAlarm").filter((r) =>
    r.name.endsWith(`-alarms-${id}`),
  );
  expect(found).toHaveLength(1);
  return inputs(found[0]);
};

beforeAll(async () => {
  run = await runStack("prod", {
    "redis-stack:metricsIntervalSeconds": "10",
    "redis-stack:alarmMemoryPercent": "75",
    "redis-stack:alarmLatencyP99Ms": "2.5",
    "redis-stack:alarmDiskPercent": "65",
    "redis-stack:alarmEvictionsPerSecond": "50",
    "redis-stack:replicasPerShard": "2",
    "redis-stack:persistence": "aof",
  });
  if (run.error) throw run.error;
});

test("thresholds follow config", () => {
  expect(alarm("memory")).toMatchObject({ threshold: 75, comparisonOperator: "GreaterThanOrEqualToThreshold" });
  expect(alarm("latency-p99")).toMatchObject({ threshold: 2500, comparisonOperator: "GreaterThanThreshold" });
  expect(alarm("disk")).toMatchObject({ threshold: 65 });
  expect(alarm("evictions")).toMatchObject({ threshold: 50 });
  expect(alarm("replica-missing")).toMatchObject({ threshold: 2 });
  expect(alarm("masters-missing")).toMatchObject({ threshold: 3 });
});

test("every alarm's period is the metrics interval (high resolution at 10 s), but not the stale-backup ones", () => {
  const all = byType(run.resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    .map(inputs)
    .filter((a) => a.namespace === "RedisStack");
  // One stale-backup alarm per shard, a backup interval (default 6 h) each.
  const backups = all.filter((a) => a.metricName === "BackupCompleted");
  expect(backups.map((a) => a.period)).toEqual([21600, 21600, 21600]);
  const ours = all.filter((a) => a.metricName !== "BackupCompleted");
  // 3 shards x (1 + 2): one silent-node alarm each, and 11 stack-wide (no RDB alarms with AOF only).
  expect(ours).toHaveLength(9 + 11);
  for (const a of ours) expect(a.period).toBe(10);
  const names = ours.map((a) => a.metricName);
  expect(names).not.toContain("RdbLastSaveOk");
  expect(names).not.toContain("RdbSecondsSinceLastSave");
  expect(names).toContain("AofWriteOk");
  const d = inputs(byType(run.resources, "aws:cloudwatch/dashboard:Dashboard")[0]);
  const body = JSON.parse(String(d.dashboardBody)) as {
    widgets: { properties: { period: number; annotations?: { horizontal: { value: number }[] } } }[];
  };
  for (const w of body.widgets) expect(w.properties.period).toBe(10);
  const marks = body.widgets.flatMap((w) => w.properties.annotations?.horizontal ?? []).map((h) => h.value);
  expect(marks).toEqual(expect.arrayContaining([75, 2500, 65, 50]));
});
