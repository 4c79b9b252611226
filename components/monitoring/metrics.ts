/**
 * The metrics every EC2 node publishes to CloudWatch (components/ec2/node/metrics.py, run by
 * redis-node-metrics.timer): one list that the collector, the alarms, the dashboard and the tests share.
 * A unit test runs the collector's `--names` and checks it publishes exactly these.
 *
 * Each datum goes out with the dimensions {Stack, Shard, Node}. Those marked `stackWide` are also
 * published with {Stack} alone, so one alarm per stack can take the worst value over every node
 * (CloudWatch aggregates the data points of all nodes that share those dimensions).
 */

export const METRICS_NAMESPACE = "RedisStack";

export type MetricUnit = "Bytes" | "Percent" | "Count" | "Count/Second" | "Microseconds" | "Seconds" | "None";

export interface MetricDef {
  name: string;
  unit: MetricUnit;
  /** Also published with {Stack} only (what the stack-wide alarms read). */
  stackWide?: boolean;
  /** Published only by masters or only by replicas (absent on the other role). */
  role?: "master" | "replica";
  help: string;
}

export const NODE_METRICS: readonly MetricDef[] = [
  // Memory
  { name: "UsedMemory", unit: "Bytes", help: "used_memory" },
  {
    name: "MemoryPercentOfMaxmemory",
    unit: "Percent",
    stackWide: true,
    help: "used_memory as a percent of maxmemory",
  },
  { name: "RssMemory", unit: "Bytes", help: "used_memory_rss" },
  { name: "FragmentationRatio", unit: "None", help: "mem_fragmentation_ratio" },
  { name: "MemoryPercentOfInstance", unit: "Percent", help: "used_memory_rss as a percent of the instance's RAM" },
  // Traffic, over the period (deltas of the counters, not the instantaneous figures)
  { name: "OpsPerSecond", unit: "Count/Second", help: "total_commands_processed per second over the period" },
  {
    name: "HitRate",
    unit: "Percent",
    help: "keyspace_hits / (hits + misses) over the period; absent when the period had no read",
  },
  {
    name: "EvictionsPerSecond",
    unit: "Count/Second",
    stackWide: true,
    help: "evicted_keys per second over the period",
  },
  { name: "ExpiredPerSecond", unit: "Count/Second", help: "expired_keys per second over the period" },
  // Latency of the data commands served in the period (LATENCY HISTOGRAM deltas; admin commands left out)
  { name: "LatencyP50", unit: "Microseconds", help: "p50 command latency over the period" },
  { name: "LatencyP95", unit: "Microseconds", help: "p95 command latency over the period" },
  { name: "LatencyP99", unit: "Microseconds", stackWide: true, help: "p99 command latency over the period" },
  { name: "LatencyP999", unit: "Microseconds", help: "p99.9 command latency over the period" },
  // Clients
  { name: "ConnectedClients", unit: "Count", help: "connected_clients" },
  {
    name: "RejectedConnections",
    unit: "Count",
    stackWide: true,
    help: "rejected_connections in the period (maxclients reached)",
  },
  // Replication
  { name: "IsMaster", unit: "None", help: "1 on a master, 0 on a replica" },
  {
    name: "RoleChanged",
    unit: "Count",
    stackWide: true,
    help: "1 when the role differs from the previous period's (a failover involved this node)",
  },
  {
    name: "ConnectedReplicas",
    unit: "Count",
    role: "master",
    stackWide: true,
    help: "connected_slaves of a master (the stack-wide minimum: the emptiest shard)",
  },
  { name: "MasterLinkUp", unit: "None", role: "replica", help: "1 while a replica's link to its master is up" },
  { name: "ReplicationLagBytes", unit: "Bytes", role: "replica", help: "master offset minus this replica's" },
  {
    name: "ReplicationLagSeconds",
    unit: "Seconds",
    role: "replica",
    help: "seconds since the master last talked to this replica",
  },
  // Cluster
  {
    name: "ClusterStateOk",
    unit: "None",
    stackWide: true,
    help: "1 while cluster_state is ok as this node sees it",
  },
  { name: "ClusterSlotsOk", unit: "Count", help: "cluster_slots_ok" },
  { name: "ClusterSlotsPfail", unit: "Count", help: "cluster_slots_pfail" },
  { name: "ClusterSlotsFail", unit: "Count", stackWide: true, help: "cluster_slots_fail" },
  { name: "ClusterKnownNodes", unit: "Count", help: "cluster_known_nodes" },
  {
    name: "MastersSeen",
    unit: "Count",
    stackWide: true,
    help: "masters with slots and no failure flag in this node's view",
  },
  // Persistence
  { name: "RdbLastSaveOk", unit: "None", stackWide: true, help: "1 when the last RDB save succeeded" },
  {
    name: "RdbSecondsSinceLastSave",
    unit: "Seconds",
    stackWide: true,
    help: "seconds since the last successful RDB save",
  },
  { name: "AofWriteOk", unit: "None", stackWide: true, help: "1 when the last AOF write succeeded (1 with AOF off)" },
  { name: "AofRewriteInProgress", unit: "None", help: "1 during an AOF rewrite" },
  // Host
  {
    name: "DataDiskUsedPercent",
    unit: "Percent",
    stackWide: true,
    help: "percent used of the data volume's filesystem",
  },
  {
    name: "TlsCertDaysLeft",
    unit: "None",
    stackWide: true,
    help: "days until the node's TLS certificate expires (TLS on only)",
  },
  { name: "CpuPercent", unit: "Percent", help: "redis-server's CPU (user + sys) over the period, of one core" },
  { name: "Up", unit: "Count", help: "1 per successful collection: a node that stops reporting has none" },
];

export const METRIC_NAMES: readonly string[] = NODE_METRICS.map((m) => m.name);

/**
 * Published by the backup (components/ec2/node/lib-backup.sh), not by the collector: one datum per shard
 * of each successful backup, with the dimensions {Stack, Shard}. The stale-backup alarms count them.
 */
export const BACKUP_COMPLETED: MetricDef = {
  name: "BackupCompleted",
  unit: "Count",
  help: "1 per shard of each backup uploaded with its manifest (node.sh backup)",
};

/** Collection periods CloudWatch alarms can evaluate (high resolution below 60 s). */
export const METRICS_INTERVALS = [10, 30, 60] as const;
export type MetricsInterval = (typeof METRICS_INTERVALS)[number];
export const DEFAULT_METRICS_INTERVAL: MetricsInterval = 60;

export function metricDef(name: string): MetricDef {
  const m = [...NODE_METRICS, BACKUP_COMPLETED].find((x) => x.name === name);
  if (!m) throw new Error(`no metric named ${name}`);
  return m;
}

/** The Stack dimension's value: one per Pulumi stack, the project's name included (two projects may share an account). */
export function stackDimension(project: string, stack: string): string {
  return `${project}-${stack}`;
}
