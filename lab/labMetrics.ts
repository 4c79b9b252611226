/**
 * Reading what the lab's nodes published to its CloudWatch stand-in: per-node series, the stack's own
 * alarms at the lab's period, and which of them a replay of the data fires (lab/alarmReplay.ts). Shared
 * by the metrics tests and `npm run bench:metrics`.
 */
import { ClusterLab, LAB_NAMES } from "./clusterLab";
import { MetricDatum } from "./aws/state";
import { DataPoint, replayAlarm } from "./alarmReplay";
import { AlarmSpec, alarmSpecs, monitoringInput, nodeDimensions } from "../components/monitoring/alarms";
import { MetricsInterval } from "../components/monitoring/metrics";

export const dim = (d: MetricDatum, name: string) => d.dimensions.find((x) => x.name === name)?.value;
export const at = (d: MetricDatum) => Date.parse(d.timestamp ?? "");

/** The per-node series of one metric, oldest first. */
export function series(all: MetricDatum[], metric: string, node: string): MetricDatum[] {
  return all
    .filter((d) => d.metricName === metric && dim(d, "Node") === node && d.dimensions.length === 3)
    .sort((a, b) => at(a) - at(b));
}

export async function waitForMetrics(
  c: ClusterLab,
  done: (all: MetricDatum[]) => boolean,
  timeoutMs: number,
): Promise<MetricDatum[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await c.aws.metrics();
    if (done(all)) return all;
    if (Date.now() > deadline) return all;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The lab stack's own alarms (as the component would create them), at the lab's metrics period. */
export function labAlarms(c: ClusterLab, periodSeconds: MetricsInterval): AlarmSpec[] {
  const ec2 = c.settings.ec2;
  if (!ec2) throw new Error("EC2 settings needed");
  return alarmSpecs(
    monitoringInput(
      { ...ec2, metricsIntervalSeconds: periodSeconds },
      c.settings,
      LAB_NAMES.metricsStack,
      c.nodes.map((n) => ({ name: n.node.name, shard: n.node.shard })),
    ),
  );
}

/** The published data as the replay takes it. */
export function dataPoints(all: MetricDatum[]): DataPoint[] {
  return all
    .filter((d) => d.value !== undefined)
    .map((d) => ({
      metricName: d.metricName,
      timestamp: at(d),
      value: d.value ?? 0,
      dimensions: Object.fromEntries(d.dimensions.map((x) => [x.name, x.value])),
    }));
}

/** Which alarms went to ALARM when replayed over [from, to), each starting once a full window of data exists. */
export function firedAlarms(specs: AlarmSpec[], all: MetricDatum[], from: number, to: number): string[] {
  const points = dataPoints(all);
  return specs
    .filter((spec) => {
      const start = from + spec.evaluationPeriods * spec.periodSeconds * 1000;
      return replayAlarm(spec, points, { from: start, to, initialState: "OK" }).everAlarm;
    })
    .map((spec) => spec.id);
}

/**
 * Which nodes' own values make an alarm fire: a stack-wide alarm replayed over each node's per-node series
 * (its {Stack, Shard, Node} copy) instead of the {Stack} aggregate, with missing data not breaching (a
 * silent node is the silence alarm's, not every alarm's). A per-node alarm names its own node when it fires.
 */
export function culprits(c: ClusterLab, spec: AlarmSpec, all: MetricDatum[], from: number, to: number): string[] {
  if (spec.dimensions.Node !== undefined)
    return firedAlarms([spec], all, from, to).length ? [spec.dimensions.Node] : [];
  return c.nodes
    .map((n) => n.node)
    .filter((node) => {
      const perNode: AlarmSpec = {
        ...spec,
        dimensions: nodeDimensions(spec.dimensions.Stack, node),
        treatMissingData: "notBreaching",
      };
      return firedAlarms([perNode], all, from, to).length > 0;
    })
    .map((node) => node.name);
}
