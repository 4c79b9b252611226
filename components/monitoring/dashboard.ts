/**
 * The CloudWatch dashboard of an EC2 stack, as data (components/monitoring/nodeAlarms.ts creates it with
 * `JSON.stringify(dashboardBody(...))`). Pure. It shows only the metrics the nodes publish
 * (components/monitoring/metrics.ts), in sections: the overview (memory, ops/s, hit rate, latency), replication,
 * cluster state, persistence and disk, then one panel per metric with a line per node. Lines of
 * stack-wide series are the worst node; per-node lines are labelled with the node and its shard.
 * Alarm thresholds show as horizontal lines, from the same settings the alarms read.
 */
import { MonitoringInput, nodeDimensions, Statistic } from "./alarms";
import { METRICS_NAMESPACE, metricDef } from "./metrics";
import { TLS_RENEWAL_DAYS } from "../ec2/node/redisConf";

export interface DashboardInput extends MonitoringInput {
  region: string;
}

export interface LineOptions {
  label: string;
  stat: Statistic;
}

/** One line of a metric widget: namespace, metric name, dimension name/value pairs, then its options. */
export type MetricLine = (string | LineOptions)[];

export interface MetricWidget {
  type: "metric";
  x: number;
  y: number;
  width: number;
  height: number;
  properties: {
    title: string;
    region: string;
    view: "timeSeries";
    stacked: boolean;
    period: number;
    stat: Statistic;
    metrics: MetricLine[];
    yAxis: { left: { min: number } };
    annotations?: { horizontal: { label: string; value: number }[] };
  };
}

export interface DashboardBody {
  start: string;
  periodOverride: "inherit";
  widgets: MetricWidget[];
}

const COLUMNS = 24;
const WIDTH = 8;
const HEIGHT = 6;

/** CloudWatch dashboard names take letters, digits, "-" and "_" (up to 255). */
export function dashboardName(stackDimension: string): string {
  return stackDimension.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 255);
}

export function dashboardUrl(region: string, name: string): string {
  return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${name}`;
}

interface Panel {
  title: string;
  lines: MetricLine[];
  stacked?: boolean;
  thresholds?: { label: string; value: number }[];
}

export function dashboardBody(input: DashboardInput): DashboardBody {
  const { stackDimension: stack, thresholds: t } = input;
  const line = (metricName: string, dims: Record<string, string>, options: LineOptions): MetricLine => {
    metricDef(metricName); // only what the nodes publish
    return [METRICS_NAMESPACE, metricName, ...Object.entries(dims).flat(), options];
  };
  /** The {Stack} series: CloudWatch's aggregate over every node. */
  const worst = (metricName: string, stat: Statistic, label: string): MetricLine => {
    if (!metricDef(metricName).stackWide) throw new Error(`${metricName} is not published with {Stack} alone`);
    return line(metricName, { Stack: stack }, { label, stat });
  };
  /** One line per node, labelled with the node and its shard. */
  const byNode = (metricName: string, stat: Statistic, prefix = ""): MetricLine[] =>
    input.nodes.map((n) =>
      line(metricName, nodeDimensions(stack, n), { label: `${prefix}${n.name} (shard ${n.shard})`, stat }),
    );

  const sections: Panel[][] = [
    [
      {
        title: "Memory used, % of maxmemory (fullest node)",
        lines: [worst("MemoryPercentOfMaxmemory", "Maximum", "fullest node")],
        thresholds: [{ label: "alarm (alarmMemoryPercent)", value: t.memoryPercent }],
      },
      { title: "Operations per second (stacked by node)", lines: byNode("OpsPerSecond", "Average"), stacked: true },
      { title: "Hit rate, % of reads (by node)", lines: byNode("HitRate", "Average") },
      {
        title: "Latency p95 / p99, microseconds",
        lines: [worst("LatencyP99", "Maximum", "p99 slowest node"), ...byNode("LatencyP95", "Maximum", "p95 ")],
        thresholds: [{ label: "p99 alarm (alarmLatencyP99Ms)", value: Math.round(t.latencyP99Ms * 1000) }],
      },
    ],
    [
      { title: "Replication: lag in bytes (replicas)", lines: byNode("ReplicationLagBytes", "Maximum") },
      { title: "Replication: lag in seconds (replicas)", lines: byNode("ReplicationLagSeconds", "Maximum") },
      {
        title: "Replication: connected replicas (emptiest master), master link up (replicas)",
        lines: [
          worst("ConnectedReplicas", "Minimum", "replicas of the emptiest master"),
          ...byNode("MasterLinkUp", "Minimum", "link up "),
        ],
        thresholds: [{ label: "replicasPerShard", value: input.replicasPerShard }],
      },
      {
        title: "Replication: role (1 = master) and role changes",
        lines: [worst("RoleChanged", "Sum", "role changes"), ...byNode("IsMaster", "Maximum", "master ")],
      },
    ],
    [
      {
        title: "Cluster: state ok (worst node) and masters seen (fewest)",
        lines: [
          worst("ClusterStateOk", "Minimum", "cluster_state ok"),
          worst("MastersSeen", "Minimum", "masters seen"),
        ],
        thresholds: [{ label: "shards", value: input.shards }],
      },
      {
        title: "Cluster: slots failing (worst node) and possibly failing (by node)",
        lines: [worst("ClusterSlotsFail", "Maximum", "fail"), ...byNode("ClusterSlotsPfail", "Maximum", "pfail ")],
      },
      { title: "Cluster: slots ok (by node)", lines: byNode("ClusterSlotsOk", "Minimum") },
      { title: "Cluster: known nodes (by node)", lines: byNode("ClusterKnownNodes", "Minimum") },
    ],
    [
      {
        title: "Persistence: seconds since the last RDB save (oldest node)",
        lines: [worst("RdbSecondsSinceLastSave", "Maximum", "oldest save")],
        thresholds: [{ label: "24 h", value: 86400 }],
      },
      {
        title: "Persistence: last RDB save ok, AOF write ok (worst node), AOF rewrites",
        lines: [
          worst("RdbLastSaveOk", "Minimum", "RDB save ok"),
          worst("AofWriteOk", "Minimum", "AOF write ok"),
          ...byNode("AofRewriteInProgress", "Maximum", "rewriting "),
        ],
      },
      {
        title: "Disk: data volume used, % (by node)",
        lines: byNode("DataDiskUsedPercent", "Maximum"),
        thresholds: [{ label: "alarm (alarmDiskPercent)", value: t.diskPercent }],
      },
      ...(input.tls
        ? [
            {
              title: "TLS: days until the certificate expires (by node)",
              lines: byNode("TlsCertDaysLeft", "Minimum"),
              thresholds: [{ label: "alarm, renewal window", value: TLS_RENEWAL_DAYS }],
            },
          ]
        : []),
    ],
    [
      { title: "Per node: collections per period (Up)", lines: byNode("Up", "SampleCount") },
      { title: "Per node: memory, % of maxmemory", lines: byNode("MemoryPercentOfMaxmemory", "Maximum") },
      { title: "Per node: used memory, bytes", lines: byNode("UsedMemory", "Maximum") },
      { title: "Per node: RSS, bytes", lines: byNode("RssMemory", "Maximum") },
      { title: "Per node: RSS, % of instance RAM", lines: byNode("MemoryPercentOfInstance", "Maximum") },
      { title: "Per node: fragmentation ratio", lines: byNode("FragmentationRatio", "Maximum") },
      { title: "Per node: redis-server CPU, % of one core", lines: byNode("CpuPercent", "Maximum") },
      {
        title: "Per node: evictions and expirations per second",
        lines: [
          ...byNode("EvictionsPerSecond", "Maximum", "evicted "),
          ...byNode("ExpiredPerSecond", "Maximum", "expired "),
        ],
        thresholds: [{ label: "alarm (alarmEvictionsPerSecond)", value: t.evictionsPerSecond }],
      },
      {
        title: "Per node: connected clients and rejected connections",
        lines: [...byNode("ConnectedClients", "Maximum"), ...byNode("RejectedConnections", "Sum", "rejected ")],
      },
      {
        title: "Per node: latency p50 / p99 / p99.9, microseconds",
        lines: [
          ...byNode("LatencyP50", "Maximum", "p50 "),
          ...byNode("LatencyP99", "Maximum", "p99 "),
          ...byNode("LatencyP999", "Maximum", "p99.9 "),
        ],
      },
    ],
  ];

  const widgets: MetricWidget[] = [];
  let y = 0;
  for (const section of sections) {
    section.forEach((panel, i) => {
      const perRow = COLUMNS / WIDTH;
      widgets.push({
        type: "metric",
        x: (i % perRow) * WIDTH,
        y: y + Math.floor(i / perRow) * HEIGHT,
        width: WIDTH,
        height: HEIGHT,
        properties: {
          title: panel.title,
          region: input.region,
          view: "timeSeries",
          stacked: panel.stacked ?? false,
          period: input.periodSeconds,
          stat: "Maximum",
          metrics: panel.lines,
          yAxis: { left: { min: 0 } },
          ...(panel.thresholds ? { annotations: { horizontal: panel.thresholds } } : {}),
        },
      });
    });
    y += Math.ceil(section.length / (COLUMNS / WIDTH)) * HEIGHT;
  }
  return { start: "-PT6H", periodOverride: "inherit", widgets };
}
