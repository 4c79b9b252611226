/**
 * Bad configuration fails the program itself (what `pulumi preview` runs) before any cloud resource is
 * registered, with one message listing every problem by its namespaced key.
 */
import { runStack } from "./support/stackHarness";

test("the prod stack with bad values fails before registering anything, listing every problem", async () => {
  const run = await runStack("prod", {
    "redis-stack:shards": "2",
    "redis-stack:maxmemoryPolicy": "most-recent",
    "redis-stack:allowedCidrs": '["0.0.0.0/0"]',
    "redis-stack:alertEmail": "nobody",
  });
  expect(run.error).toBeDefined();
  const message = String(run.error?.message);
  expect(message).toMatch(/^invalid stack configuration \(4 problems\):/);
  for (const key of [
    'redis-stack:shards = "2"',
    "redis-stack:maxmemoryPolicy",
    "redis-stack:allowedCidrs",
    "redis-stack:alertEmail",
  ])
    expect(message).toContain(key);
  expect(message).toContain("fix: pulumi config set shards 3");
  // The component's own entry (it owns no cloud resource) is all there is: its arguments are checked first.
  expect(run.resources.map((r) => `${r.type} ${r.name}`)).toEqual(["redis-stack:ec2:RedisCluster redis-prod"]);
  // Only reads: AWS's description of the instance type (the one fact config needs from AWS).
  expect(run.calls).toEqual(["aws:ec2/getInstanceType:getInstanceType"]);
});
