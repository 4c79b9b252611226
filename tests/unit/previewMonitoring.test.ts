/** Bad monitoring values fail the program (what `pulumi preview` runs), each named with its fix. */
import { runStack, cloudResources } from "./support/stackHarness";

test("bad metrics interval and alarm thresholds fail before registering anything, each with its fix", async () => {
  const run = await runStack("prod", {
    "redis-stack:metricsIntervalSeconds": "15",
    "redis-stack:alarmMemoryPercent": "0",
    "redis-stack:alarmLatencyP99Ms": "-1",
    "redis-stack:alarmDiskPercent": "120",
    "redis-stack:alarmEvictionsPerSecond": "-3",
  });
  expect(run.error).toBeDefined();
  const message = String(run.error?.message);
  expect(message).toMatch(/^invalid stack configuration \(5 problems\):/);
  for (const [key, value, fix] of [
    ["metricsIntervalSeconds", "15", "pulumi config set metricsIntervalSeconds 60"],
    ["alarmMemoryPercent", "0", "pulumi config set alarmMemoryPercent 90"],
    ["alarmLatencyP99Ms", "-1", "pulumi config set alarmLatencyP99Ms 10"],
    ["alarmDiskPercent", "120", "pulumi config set alarmDiskPercent 80"],
    ["alarmEvictionsPerSecond", "-3", "pulumi config set alarmEvictionsPerSecond 1"],
  ]) {
    expect(message).toContain(`redis-stack:${key} = "${value}"`);
    expect(message).toContain(`fix: ${fix}`);
  }
  expect(cloudResources(run)).toEqual([]);
});
