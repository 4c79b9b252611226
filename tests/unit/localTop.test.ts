/**
 * `npm run local -- top`: rows come from the collector's own per-node data points (the figures
 * CloudWatch would get), and the table shows "-" where a figure does not exist yet.
 */
import { parseConfigArgs } from "../../local/local";
import { CollectorDatum, renderTop, topRow } from "../../local/top";

const dims = [
  { Name: "Stack", Value: "s" },
  { Name: "Shard", Value: "0" },
  { Name: "Node", Value: "shard0-1" },
];
const datum = (MetricName: string, Value: number, d = dims): CollectorDatum => ({ MetricName, Value, Dimensions: d });

test("a row takes the node's own series, not the stack-wide copies", () => {
  const row = topRow("shard0-1", [
    datum("IsMaster", 0),
    datum("MemoryPercentOfMaxmemory", 12.5),
    datum("MemoryPercentOfMaxmemory", 99, dims.slice(0, 1)),
    datum("OpsPerSecond", 210.4),
    datum("HitRate", 75),
    datum("LatencyP99", 64),
    datum("ReplicationLagBytes", 0),
    datum("ClusterStateOk", 1),
  ]);
  expect(row).toEqual({
    node: "shard0-1",
    role: "replica",
    memoryPercent: 12.5,
    opsPerSecond: 210.4,
    hitRate: 75,
    p99Us: 64,
    lagBytes: 0,
    clusterOk: true,
  });
});

test("the table: one line per node, '-' for figures not there yet, the failing node's error shown", () => {
  const text = renderTop(
    [
      topRow("shard0-0", [datum("IsMaster", 1), datum("ClusterStateOk", 0)]),
      { node: "shard1-0", error: "collector exited 1" },
    ],
    new Date("2026-11-28T12:00:00Z"),
  );
  const lines = text.split("\n");
  expect(lines[0]).toContain("12:00:00 UTC");
  expect(lines[1].split(/\s+/)).toEqual([
    "node",
    "role",
    "mem",
    "%",
    "ops/s",
    "hit",
    "%",
    "p99",
    "us",
    "lag",
    "B",
    "cluster",
  ]);
  expect(lines[2].split(/\s+/)).toEqual(["shard0-0", "master", "-", "-", "-", "-", "NOT", "ok"]);
  expect(lines[3]).toMatch(/^shard1-0\s+\?.*collector exited 1$/);
});

test("`top --once` is the top command with its flag", () => {
  expect(parseConfigArgs(["top", "--once"]).command).toBe("top");
});
