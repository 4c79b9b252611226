/**
 * A CloudWatch alarm evaluator, for replaying what nodes published (in the lab, or a synthetic series in a
 * test) against the stack's own AlarmSpecs (components/monitoring/alarms.ts): would this alarm have fired, and when?
 * Pure. Written from CloudWatch's documented semantics (User Guide: "Evaluating an alarm", "Configuring
 * how CloudWatch alarms treat missing data"; PutMetricAlarm's DatapointsToAlarm, the M of "M out of N"):
 *
 * - Data points whose dimensions equal the alarm's exactly (same names, same values; a datum published
 *   with {Stack, Shard, Node} is another series than {Stack}) are bucketed into periods aligned to the
 *   period length from the epoch, and the alarm's statistic is taken per period. A period without data
 *   has no value: it is missing (SampleCount included, which CloudWatch reports as no datapoint, not 0).
 * - At the end of each period the alarm looks at the last N = evaluationPeriods periods. A period
 *   breaches when its value compares true against the threshold. With none missing: ALARM when at least
 *   M = datapointsToAlarm breach, OK otherwise. Missing periods count per treatMissingData: `breaching`
 *   as breaching, `notBreaching` as not, `ignore` keeps the current state (unless M real points breach),
 *   `missing` decides on the real points alone and gives INSUFFICIENT_DATA when there is none.
 *
 * Simplifications (documented where CloudWatch's behaviour is richer):
 * - The evaluation range is exactly the last N periods. CloudWatch retrieves a longer range (its length
 *   depends on the period and resolution) and, when some of the last N periods are missing but enough
 *   real points exist further back, evaluates the N most recent real points instead of filling in gaps.
 *   So here a gap is always filled per treatMissingData; CloudWatch may decide on older data.
 * - `missing` with only some real points: the decision over the real points alone, with M capped at their
 *   number (the documented table's 3-of-3 row "- - X - -" goes to ALARM). `ignore` with missing points
 *   keeps the state unless M real points breach.
 * - One evaluation at each period's end, with every point already there: no ingestion delay, no late
 *   data, no evaluation every minute within longer periods.
 * - A new alarm starts in INSUFFICIENT_DATA; periods before the replay's start count as missing.
 * - No percentile statistics, units, metric math or anomaly detection.
 */
import { AlarmSpec, Comparison, Statistic } from "../components/monitoring/alarms";

export interface DataPoint {
  /** Milliseconds since the epoch. */
  timestamp: number;
  value: number;
  dimensions: Record<string, string>;
  /** When given, a point of another metric is left out. */
  metricName?: string;
}

export type AlarmState = "OK" | "ALARM" | "INSUFFICIENT_DATA";

export interface PeriodResult {
  /** The period's bounds, in ms: [start, end). */
  start: number;
  end: number;
  /** The statistic over the period's points; undefined when it had none (missing). */
  value?: number;
  /** Whether the value breaches the threshold; undefined when missing. */
  breaching?: boolean;
  /** The alarm's state after the evaluation at this period's end. */
  state: AlarmState;
}

export interface Replay {
  timeline: PeriodResult[];
  everAlarm: boolean;
  /** End of the first period after which the alarm was in ALARM. */
  firstAlarmAt?: number;
}

export interface ReplayOptions {
  /** First period to evaluate (ms; rounded down to a period). Default: the first point's period. */
  from?: number;
  /** Evaluate up to this time (ms, exclusive). Default: the end of the last point's period. */
  to?: number;
  initialState?: AlarmState;
}

export function sameDimensions(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return (
    ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k])
  );
}

/** The statistic over one period's values; undefined for a period without data. */
export function aggregate(statistic: Statistic, values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  switch (statistic) {
    case "Minimum":
      return Math.min(...values);
    case "Maximum":
      return Math.max(...values);
    case "Sum":
      return values.reduce((a, b) => a + b, 0);
    case "SampleCount":
      return values.length;
    case "Average":
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}

export function breaches(comparison: Comparison, value: number, threshold: number): boolean {
  switch (comparison) {
    case "GreaterThanOrEqualToThreshold":
      return value >= threshold;
    case "GreaterThanThreshold":
      return value > threshold;
    case "LessThanThreshold":
      return value < threshold;
    case "LessThanOrEqualToThreshold":
      return value <= threshold;
  }
}

/**
 * The state after one evaluation. `window`: the last N periods, oldest first: true breaching, false not,
 * undefined missing.
 */
export function evaluateWindow(
  spec: Pick<AlarmSpec, "datapointsToAlarm" | "treatMissingData">,
  window: (boolean | undefined)[],
  current: AlarmState,
): AlarmState {
  const m = spec.datapointsToAlarm;
  const real = window.filter((b): b is boolean => b !== undefined);
  const breachingReal = real.filter((b) => b).length;
  const missing = window.length - real.length;
  if (missing === 0) return breachingReal >= m ? "ALARM" : "OK";
  switch (spec.treatMissingData) {
    case "breaching":
      return breachingReal + missing >= m ? "ALARM" : "OK";
    case "notBreaching":
      return breachingReal >= m ? "ALARM" : "OK";
    case "ignore":
      return breachingReal >= m ? "ALARM" : current;
    case "missing":
      if (real.length === 0) return "INSUFFICIENT_DATA";
      return breachingReal >= Math.min(m, real.length) ? "ALARM" : "OK";
  }
}

/** Replays `points` through the alarm: its state at the end of every period from `from` to `to`. */
export function replayAlarm(spec: AlarmSpec, points: DataPoint[], opts: ReplayOptions = {}): Replay {
  const periodMs = spec.periodSeconds * 1000;
  const ours = points.filter(
    (p) =>
      (p.metricName === undefined || p.metricName === spec.metricName) && sameDimensions(p.dimensions, spec.dimensions),
  );
  const buckets = new Map<number, number[]>();
  for (const p of ours) {
    const k = Math.floor(p.timestamp / periodMs);
    const values = buckets.get(k) ?? [];
    values.push(p.value);
    buckets.set(k, values);
  }
  const times = points.map((p) => p.timestamp);
  const fromMs = opts.from ?? (times.length > 0 ? Math.min(...times) : undefined);
  const toMs = opts.to ?? (times.length > 0 ? (Math.floor(Math.max(...times) / periodMs) + 1) * periodMs : undefined);
  if (fromMs === undefined || toMs === undefined) return { timeline: [], everAlarm: false };

  const valueOf = (k: number) => aggregate(spec.statistic, buckets.get(k) ?? []);
  const breachOf = (k: number) => {
    const v = valueOf(k);
    return v === undefined ? undefined : breaches(spec.comparison, v, spec.threshold);
  };
  const timeline: PeriodResult[] = [];
  let state: AlarmState = opts.initialState ?? "INSUFFICIENT_DATA";
  let firstAlarmAt: number | undefined;
  for (let k = Math.floor(fromMs / periodMs); (k + 1) * periodMs <= toMs; k++) {
    const window = Array.from({ length: spec.evaluationPeriods }, (_, i) =>
      breachOf(k - spec.evaluationPeriods + 1 + i),
    );
    state = evaluateWindow(spec, window, state);
    const value = valueOf(k);
    const end = (k + 1) * periodMs;
    timeline.push({
      start: k * periodMs,
      end,
      ...(value === undefined ? {} : { value, breaching: breaches(spec.comparison, value, spec.threshold) }),
      state,
    });
    if (state === "ALARM" && firstAlarmAt === undefined) firstAlarmAt = end;
  }
  return { timeline, everAlarm: firstAlarmAt !== undefined, ...(firstAlarmAt === undefined ? {} : { firstAlarmAt }) };
}
