/**
 * The alarm specs (components/monitoring/alarms.ts), pure: every alarm the README promises, on metrics the nodes
 * publish with the dimensions they publish, thresholds from config, CloudWatch's limits kept, and a
 * description that says what to do and points at the README's row.
 */
import * as fs from "fs";
import * as path from "path";
import {
  AlarmSpec,
  alarmSpecs,
  evaluationWindow,
  isAlarmPeriod,
  MAX_DESCRIPTION_LENGTH,
  MAX_EVALUATION_SECONDS,
  MAX_LONG_EVALUATION_SECONDS,
  backupAlarmWindow,
  MonitoringInput,
  RUNBOOK_URL,
} from "../../components/monitoring/alarms";
import { DEFAULT_ALARM_THRESHOLDS, PERSISTENCE_MODES } from "../../components/config/settings";
import { BACKUP_COMPLETED, METRICS_INTERVALS, metricDef, stackDimension } from "../../components/monitoring/metrics";
import { planTopology } from "../../components/ec2/topology";

const STACK = stackDimension("redis-stack", "prod");
const input = (over: Partial<MonitoringInput> = {}): MonitoringInput => ({
  stackDimension: STACK,
  nodes: planTopology(3, 1, 3).map((n) => ({ name: n.name, shard: n.shard })),
  topology: "cluster",
  shards: 3,
  replicasPerShard: 1,
  periodSeconds: 60,
  persistence: "aof+rdb",
  maxmemoryPolicy: "noeviction",
  thresholds: DEFAULT_ALARM_THRESHOLDS,
  backupIntervalHours: 0,
  tls: true,
  ...over,
});
const byId = (specs: AlarmSpec[], id: string): AlarmSpec => {
  const found = specs.find((s) => s.id === id);
  if (!found) throw new Error(`no alarm ${id}`);
  return found;
};

test("the prod stack's alarms: 13 stack-wide and one silent-node alarm per node", () => {
  const specs = alarmSpecs(input());
  expect(specs.map((s) => s.id)).toEqual([
    "cluster-state",
    "masters-missing",
    "replica-missing",
    "failover",
    "memory",
    "evictions",
    "latency-p99",
    "rejected-connections",
    "rdb-save-failed",
    "rdb-stale",
    "aof-write-failed",
    "disk",
    "tls-cert-expiry",
    "shard0-0-silent",
    "shard1-0-silent",
    "shard2-0-silent",
    "shard0-1-silent",
    "shard1-1-silent",
    "shard2-1-silent",
  ]);
  for (const s of specs) expect(s.id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
});

test("each alarm: its metric, statistic, comparison, threshold, M of N and missing-data treatment", () => {
  const specs = alarmSpecs(input());
  const shape = (id: string) => {
    const s = byId(specs, id);
    return [
      s.metricName,
      s.statistic,
      s.comparison,
      s.threshold,
      `${s.datapointsToAlarm}/${s.evaluationPeriods}`,
      s.treatMissingData,
      s.severity,
    ];
  };
  expect(shape("cluster-state")).toEqual([
    "ClusterStateOk",
    "Minimum",
    "LessThanThreshold",
    1,
    "2/2",
    "breaching",
    "page",
  ]);
  expect(shape("masters-missing")).toEqual([
    "MastersSeen",
    "Minimum",
    "LessThanThreshold",
    3,
    "2/2",
    "notBreaching",
    "page",
  ]);
  expect(shape("replica-missing")).toEqual([
    "ConnectedReplicas",
    "Minimum",
    "LessThanThreshold",
    1,
    "3/3",
    "notBreaching",
    "page",
  ]);
  expect(shape("failover")).toEqual([
    "RoleChanged",
    "Sum",
    "GreaterThanOrEqualToThreshold",
    1,
    "1/1",
    "notBreaching",
    "notice",
  ]);
  expect(shape("memory")).toEqual([
    "MemoryPercentOfMaxmemory",
    "Maximum",
    "GreaterThanOrEqualToThreshold",
    90,
    "3/3",
    "notBreaching",
    "page",
  ]);
  expect(shape("evictions")).toEqual([
    "EvictionsPerSecond",
    "Maximum",
    "GreaterThanThreshold",
    1,
    "5/5",
    "notBreaching",
    "page",
  ]);
  expect(shape("latency-p99")).toEqual([
    "LatencyP99",
    "Maximum",
    "GreaterThanThreshold",
    10000,
    "3/5",
    "notBreaching",
    "page",
  ]);
  expect(shape("rejected-connections")).toEqual([
    "RejectedConnections",
    "Sum",
    "GreaterThanThreshold",
    0,
    "1/1",
    "notBreaching",
    "page",
  ]);
  expect(shape("rdb-save-failed")).toEqual([
    "RdbLastSaveOk",
    "Minimum",
    "LessThanThreshold",
    1,
    "1/1",
    "notBreaching",
    "page",
  ]);
  expect(shape("aof-write-failed")).toEqual([
    "AofWriteOk",
    "Minimum",
    "LessThanThreshold",
    1,
    "1/1",
    "notBreaching",
    "page",
  ]);
  expect(shape("rdb-stale")).toEqual([
    "RdbSecondsSinceLastSave",
    "Maximum",
    "GreaterThanThreshold",
    86400,
    "1/1",
    "notBreaching",
    "notice",
  ]);
  expect(shape("disk")).toEqual([
    "DataDiskUsedPercent",
    "Maximum",
    "GreaterThanOrEqualToThreshold",
    80,
    "2/2",
    "notBreaching",
    "page",
  ]);
  expect(shape("shard1-1-silent")).toEqual(["Up", "SampleCount", "LessThanThreshold", 1, "3/3", "breaching", "page"]);
});

test("stack-wide alarms read {Stack} series of stack-wide metrics; node alarms read the node's own series", () => {
  for (const s of alarmSpecs(input())) {
    expect(metricDef(s.metricName).name).toBe(s.metricName);
    if (s.id.endsWith("-silent")) {
      const node = s.id.replace(/-silent$/, "");
      const shard = node.replace(/^shard(\d+)-\d+$/, "$1");
      expect(s.dimensions).toEqual({ Stack: STACK, Shard: shard, Node: node });
    } else {
      expect(s.dimensions).toEqual({ Stack: STACK });
      expect(metricDef(s.metricName).stackWide).toBe(true);
    }
  }
});

test("thresholds follow config and the topology", () => {
  const specs = alarmSpecs(
    input({
      shards: 6,
      replicasPerShard: 2,
      thresholds: { memoryPercent: 75, latencyP99Ms: 2.5, diskPercent: 60, evictionsPerSecond: 0 },
    }),
  );
  expect(byId(specs, "memory").threshold).toBe(75);
  expect(byId(specs, "latency-p99").threshold).toBe(2500); // microseconds, as the nodes publish
  expect(byId(specs, "disk").threshold).toBe(60);
  expect(byId(specs, "evictions").threshold).toBe(0);
  expect(byId(specs, "masters-missing").threshold).toBe(6);
  expect(byId(specs, "replica-missing").threshold).toBe(2);
  expect(byId(specs, "memory").description).toContain("75%");
  expect(byId(specs, "latency-p99").description).toContain("2.5 ms");
});

test("persistence decides the RDB and AOF alarms; no replica alarm without replicas", () => {
  const ids = (persistence: MonitoringInput["persistence"]) =>
    alarmSpecs(input({ persistence }))
      .map((s) => s.id)
      .filter((id) => /^(rdb|aof)-/.test(id));
  expect(ids("aof+rdb")).toEqual(["rdb-save-failed", "rdb-stale", "aof-write-failed"]);
  expect(ids("rdb")).toEqual(["rdb-save-failed", "rdb-stale"]);
  expect(ids("aof")).toEqual(["aof-write-failed"]);
  expect(ids("none")).toEqual([]);
  expect(alarmSpecs(input({ replicasPerShard: 0 })).map((s) => s.id)).not.toContain("replica-missing");
});

test("the period is the collection interval, and every alarm keeps CloudWatch's limits at any interval", () => {
  for (const period of [...METRICS_INTERVALS, 120, 3600, 86400]) {
    for (const s of alarmSpecs(input({ periodSeconds: period }))) {
      expect(s.periodSeconds).toBe(period);
      expect(isAlarmPeriod(s.periodSeconds)).toBe(true);
      expect(s.evaluationPeriods * s.periodSeconds).toBeLessThanOrEqual(
        period >= 3600 ? MAX_LONG_EVALUATION_SECONDS : MAX_EVALUATION_SECONDS,
      );
      expect(s.datapointsToAlarm).toBeGreaterThanOrEqual(1);
      expect(s.datapointsToAlarm).toBeLessThanOrEqual(s.evaluationPeriods);
    }
  }
  // Under an hour per period the window is a day at most; from an hour on, seven days.
  expect(evaluationWindow(1800, 30, 60)).toEqual({ evaluationPeriods: 48, datapointsToAlarm: 30 });
  expect(evaluationWindow(86400, 3, 10)).toEqual({ evaluationPeriods: 7, datapointsToAlarm: 3 });
  expect(evaluationWindow(86400, 9, 10)).toEqual({ evaluationPeriods: 7, datapointsToAlarm: 7 });
  expect(evaluationWindow(21600, 3, 5)).toEqual({ evaluationPeriods: 5, datapointsToAlarm: 3 });
  expect(evaluationWindow(60, 3, 5)).toEqual({ evaluationPeriods: 5, datapointsToAlarm: 3 });
  for (const bad of [0, 15, 20, 45, 90, 172800]) {
    expect(isAlarmPeriod(bad)).toBe(false);
    expect(() => alarmSpecs(input({ periodSeconds: bad }))).toThrow(/10, 30 or a multiple of 60/);
  }
});

const readme = fs.readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
const monitoringSection = readme.split(/^## /m).find((s) => s.startsWith("Monitoring\n")) ?? "";
// The alarm rows live in docs/monitoring.md; README.md#monitoring, where descriptions point, links there.
const monitoringPage = fs.readFileSync(path.resolve(__dirname, "../../docs/monitoring.md"), "utf8");

test("every description says what is wrong, what to do, and points at its row (README.md#monitoring -> docs)", () => {
  expect(RUNBOOK_URL).toBe("README.md#monitoring");
  expect(monitoringSection.length).toBeGreaterThan(0);
  expect(monitoringSection).toContain("](docs/monitoring.md)");
  const rows = new Set<string>();
  for (const persistence of PERSISTENCE_MODES) {
    for (const s of alarmSpecs(input({ persistence, backupIntervalHours: 6 }))) {
      expect(s.description.length).toBeLessThanOrEqual(MAX_DESCRIPTION_LENGTH);
      expect(s.description).toMatch(/\. To do: .+\. Runbook: README\.md#monitoring \([a-z0-9-]+\)\.$/);
      const row = /\(([a-z0-9-]+)\)\.$/.exec(s.description)?.[1] ?? "";
      expect(
        s.id === row ||
          (s.id.endsWith("-silent") && row === "node-silent") ||
          (s.id.endsWith("-backup-stale") && row === "backup-stale"),
      ).toBe(true);
      rows.add(row);
    }
  }
  // docs/monitoring.md has a row for each, and no row for an alarm that does not exist.
  const documented = [...monitoringPage.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual([...rows].sort());
  expect(byId(alarmSpecs(input()), "shard2-1-silent").description).toContain("shard2-1 (shard 2)");
});

test("a full evicting cache is a notice (it fills once and stays full); a node that refuses writes pages", () => {
  expect(byId(alarmSpecs(input({ maxmemoryPolicy: "allkeys-lru" })), "memory").severity).toBe("notice");
  expect(byId(alarmSpecs(input({ maxmemoryPolicy: "allkeys-lfu" })), "memory").severity).toBe("notice");
  expect(byId(alarmSpecs(input({ maxmemoryPolicy: "noeviction" })), "memory").severity).toBe("page");
  expect(byId(alarmSpecs(input({ maxmemoryPolicy: "volatile-ttl" })), "memory").severity).toBe("page");
});

test("the Sentinel topology: the same alarms, read from each node's Sentinel (no primary, Sentinels that disagree)", () => {
  const sentinel = alarmSpecs(
    input({
      topology: "sentinel",
      shards: 1,
      replicasPerShard: 2,
      nodes: [0, 1, 2].map((m) => ({ name: `shard0-${m}`, shard: 0 })),
    }),
  );
  const byId = (id: string) => {
    const spec = sentinel.find((a) => a.id === id);
    if (!spec) throw new Error(`no alarm ${id}`);
    return spec;
  };
  expect(byId("cluster-state").description).toMatch(/Sentinel names no healthy primary.*Sentinels disagree/);
  expect(byId("masters-missing")).toMatchObject({ threshold: 1 });
  expect(byId("masters-missing").description).toMatch(/no healthy primary/);
  expect(byId("replica-missing")).toMatchObject({ threshold: 2 });
  expect(sentinel.map((a) => a.id)).toContain("failover");
  // The cluster's texts stay the cluster's.
  expect(alarmSpecs(input()).find((a) => a.id === "cluster-state")?.description).toMatch(/cluster_state/);
});

test("stale backups: one alarm per shard, no backup for two intervals (missing data is the failure), none when off", () => {
  expect(alarmSpecs(input()).filter((s) => s.id.includes("backup"))).toEqual([]);
  const specs = alarmSpecs(input({ backupIntervalHours: 6 })).filter((s) => s.metricName === "BackupCompleted");
  expect(specs.map((s) => s.id)).toEqual(["shard0-backup-stale", "shard1-backup-stale", "shard2-backup-stale"]);
  expect(specs[2]).toMatchObject({
    dimensions: { Stack: STACK, Shard: "2" },
    statistic: "SampleCount",
    comparison: "LessThanThreshold",
    threshold: 1,
    periodSeconds: 6 * 3600,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: "breaching",
    severity: "page",
  });
  expect(specs[0].description).toContain("no successful backup for 12 h");
  // The backup publishes what the alarm reads: this metric, unit and dimensions.
  const lib = fs.readFileSync(path.resolve(__dirname, "../../components/ec2/node/lib-backup.sh"), "utf8");
  expect(lib).toContain(`--metric-name ${BACKUP_COMPLETED.name} --unit ${BACKUP_COMPLETED.unit} --value 1`);
  expect(lib).toContain('--dimensions "Stack=$METRICS_STACK,Shard=$1"');
  // Intervals beyond a day count days, within CloudWatch's seven-day range; every interval config accepts.
  expect(backupAlarmWindow(24)).toEqual({ periodSeconds: 86400, periods: 2 });
  expect(backupAlarmWindow(36)).toEqual({ periodSeconds: 86400, periods: 3 });
  expect(backupAlarmWindow(168)).toEqual({ periodSeconds: 86400, periods: 7 });
  for (let hours = 1; hours <= 168; hours++) {
    for (const s of alarmSpecs(input({ backupIntervalHours: hours })).filter((x) => x.id.endsWith("backup-stale"))) {
      expect(isAlarmPeriod(s.periodSeconds)).toBe(true);
      expect(s.evaluationPeriods * s.periodSeconds).toBeLessThanOrEqual(
        s.periodSeconds >= 3600 ? MAX_LONG_EVALUATION_SECONDS : MAX_EVALUATION_SECONDS,
      );
      expect(s.evaluationPeriods * s.periodSeconds).toBeGreaterThanOrEqual(Math.min(2 * hours * 3600, 7 * 86400));
    }
  }
});
