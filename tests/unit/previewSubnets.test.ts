/**
 * With `vpcId`/`subnetIds`, the subnets are looked up at preview and checked against the topology:
 * subnets all in one AZ fail before any resource exists; good subnets place nodes in them.
 */
import { runStack } from "./support/stackHarness";

test("subnets in a single availability zone fail at preview", async () => {
  const run = await runStack(
    "prod",
    { "redis-stack:vpcId": "vpc-0aaa", "redis-stack:subnetIds": '["subnet-0a1","subnet-0a2"]' },
    [
      { id: "subnet-0a1", vpcId: "vpc-0aaa", availabilityZone: "us-east-1a", cidrBlock: "10.1.1.0/24" },
      { id: "subnet-0a2", vpcId: "vpc-0aaa", availabilityZone: "us-east-1a", cidrBlock: "10.1.2.0/24" },
    ],
  );
  expect(String(run.error?.message)).toMatch(/redis-stack:subnetIds = .*all subnets are in one availability zone/);
  expect(run.resources).toEqual([]);
});
