/**
 * The CloudWatch alarms of an EC2 stack, as data: what each watches, when it fires, how loud it is and
 * what the person it reaches should do (README, "Monitoring", has one row per alarm id). Pure:
 * components/monitoring/nodeAlarms.ts turns each spec into an `aws.cloudwatch.MetricAlarm`, and lab/alarmReplay.ts
 * evaluates the same specs against published data points.
 *
 * Every alarm reads the metrics the nodes publish (components/monitoring/metrics.ts) at their collection period, so
 * one period holds one collection of every node. Stack-wide alarms read the {Stack} series, which
 * CloudWatch aggregates over every node: Minimum is the worst node for "...Ok" flags and counts,
 * Maximum the worst node for usage and latency. One alarm per node says that node went silent.
 *
 * Evaluation windows are counted in periods ("2 of 2": two consecutive collections), as listed below,
 * not in wall time: a shorter `metricsIntervalSeconds` is asked for to hear of a problem sooner, and one
 * collection is what a single bad sample spoils. Where the natural reading is wall time, the metric
 * carries it: "no RDB save for a day" is RdbSecondsSinceLastSave > 86400 over one period, not a day of
 * periods. CloudWatch's limits hold for any period: it is 10, 30 or a multiple of 60 (periods below 60
 * make high-resolution alarms), evaluationPeriods x period <= 86400 (evaluationPeriods is capped to
 * fit) and datapointsToAlarm <= evaluationPeriods.
 *
 * Missing data: ClusterStateOk and Up treat it as breaching (silence is the failure they exist for).
 * Every other alarm treats it as not breaching: counters and latency are absent when nothing happened,
 * a node whose Redis does not answer publishes only Up and ClusterStateOk = 0, and one outage should
 * page through those two rather than through every alarm at once (or flap through INSUFFICIENT_DATA).
 */
import { AlarmThresholds, Ec2Settings, EvictionPolicy, Persistence, Topology } from "../config/settings";
import { BACKUP_COMPLETED, metricDef } from "./metrics";
import { TLS_RENEWAL_DAYS } from "../ec2/node/redisConf";

/** Where each alarm's description sends the reader: the README section with one row per alarm id. */
export const RUNBOOK_URL = "README.md#monitoring";

/** CloudWatch: period x evaluationPeriods may not exceed a day for periods under an hour... */
export const MAX_EVALUATION_SECONDS = 86400;
/** ...and seven days for periods of an hour or more (PutMetricAlarm's Period). */
export const MAX_LONG_EVALUATION_SECONDS = 7 * 86400;
/** The longest alarmDescription CloudWatch accepts. */
export const MAX_DESCRIPTION_LENGTH = 1024;

export type Statistic = "Minimum" | "Maximum" | "Sum" | "SampleCount" | "Average";
/** CloudWatch's comparisonOperator values for static thresholds. */
export type Comparison =
  "GreaterThanOrEqualToThreshold" | "GreaterThanThreshold" | "LessThanThreshold" | "LessThanOrEqualToThreshold";
export type TreatMissingData = "breaching" | "notBreaching" | "ignore" | "missing";
/** page: alarm and OK actions notify the alert topic; notice: the alarm action only (nothing to resolve). */
export type Severity = "page" | "notice";

export interface AlarmSpec {
  /** Kebab-case, unique within the stack: the resource name's suffix and the README row. */
  id: string;
  metricName: string;
  dimensions: Record<string, string>;
  statistic: Statistic;
  periodSeconds: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  threshold: number;
  comparison: Comparison;
  treatMissingData: TreatMissingData;
  severity: Severity;
  /** What is wrong, what to do, and where the runbook is. */
  description: string;
}

/** What the alarms (and the dashboard) of one EC2 stack depend on. */
export interface MonitoringInput {
  /** The Stack dimension (metrics.ts stackDimension). */
  stackDimension: string;
  nodes: { name: string; shard: number }[];
  /** The Sentinel topology reads ClusterStateOk and MastersSeen from the node's Sentinel (metrics.py). */
  topology: Topology;
  shards: number;
  replicasPerShard: number;
  /** The nodes' collection period (metricsIntervalSeconds), which is every alarm's period. */
  periodSeconds: number;
  /** RDB alarms exist only with RDB on, the AOF alarm only with AOF on. */
  persistence: Persistence;
  /** Whether a full node evicts (allkeys-*: the memory alarm is a notice) or refuses writes (a page). */
  maxmemoryPolicy: EvictionPolicy;
  thresholds: AlarmThresholds;
  /** Hours between scheduled backups; 0 (none scheduled) means no stale-backup alarm. */
  backupIntervalHours: number;
  /** With TLS on, the nodes' certificates expire: the expiry alarm. */
  tls: boolean;
}

/** The alarms' input for an EC2 stack's settings: the one place the component and the lab build it from. */
export function monitoringInput(
  ec2: Ec2Settings,
  common: { persistence: Persistence; maxmemoryPolicy: EvictionPolicy; tls: boolean },
  stackDimension: string,
  nodes: { name: string; shard: number }[],
): MonitoringInput {
  return {
    stackDimension,
    nodes,
    topology: ec2.topology,
    shards: ec2.shards,
    replicasPerShard: ec2.replicasPerShard,
    periodSeconds: ec2.metricsIntervalSeconds,
    persistence: common.persistence,
    maxmemoryPolicy: common.maxmemoryPolicy,
    thresholds: ec2.alarms,
    backupIntervalHours: ec2.backupIntervalHours,
    tls: common.tls,
  };
}

/** Periods CloudWatch alarms accept: 10 and 30 (high resolution) or whole minutes, up to a day. */
export function isAlarmPeriod(seconds: number): boolean {
  return (
    seconds === 10 ||
    seconds === 30 ||
    (Number.isInteger(seconds) && seconds > 0 && seconds % 60 === 0 && seconds <= MAX_EVALUATION_SECONDS)
  );
}

/** "M of N" periods, with N capped so N x period stays within CloudWatch's limit, and M <= N. */
export function evaluationWindow(
  periodSeconds: number,
  datapointsToAlarm: number,
  evaluationPeriods: number,
): { evaluationPeriods: number; datapointsToAlarm: number } {
  const limit = periodSeconds >= 3600 ? MAX_LONG_EVALUATION_SECONDS : MAX_EVALUATION_SECONDS;
  const n = Math.max(1, Math.min(evaluationPeriods, Math.floor(limit / periodSeconds)));
  return { evaluationPeriods: n, datapointsToAlarm: Math.max(1, Math.min(datapointsToAlarm, n)) };
}

export function nodeDimensions(stack: string, node: { name: string; shard: number }): Record<string, string> {
  return { Stack: stack, Shard: String(node.shard), Node: node.name };
}

function seconds(n: number): string {
  if (n % 3600 === 0) return `${n / 3600} h`;
  return n % 60 === 0 ? `${n / 60} min` : `${n} s`;
}

interface Rule {
  id: string;
  metricName: string;
  statistic: Statistic;
  comparison: Comparison;
  threshold: number;
  /** M of N, in periods. */
  of: [number, number];
  treatMissingData?: TreatMissingData;
  severity?: Severity;
  /** What is wrong (a sentence). */
  what: string;
  /** What to do (one or more sentences). */
  todo: string;
  /** The README row it points to, when not its id (the per-node alarms share one). */
  row?: string;
}

/** The shared facts every group of rules reads. */
interface RuleContext {
  input: MonitoringInput;
  thresholds: AlarmThresholds;
  sentinel: boolean;
}

/** Is the cluster (or the Sentinel topology) whole: its state, its masters, its replicas, a failover. */
function availabilityRules({ input, sentinel }: RuleContext): Rule[] {
  return [
    {
      id: "cluster-state",
      metricName: "ClusterStateOk",
      statistic: "Minimum",
      comparison: "LessThanThreshold",
      threshold: 1,
      of: [2, 2],
      treatMissingData: "breaching",
      what: sentinel
        ? "A node's Sentinel names no healthy primary, cannot reach a quorum, or names another primary than the one its Redis follows (the Sentinels disagree); or its Redis does not answer, or no node reports."
        : "A node sees cluster_state other than ok, its Redis does not answer, or no node reports at all.",
      todo: sentinel
        ? "Find the node on the dashboard (Per node: Up), run SENTINEL MASTER <name> and SENTINEL CKQUORUM <name> on port 26379 there " +
          "(README Runbook: connect to a node) and read /var/log/redis-stack.log; a node cut off from the majority shows here."
        : "Find the node on the dashboard (Cluster state, Per node: Up), run CLUSTER INFO there (README Runbook: connect to a node) " +
          "and read /var/log/redis-stack.log; a node cut off from the majority or a shard with no live copy shows here.",
    },
    {
      id: "masters-missing",
      metricName: "MastersSeen",
      statistic: "Minimum",
      comparison: "LessThanThreshold",
      threshold: input.shards,
      of: [2, 2],
      what: sentinel
        ? "A node's Sentinel sees no healthy primary: the primary failed and no replica was promoted (yet)."
        : `A node sees fewer than ${input.shards} healthy masters serving slots: a master failed and no replica took over.`,
      todo: sentinel
        ? "SENTINEL MASTER <name> and SENTINEL REPLICAS <name> on any node show why no replica was promoted (none in sync, " +
          "no quorum); start the primary's instance or let its replacement rejoin (README Runbook)."
        : "CLUSTER NODES on any node shows the failed master; start its instance or let its replacement rejoin " +
          "(README Runbook). While a shards change moves slots onto new masters this is expected until the rebalance ends.",
    },
    ...(input.replicasPerShard > 0
      ? [
          {
            id: "replica-missing",
            metricName: "ConnectedReplicas",
            statistic: "Minimum",
            comparison: "LessThanThreshold",
            threshold: input.replicasPerShard,
            of: [3, 3],
            what: `A master has fewer than ${input.replicasPerShard} connected replica(s): its shard has less to fail over to.`,
            todo:
              "Find the master on the dashboard (Replication), check its replica's instance, its status parameter and " +
              "journalctl -u 'redis-node*'; a replica that comes back rejoins by itself.",
          } satisfies Rule,
        ]
      : []),
    {
      id: "failover",
      metricName: "RoleChanged",
      statistic: "Sum",
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      of: [1, 1],
      severity: "notice",
      what: "A node changed role: a failover, or a planned hand-over (reboot, nodeGeneration roll, instanceType change).",
      todo:
        "Nothing if it was planned. Otherwise find why the old master went down: its EC2 status-check alarms, " +
        "its console output and /var/log/redis-stack.log; it rejoins as a replica.",
    },
  ];
}

/** Does the data fit and is it served fast enough: memory, evictions, latency, connections. */
function capacityRules({ input, thresholds: t }: RuleContext): Rule[] {
  const latencyUs = Math.round(t.latencyP99Ms * 1000);
  return [
    {
      id: "memory",
      metricName: "MemoryPercentOfMaxmemory",
      statistic: "Maximum",
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: t.memoryPercent,
      of: [3, 3],
      // A full cache that evicts (allkeys-*) is working as meant: a notice once it fills, not a page that
      // stays on; with noeviction or volatile-* a full node refuses writes, which pages.
      severity: input.maxmemoryPolicy.startsWith("allkeys-") ? "notice" : "page",
      what: `A node uses ${t.memoryPercent}% or more of its maxmemory (maxmemoryPolicy ${input.maxmemoryPolicy}).`,
      todo:
        "Add shards (pulumi config set shards), a larger instanceType or maxmemory, or delete data; at 100% Redis " +
        "evicts keys (allkeys-* policies) or refuses writes (noeviction). Threshold: alarmMemoryPercent.",
    },
    {
      id: "evictions",
      metricName: "EvictionsPerSecond",
      statistic: "Maximum",
      comparison: "GreaterThanThreshold",
      threshold: t.evictionsPerSecond,
      of: [5, 5],
      what: `A node has evicted more than ${t.evictionsPerSecond} keys/s for 5 periods: the data does not fit in maxmemory.`,
      todo:
        "Add shards or memory (instanceType, maxmemory), or shorten TTLs; if this cache is meant to evict, " +
        "raise alarmEvictionsPerSecond.",
    },
    {
      id: "latency-p99",
      metricName: "LatencyP99",
      statistic: "Maximum",
      comparison: "GreaterThanThreshold",
      threshold: latencyUs,
      of: [3, 5],
      what: `A node's p99 command latency exceeded ${t.latencyP99Ms} ms (${latencyUs} us) in 3 of the last 5 periods.`,
      todo:
        "Check the node's CPU and ops/s on the dashboard, SLOWLOG GET for slow commands or big keys, and a fork " +
        "(BGSAVE, AOF rewrite) at the time; spread hot keys, add shards or a larger instanceType. Threshold: alarmLatencyP99Ms.",
    },
    {
      id: "rejected-connections",
      metricName: "RejectedConnections",
      statistic: "Sum",
      comparison: "GreaterThanThreshold",
      threshold: 0,
      of: [1, 1],
      what: "A node refused client connections: it reached maxclients.",
      todo:
        "CLIENT LIST on the node shows who holds the connections: fix a client that leaks connections or shrink " +
        "pool sizes, or add shards to spread them.",
    },
  ];
}

/** Is the data kept: RDB snapshots and the AOF (for the persistence configured), and room on the volume. */
function persistenceRules({ input, thresholds: t }: RuleContext): Rule[] {
  const rdb = input.persistence === "aof+rdb" || input.persistence === "rdb";
  const aof = input.persistence === "aof+rdb" || input.persistence === "aof";
  return [
    ...(rdb
      ? [
          {
            id: "rdb-save-failed",
            metricName: "RdbLastSaveOk",
            statistic: "Minimum",
            comparison: "LessThanThreshold",
            threshold: 1,
            of: [1, 1],
            what: "A node's last RDB snapshot failed; Redis refuses writes until a save succeeds (stop-writes-on-bgsave-error).",
            todo:
              "Check the data volume (dashboard: Data disk used) and journalctl -u redis-node for the error, free or " +
              "grow the volume (dataVolumeGb), then run BGSAVE on the node.",
          } satisfies Rule,
          {
            id: "rdb-stale",
            metricName: "RdbSecondsSinceLastSave",
            statistic: "Maximum",
            comparison: "GreaterThanThreshold",
            threshold: 86400,
            of: [1, 1],
            // Redis saves only after writes: a stack that took none for a day fires this too.
            severity: "notice",
            what: "A node has had no successful RDB snapshot for over 24 hours.",
            todo:
              "INFO persistence on the node: rdb_changes_since_last_save 0 means no writes (nothing to do); " +
              "otherwise find why saves do not run or fail (journalctl -u redis-node) and run BGSAVE.",
          } satisfies Rule,
        ]
      : []),
    ...(aof
      ? [
          {
            id: "aof-write-failed",
            metricName: "AofWriteOk",
            statistic: "Minimum",
            comparison: "LessThanThreshold",
            threshold: 1,
            of: [1, 1],
            what: "A node failed to write its append-only file; Redis refuses writes until it can.",
            todo:
              "Check the data volume (dashboard: Data disk used) and journalctl -u redis-node for the I/O error; " +
              "free or grow the volume (pulumi config set dataVolumeGb, grows online).",
          } satisfies Rule,
        ]
      : []),
    {
      id: "disk",
      metricName: "DataDiskUsedPercent",
      statistic: "Maximum",
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: t.diskPercent,
      of: [2, 2],
      what: `A node's data volume is ${t.diskPercent}% full or more; an AOF rewrite or RDB save needs room for a full copy.`,
      todo: "Grow the volumes: pulumi config set dataVolumeGb (online, never shrinks). Threshold: alarmDiskPercent.",
    },
  ];
}

/**
 * With TLS on: a node's certificate close to its end. The stack issues new certificates on the first pulumi up
 * within TLS_RENEWAL_DAYS of expiry and the nodes load them live, so this fires only when no pulumi up ran
 * in that window (or a node could not load what it got).
 */
function certificateRules({ input }: RuleContext): Rule[] {
  if (!input.tls) return [];
  return [
    {
      id: "tls-cert-expiry",
      metricName: "TlsCertDaysLeft",
      statistic: "Minimum",
      comparison: "LessThanThreshold",
      threshold: TLS_RENEWAL_DAYS,
      of: [1, 1],
      what: `A node's TLS certificate expires in less than ${TLS_RENEWAL_DAYS} days; when it does, clients, replication and the cluster bus refuse it.`,
      todo:
        "Run pulumi up: it issues new certificates within that window and every node loads them live (its log: " +
        "live: TLS material renewed). If it persists, read /var/log/redis-stack.log on the node for why it kept the old one.",
    },
  ];
}

/** One alarm per node that stops publishing: its instance or its collector is down. */
function silentNodeRules(input: MonitoringInput): { rule: Rule; dimensions: Record<string, string> }[] {
  const { stackDimension: stack, periodSeconds: period } = input;
  return input.nodes.map((node) => ({
    dimensions: nodeDimensions(stack, node),
    rule: {
      id: `${node.name}-silent`,
      row: "node-silent",
      metricName: "Up",
      statistic: "SampleCount",
      comparison: "LessThanThreshold",
      threshold: 1,
      of: [3, 3],
      treatMissingData: "breaching",
      what: `${node.name} (shard ${node.shard}) has published no metrics for 3 periods (${seconds(3 * period)}): its instance or its collector is down.`,
      todo:
        "Check the instance's EC2 status-check alarms and console output (aws ec2 get-console-output), then on the " +
        "node systemctl status redis-node-metrics.timer and /var/log/redis-stack-metrics.log.",
    },
  }));
}

/**
 * The stale-backup alarm's window: no backup of a shard for two intervals. Each period is one interval (a
 * day at most, CloudWatch's longest period), so every period holds a backup while they run on time; the
 * alarm fires after two empty periods in a row. Longer intervals count whole days, up to CloudWatch's seven
 * (an interval over 84 h is watched for seven days without a backup, less than two intervals).
 */
export function backupAlarmWindow(intervalHours: number): { periodSeconds: number; periods: number } {
  const intervalSeconds = intervalHours * 3600;
  if (intervalSeconds <= 86400) return { periodSeconds: intervalSeconds, periods: 2 };
  return {
    periodSeconds: 86400,
    periods: Math.min(Math.ceil((2 * intervalSeconds) / 86400), MAX_LONG_EVALUATION_SECONDS / 86400),
  };
}

/** One alarm per shard whose scheduled backups stopped succeeding (none when no backup is scheduled). */
function backupRules(input: MonitoringInput): { rule: Rule; dimensions: Record<string, string>; period: number }[] {
  if (input.backupIntervalHours <= 0) return [];
  const { periodSeconds, periods } = backupAlarmWindow(input.backupIntervalHours);
  return Array.from({ length: input.shards }, (_, shard) => ({
    dimensions: { Stack: input.stackDimension, Shard: String(shard) },
    period: periodSeconds,
    rule: {
      id: `shard${shard}-backup-stale`,
      row: "backup-stale",
      metricName: BACKUP_COMPLETED.name,
      statistic: "SampleCount",
      comparison: "LessThanThreshold",
      threshold: 1,
      of: [periods, periods],
      treatMissingData: "breaching",
      what:
        `Shard ${shard} has had no successful backup for ${seconds(periods * periodSeconds)} ` +
        `(backups are due every ${input.backupIntervalHours} h): a restore would lose everything written since.`,
      todo:
        "Read the stack's backup status parameter (<statusPrefix>/backup: state and reason) and /var/log/redis-stack.log " +
        "on the node it names; fix the cause (bucket policy, KMS key, disk room) and run node.sh backup now (README Runbook: backups).",
    },
  }));
}

export function alarmSpecs(input: MonitoringInput): AlarmSpec[] {
  const { stackDimension: stack, periodSeconds: period } = input;
  if (!isAlarmPeriod(period))
    throw new Error(`alarm period ${period} s: CloudWatch takes 10, 30 or a multiple of 60 seconds up to a day`);
  const context: RuleContext = { input, thresholds: input.thresholds, sentinel: input.topology === "sentinel" };
  const stackWide = [
    ...availabilityRules(context),
    ...capacityRules(context),
    ...persistenceRules(context),
    ...certificateRules(context),
  ];
  const specs = [
    ...stackWide.map((rule) => {
      if (!metricDef(rule.metricName).stackWide)
        throw new Error(`${rule.id}: ${rule.metricName} is not published with {Stack} alone`);
      return toSpec(rule, { Stack: stack }, period);
    }),
    ...silentNodeRules(input).map(({ rule, dimensions }) => toSpec(rule, dimensions, period)),
    ...backupRules(input).map(({ rule, dimensions, period: p }) => toSpec(rule, dimensions, p)),
  ];
  const ids = new Set(specs.map((s) => s.id));
  if (ids.size !== specs.length) throw new Error("alarm ids must be unique (node names repeat?)");
  return specs;
}

function toSpec(rule: Rule, dimensions: Record<string, string>, periodSeconds: number): AlarmSpec {
  metricDef(rule.metricName); // throws for a metric the nodes do not publish
  const [m, n] = rule.of;
  const window = evaluationWindow(periodSeconds, m, n);
  const description = `${rule.what} To do: ${rule.todo} Runbook: ${RUNBOOK_URL} (${rule.row ?? rule.id}).`;
  if (description.length > MAX_DESCRIPTION_LENGTH)
    throw new Error(`${rule.id}: description longer than CloudWatch's ${MAX_DESCRIPTION_LENGTH} characters`);
  return {
    id: rule.id,
    metricName: rule.metricName,
    dimensions,
    statistic: rule.statistic,
    periodSeconds,
    ...window,
    threshold: rule.threshold,
    comparison: rule.comparison,
    treatMissingData: rule.treatMissingData ?? "notBreaching",
    severity: rule.severity ?? "page",
    description,
  };
}
