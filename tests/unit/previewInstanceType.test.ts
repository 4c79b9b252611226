/**
 * The instance type is looked up in AWS at preview (getInstanceType, getInstanceTypeOfferings): its
 * memory sizes maxmemory, its architecture picks the AMI, a type AWS does not know fails naming
 * `instanceType`, and nodes go only to zones that offer the type.
 */
import { unwrapSecrets, byType, runStack, cloudResources } from "./support/stackHarness";

test("a type AWS does not know fails at preview naming instanceType, with the other problems", async () => {
  const run = await runStack("prod", { "redis-stack:instanceType": "r7g.huge", "redis-stack:shards": "2" });
  const message = String(run.error?.message);
  expect(message).toMatch(/^invalid stack configuration \(2 problems\):/);
  expect(message).toContain('redis-stack:instanceType = "r7g.huge": is not an instance type AWS offers in us-east-1');
  expect(message).toContain("fix: pulumi config set instanceType r7g.large");
  expect(message).toContain('redis-stack:shards = "2"');
  expect(cloudResources(run)).toEqual([]);
});

test("memory and architecture come from AWS's answer, not from the name", async () => {
  // x2iedn is outside the offline family table: only AWS's 128 GiB makes a default maxmemory possible.
  const run = await runStack("prod", { "redis-stack:instanceType": "x2iedn.xlarge" });
  expect(run.error).toBeUndefined();
  const instances = byType(run.resources, "aws:ec2/instance:Instance");
  expect(instances).toHaveLength(6);
  expect(instances[0].inputs.instanceType).toBe("x2iedn.xlarge");
  expect(run.calls).toContain("aws:ec2/getInstanceType:getInstanceType");
  // The live settings every node applies: 65% of 128 GiB, whole MiB.
  const desired = run.resources.find((r) => r.type === "aws:ssm/parameter:Parameter" && r.name.endsWith("-settings"));
  expect(String(unwrapSecrets(desired?.inputs.value))).toContain(
    `set maxmemory ${Math.floor((131072 * 0.65) / 1) * 1024 * 1024}`,
  );
});

test("a type offered in fewer zones than a shard needs fails naming instanceType", async () => {
  const run = await runStack("prod", { "redis-stack:instanceType": "p5.48xlarge" });
  const message = String(run.error?.message);
  expect(message).toContain(
    'redis-stack:instanceType = "p5.48xlarge": is offered in 1 availability zone(s) of us-east-1',
  );
  expect(cloudResources(run)).toEqual([]);
});
