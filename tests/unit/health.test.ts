/**
 * The health wait `pulumi up` ends with: pure assessment of the nodes' SSM statuses, the polling loop
 * (fake clock), and the component's wait in an update with an injected reader.
 */
import { assessCluster, ExpectedNode, waitForCluster } from "../../components/ec2/health";

const nodes: ExpectedNode[] = ["shard0-0", "shard0-1"].map((name, i) => ({
  name,
  parameter: `/redis-stack/prod/status/${name}`,
  instanceId: `i-${i}`,
}));
const status = (state: string, instance: string, detail = "") =>
  JSON.stringify({ state, node: "x", instance, time: "2026-11-28T00:00:00Z", detail });

test("healthy only when every node reports ok from its current instance", () => {
  const p = nodes.map((n) => n.parameter);
  expect(assessCluster(nodes, { [p[0]]: status("ok", "i-0"), [p[1]]: status("ok", "i-1") }).healthy).toBe(true);
  const stale = assessCluster(nodes, { [p[0]]: status("ok", "i-0"), [p[1]]: status("ok", "i-old") });
  expect(stale.healthy).toBe(false);
  expect(stale.waiting).toEqual([{ node: "shard0-1", detail: "status is from i-old, not i-1" }]);
  const missing = assessCluster(nodes, { [p[0]]: status("starting", "i-0", "joining the cluster") });
  expect(missing.waiting.map((w) => w.detail)).toEqual([
    "starting: joining the cluster",
    "no status yet (still booting?)",
  ]);
  const failed = assessCluster(nodes, { [p[0]]: status("failed", "i-0", "apt could not fetch"), [p[1]]: "{bad json" });
  expect(failed.failed).toEqual([{ node: "shard0-0", detail: "apt could not fetch" }]);
});

function fakeClock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

test("waits through missing and starting statuses, then resolves; logs each change once", async () => {
  const clock = fakeClock();
  const answers = [
    {},
    {},
    { [nodes[0].parameter]: status("starting", "i-0") },
    { [nodes[0].parameter]: status("ok", "i-0"), [nodes[1].parameter]: status("ok", "i-1") },
  ];
  let call = 0;
  const log: string[] = [];
  const a = await waitForCluster(nodes, async () => answers[Math.min(call++, answers.length - 1)], {
    timeoutMs: 60_000,
    pollMs: 5000,
    log: (m) => log.push(m),
    ...clock,
  });
  expect(a.healthy).toBe(true);
  expect(call).toBe(4);
  expect(log).toHaveLength(3);
  expect(log[2]).toBe("cluster healthy: 2 nodes ok");
});

test("fails at once with the failing node's own reason", async () => {
  const read = async () => ({
    [nodes[1].parameter]: status("failed", "i-1", "apt could not fetch the package lists for 900s"),
  });
  await expect(waitForCluster(nodes, read, { timeoutMs: 60_000, ...fakeClock() })).rejects.toThrow(
    /shard0-1 failed: apt could not fetch the package lists for 900s/,
  );
});

test("fails after the timeout naming what it still waits for, and survives read errors meanwhile", async () => {
  let call = 0;
  const read = async () => {
    if (call++ === 0) throw new Error("ExpiredToken");
    return { [nodes[0].parameter]: status("ok", "i-0") };
  };
  await expect(waitForCluster(nodes, read, { timeoutMs: 30_000, pollMs: 5000, ...fakeClock() })).rejects.toThrow(
    /not healthy after 30s: waiting for shard0-1 \(no status yet/,
  );
  expect(call).toBeGreaterThan(2);
});
