/**
 * The dashboard body (components/monitoring/dashboard.ts), pure: valid JSON CloudWatch takes, only metrics the nodes
 * publish, in the order an operator reads it, one labelled line per node, thresholds from config.
 */
import { MonitoringInput } from "../../components/monitoring/alarms";
import { DEFAULT_ALARM_THRESHOLDS } from "../../components/config/settings";
import {
  dashboardBody,
  dashboardName,
  dashboardUrl,
  DashboardInput,
  LineOptions,
} from "../../components/monitoring/dashboard";
import { METRIC_NAMES, METRICS_NAMESPACE, stackDimension } from "../../components/monitoring/metrics";
import { planTopology } from "../../components/ec2/topology";

const STACK = stackDimension("redis-stack", "prod");
const NODES = planTopology(3, 1, 3).map((n) => ({ name: n.name, shard: n.shard }));
const input = (over: Partial<MonitoringInput> = {}): DashboardInput => ({
  backupIntervalHours: 0,
  tls: true,
  topology: "cluster",
  region: "eu-west-1",
  maxmemoryPolicy: "allkeys-lru",
  stackDimension: STACK,
  nodes: NODES,
  shards: 3,
  replicasPerShard: 1,
  periodSeconds: 60,
  persistence: "aof+rdb",
  thresholds: DEFAULT_ALARM_THRESHOLDS,
  ...over,
});

interface ParsedLine {
  namespace: string;
  metric: string;
  dims: Record<string, string>;
  options: LineOptions;
}
function parseLine(line: unknown[]): ParsedLine {
  const options = line[line.length - 1] as LineOptions;
  const strings = line.slice(0, -1) as string[];
  const dims: Record<string, string> = {};
  for (let i = 2; i < strings.length; i += 2) dims[strings[i]] = strings[i + 1];
  return { namespace: strings[0], metric: strings[1], dims, options };
}

/** The body as CloudWatch receives it: JSON text, parsed back. */
const parsed = JSON.parse(JSON.stringify(dashboardBody(input()))) as {
  widgets: { type: string; x: number; y: number; width: number; height: number; properties: Record<string, unknown> }[];
};
const widgets = parsed.widgets;
const linesOf = (w: (typeof widgets)[number]) => (w.properties.metrics as unknown[][]).map(parseLine);

test("the body is JSON of metric widgets that fit CloudWatch's 24-column grid without overlapping", () => {
  expect(widgets.length).toBeGreaterThan(10);
  const cells = new Set<string>();
  for (const w of widgets) {
    expect(w.type).toBe("metric");
    expect(w.x + w.width).toBeLessThanOrEqual(24);
    expect(w.properties).toMatchObject({ region: "eu-west-1", view: "timeSeries", period: 60 });
    expect(typeof w.properties.title).toBe("string");
    for (let dx = 0; dx < w.width; dx++)
      for (let dy = 0; dy < w.height; dy++) {
        const cell = `${w.x + dx},${w.y + dy}`;
        expect(cells.has(cell)).toBe(false);
        cells.add(cell);
      }
  }
  expect(JSON.stringify(parsed).length).toBeLessThan(1024 * 1024);
});

test("it names only metrics the nodes publish, in their namespace, with the dimensions they publish", () => {
  const seen = new Set<string>();
  for (const w of widgets)
    for (const l of linesOf(w)) {
      expect(l.namespace).toBe(METRICS_NAMESPACE);
      expect(METRIC_NAMES).toContain(l.metric);
      seen.add(l.metric);
      const keys = Object.keys(l.dims).sort();
      expect([["Stack"], ["Node", "Shard", "Stack"]]).toContainEqual(keys);
      expect(l.dims.Stack).toBe(STACK);
      expect(l.options.label.length).toBeGreaterThan(0);
    }
  // ...and shows every one of them somewhere.
  expect([...seen].sort()).toEqual([...METRIC_NAMES].sort());
});

test("the overview comes first (memory, ops/s, hit rate, p95/p99 latency), then replication, cluster, persistence and disk, per node", () => {
  const titles = widgets.map((w) => String(w.properties.title));
  const first = widgets.slice(0, 4).map((w) => linesOf(w).map((l) => l.metric));
  expect(first[0]).toEqual(["MemoryPercentOfMaxmemory"]);
  expect(new Set(first[1])).toEqual(new Set(["OpsPerSecond"]));
  expect(new Set(first[2])).toEqual(new Set(["HitRate"]));
  expect(new Set(first[3])).toEqual(new Set(["LatencyP99", "LatencyP95"]));
  const firstOf = (prefix: string) => titles.findIndex((t) => t.startsWith(prefix));
  const order = ["Replication:", "Cluster:", "Persistence:", "Disk:", "Per node:"].map(firstOf);
  expect(order.every((i) => i >= 4)).toBe(true);
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  const metricsIn = (prefix: string) =>
    new Set(
      widgets
        .filter((w) => String(w.properties.title).startsWith(prefix))
        .flatMap((w) => linesOf(w).map((l) => l.metric)),
    );
  expect([...metricsIn("Replication:")]).toEqual(
    expect.arrayContaining([
      "ReplicationLagBytes",
      "ReplicationLagSeconds",
      "ConnectedReplicas",
      "IsMaster",
      "RoleChanged",
    ]),
  );
  expect([...metricsIn("Cluster:")]).toEqual(
    expect.arrayContaining([
      "ClusterStateOk",
      "MastersSeen",
      "ClusterSlotsOk",
      "ClusterSlotsFail",
      "ClusterSlotsPfail",
    ]),
  );
  expect([...metricsIn("Persistence:")]).toEqual(expect.arrayContaining(["RdbSecondsSinceLastSave", "AofWriteOk"]));
  expect([...metricsIn("Disk:")]).toEqual(["DataDiskUsedPercent"]);
});

test("per-node panels draw one line per node, labelled with the node and its shard", () => {
  const perNode = widgets.filter((w) => String(w.properties.title).startsWith("Per node:"));
  expect(perNode.length).toBeGreaterThan(3);
  const up = perNode.find((w) => linesOf(w).every((l) => l.metric === "Up"));
  if (!up) throw new Error("no Up panel");
  expect(linesOf(up).map((l) => [l.dims.Node, l.dims.Shard, l.options.label, l.options.stat])).toEqual(
    NODES.map((n) => [n.name, String(n.shard), `${n.name} (shard ${n.shard})`, "SampleCount"]),
  );
  for (const w of perNode) {
    const nodes = linesOf(w).map((l) => l.dims.Node);
    for (const n of NODES) expect(nodes).toContain(n.name);
  }
});

test("alarm thresholds show on their panels, from config", () => {
  const body = dashboardBody(
    input({
      thresholds: { memoryPercent: 70, latencyP99Ms: 4, diskPercent: 55, evictionsPerSecond: 3 },
      periodSeconds: 10,
    }),
  );
  const lines = body.widgets.flatMap((w) => w.properties.annotations?.horizontal ?? []).map((a) => a.value);
  expect(lines).toEqual(expect.arrayContaining([70, 4000, 55, 3, 3, 1, 86400]));
  for (const w of body.widgets) expect(w.properties.period).toBe(10);
});

test("the dashboard's name and console URL", () => {
  expect(dashboardName("redis-stack-prod")).toBe("redis-stack-prod");
  expect(dashboardName("my.project-prod")).toBe("my-project-prod");
  expect(dashboardUrl("eu-west-1", "redis-stack-prod")).toBe(
    "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=redis-stack-prod",
  );
});
