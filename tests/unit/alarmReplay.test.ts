/**
 * The alarm evaluator (lab/alarmReplay.ts) on synthetic series, with the stack's own alarm specs: an
 * alarm fires after M of N breaching periods and not before, missing data counts per the alarm's
 * treatment, SampleCount of nothing is missing (not 0), and only the alarm's exact dimensions count.
 */
import { AlarmSpec, alarmSpecs, TreatMissingData } from "../../components/monitoring/alarms";
import { DEFAULT_ALARM_THRESHOLDS } from "../../components/config/settings";
import { stackDimension } from "../../components/monitoring/metrics";
import { planTopology } from "../../components/ec2/topology";
import { aggregate, DataPoint, evaluateWindow, replayAlarm } from "../../lab/alarmReplay";

const STACK = stackDimension("redis-stack", "prod");
const NODES = planTopology(3, 1, 3).map((n) => ({ name: n.name, shard: n.shard }));
const specs = alarmSpecs({
  stackDimension: STACK,
  nodes: NODES,
  topology: "cluster",
  shards: 3,
  replicasPerShard: 1,
  periodSeconds: 60,
  persistence: "aof+rdb",
  maxmemoryPolicy: "noeviction",
  thresholds: DEFAULT_ALARM_THRESHOLDS,
  backupIntervalHours: 6,
  tls: true,
});
const spec = (id: string): AlarmSpec => {
  const s = specs.find((x) => x.id === id);
  if (!s) throw new Error(`no alarm ${id}`);
  return s;
};

/** A start well inside a minute's alignment, so points land mid-period. */
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const MIN = 60_000;
const stackWide = { Stack: STACK };
const nodeDims = (name: string) => {
  const n = NODES.find((x) => x.name === name);
  if (!n) throw new Error(name);
  return { Stack: STACK, Shard: String(n.shard), Node: n.name };
};
/** One point per minute (at :05 of each), values in order; undefined leaves the minute empty. */
function series(values: (number | undefined)[], dimensions: Record<string, string>, metricName?: string): DataPoint[] {
  return values.flatMap((value, i) =>
    value === undefined ? [] : [{ timestamp: T0 + i * MIN + 5000, value, dimensions, metricName }],
  );
}
const states = (r: ReturnType<typeof replayAlarm>) => r.timeline.map((p) => p.state);
const span = (minutes: number) => ({ from: T0, to: T0 + minutes * MIN });

test("memory (3 of 3): fires at the end of the third breaching period, not before", () => {
  const r = replayAlarm(spec("memory"), series([50, 91, 92, 95, 60], stackWide), span(5));
  expect(states(r)).toEqual(["OK", "OK", "OK", "ALARM", "OK"]);
  expect(r.everAlarm).toBe(true);
  expect(r.firstAlarmAt).toBe(T0 + 4 * MIN);
  expect(r.timeline[3]).toMatchObject({ value: 95, breaching: true });
  // Two breaching periods in a row, twice, never three: never fires. The threshold is inclusive (>= 90).
  const twice = replayAlarm(spec("memory"), series([90, 90, 10, 90, 90, 10], stackWide), span(6));
  expect(twice.everAlarm).toBe(false);
});

test("latency p99 (3 of 5): three breaches within five periods fire, spread wider they do not", () => {
  const us = (ms: number) => ms * 1000;
  const r = replayAlarm(
    spec("latency-p99"),
    series([us(20), us(1), us(20), us(1), us(20), us(1), us(1)], stackWide),
    span(7),
  );
  expect(states(r)).toEqual(["OK", "OK", "OK", "OK", "ALARM", "OK", "OK"]);
  const spread = replayAlarm(
    spec("latency-p99"),
    series([us(20), us(1), us(1), us(20), us(1), us(1), us(20)], stackWide),
    span(7),
  );
  expect(spread.everAlarm).toBe(false);
  // Exactly at the threshold does not breach (GreaterThanThreshold).
  expect(replayAlarm(spec("latency-p99"), series([us(10), us(10), us(10)], stackWide), span(3)).everAlarm).toBe(false);
});

test("stack-wide Minimum: one node's cluster_state fail among healthy ones breaches", () => {
  const points = [
    ...series([1, 1, 1, 1], stackWide),
    ...series([1, 0, 0, 1], stackWide), // a second node publishing into the same {Stack} series
  ];
  const r = replayAlarm(spec("cluster-state"), points, span(4));
  expect(r.timeline.map((p) => p.value)).toEqual([1, 0, 0, 1]);
  expect(states(r)).toEqual(["OK", "OK", "ALARM", "OK"]);
});

test("missing data: breaching fires on silence, notBreaching stays OK, missing goes INSUFFICIENT_DATA, ignore keeps its state", () => {
  const silentAfterTwo = series([1, 1], stackWide);
  // cluster-state treats silence as breaching: 2 of 2 missing periods fire it.
  expect(states(replayAlarm(spec("cluster-state"), silentAfterTwo, span(5)))).toEqual([
    "OK",
    "OK",
    "OK",
    "ALARM",
    "ALARM",
  ]);
  // memory treats it as fine.
  expect(states(replayAlarm(spec("memory"), series([50, 50], stackWide), span(5)))).toEqual([
    "OK",
    "OK",
    "OK",
    "OK",
    "OK",
  ]);
  const as = (treatMissingData: TreatMissingData): AlarmSpec => ({ ...spec("memory"), treatMissingData });
  // A partly missing window under "missing" decides on the real points; all missing: INSUFFICIENT_DATA.
  expect(states(replayAlarm(as("missing"), series([95, 95, 95], stackWide), span(6)))).toEqual([
    "ALARM",
    "ALARM",
    "ALARM",
    "ALARM",
    "ALARM",
    "INSUFFICIENT_DATA",
  ]);
  // "ignore" keeps whatever state the last complete decision left.
  expect(states(replayAlarm(as("ignore"), series([95, 95, 95, undefined, undefined], stackWide), span(5)))).toEqual([
    "INSUFFICIENT_DATA",
    "INSUFFICIENT_DATA",
    "ALARM",
    "ALARM",
    "ALARM",
  ]);
  expect(states(replayAlarm(as("ignore"), series([10, 10, 10, undefined, 95], stackWide), span(6)))).toEqual([
    "INSUFFICIENT_DATA",
    "INSUFFICIENT_DATA",
    "OK",
    "OK",
    "OK",
    "OK",
  ]);
});

test("a node that stops publishing: SampleCount of nothing is missing, which the silent-node alarm counts as breaching", () => {
  const alarm = spec("shard1-0-silent");
  const up = series([1, 1, 1, 1], nodeDims("shard1-0"), "Up");
  const r = replayAlarm(alarm, up, span(8));
  expect(r.timeline.map((p) => p.value)).toEqual([1, 1, 1, 1, undefined, undefined, undefined, undefined]);
  expect(states(r)).toEqual(["OK", "OK", "OK", "OK", "OK", "OK", "ALARM", "ALARM"]);
  expect(r.firstAlarmAt).toBe(T0 + 7 * MIN);
  // One missed collection (a timer late by a second) does not page.
  const late = replayAlarm(alarm, series([1, 1, undefined, 1, 1, undefined, 1], nodeDims("shard1-0"), "Up"), span(7));
  expect(late.everAlarm).toBe(false);
  // Other nodes' data, or another metric with the node's dimensions, says nothing about this node.
  const others = [
    ...series([1, 1, 1, 1, 1], nodeDims("shard2-0"), "Up"),
    ...series([1, 1, 1, 1, 1], nodeDims("shard1-0"), "ClusterStateOk"),
  ];
  expect(states(replayAlarm(alarm, others, span(5)))).toEqual(["ALARM", "ALARM", "ALARM", "ALARM", "ALARM"]);
});

test("only the alarm's exact dimensions count: per-node series do not feed a {Stack} alarm", () => {
  const perNode = series([99, 99, 99, 99], nodeDims("shard0-0"), "MemoryPercentOfMaxmemory");
  expect(replayAlarm(spec("memory"), perNode, span(4)).everAlarm).toBe(false);
  const withStack = [...perNode, ...series([99, 99, 99, 99], stackWide, "MemoryPercentOfMaxmemory")];
  expect(replayAlarm(spec("memory"), withStack, span(4)).everAlarm).toBe(true);
});

test("notices and counters: one failover in a period fires the notice, no event is fine", () => {
  const r = replayAlarm(spec("failover"), series([0, 0, 1, 0], stackWide), span(4));
  expect(states(r)).toEqual(["OK", "OK", "ALARM", "OK"]);
  expect(replayAlarm(spec("rejected-connections"), [], span(3)).everAlarm).toBe(false);
});

test("periods align to the period length: points in one period aggregate, high-resolution periods included", () => {
  const tenSeconds = { ...spec("cluster-state"), periodSeconds: 10 };
  const points: DataPoint[] = [
    { timestamp: T0 + 1000, value: 1, dimensions: stackWide },
    { timestamp: T0 + 9999, value: 0, dimensions: stackWide },
    { timestamp: T0 + 10000, value: 1, dimensions: stackWide },
  ];
  const r = replayAlarm(tenSeconds, points);
  expect(r.timeline.map((p) => [p.start - T0, p.end - T0, p.value])).toEqual([
    [0, 10000, 0],
    [10000, 20000, 1],
  ]);
  expect(aggregate("SampleCount", [])).toBeUndefined();
  expect(aggregate("SampleCount", [5, 7])).toBe(2);
  expect(aggregate("Average", [1, 2, 6])).toBe(3);
  expect(aggregate("Sum", [1, 2, 6])).toBe(9);
});

test("the documented 3-of-3 table (evaluation range = the evaluated periods)", () => {
  const x = true; // breaching
  const o = false;
  const _ = undefined;
  const row = (window: (boolean | undefined)[], t: TreatMissingData, current: "OK" | "ALARM" = "OK") =>
    evaluateWindow({ datapointsToAlarm: 3, treatMissingData: t }, window, current);
  // all missing
  expect([
    row([_, _, _], "missing"),
    row([_, _, _], "ignore", "ALARM"),
    row([_, _, _], "breaching"),
    row([_, _, _], "notBreaching"),
  ]).toEqual(["INSUFFICIENT_DATA", "ALARM", "ALARM", "OK"]);
  // one real breaching point, two missing
  expect([
    row([_, x, _], "missing"),
    row([_, x, _], "ignore"),
    row([_, x, _], "breaching"),
    row([_, x, _], "notBreaching"),
  ]).toEqual(["ALARM", "OK", "ALARM", "OK"]);
  // complete windows ignore the treatment
  expect(row([x, x, x], "notBreaching")).toBe("ALARM");
  expect(row([o, x, x], "breaching")).toBe("OK");
});

test("backup-stale: quiet while each shard's backups land every 6 h (drifting a little later each time), fires 2 empty intervals after they stop", () => {
  const s = spec("shard1-backup-stale");
  const hour = 3600_000;
  const start = Date.UTC(2026, 0, 5, 0, 30);
  // A relative timer: every 6 h plus the backup's own run time (9 min), for two days; then nothing.
  const points: DataPoint[] = [];
  for (let k = 0; k < 8; k++)
    for (const shard of ["0", "1", "2"])
      points.push({
        timestamp: start + k * (6 * hour + 9 * 60_000),
        value: 1,
        dimensions: { Stack: STACK, Shard: shard },
      });
  const lastBackup = points[points.length - 1].timestamp;
  const quiet = replayAlarm(s, points, { from: start, to: lastBackup });
  expect(quiet.everAlarm).toBe(false);
  const r = replayAlarm(s, points, { from: start, to: lastBackup + 24 * hour });
  expect(r.everAlarm).toBe(true);
  const after = (r.firstAlarmAt ?? 0) - lastBackup;
  // Two whole empty periods after the last backup: 12 to 18 hours later.
  expect(after).toBeGreaterThan(12 * hour);
  expect(after).toBeLessThanOrEqual(18 * hour);
  // One shard's backups failing is that shard's alarm only.
  const shard1Stops = points.filter((p) => p.dimensions.Shard !== "1" || p.timestamp < start + 12 * hour);
  const other = replayAlarm(spec("shard0-backup-stale"), shard1Stops, { from: start, to: lastBackup });
  expect(other.everAlarm).toBe(false);
  expect(replayAlarm(s, shard1Stops, { from: start, to: lastBackup }).everAlarm).toBe(true);
});

test("tls-cert-expiry: quiet while every node has 30 days or more, fires in the first period one has less", () => {
  // Two nodes' certificates counting down a minute at a time, one crossing 30 days in the fourth minute.
  const day = 1 / (24 * 60);
  const points = [
    ...series([30 + 3 * day, 30 + 2 * day, 30 + day, 30 - day / 2, 30 - 2 * day], stackWide, "TlsCertDaysLeft"),
    ...series([400, 400, 400, 400, 400], stackWide, "TlsCertDaysLeft"),
  ];
  const r = replayAlarm(spec("tls-cert-expiry"), points, span(5));
  expect(states(r)).toEqual(["OK", "OK", "OK", "ALARM", "ALARM"]);
  expect(r.firstAlarmAt).toBe(T0 + 4 * MIN);
  // A renewal (the node loads its new certificate live) clears it at the next period.
  const renewed = replayAlarm(spec("tls-cert-expiry"), series([29.5, 729.5, 729.5], stackWide), span(3));
  expect(states(renewed)).toEqual(["ALARM", "OK", "OK"]);
});
