/** The dev stack peered with an app's VPC: its resource graph (names, types, URNs, inputs) equals the fixture. */
import { runStack } from "./support/stackHarness";
import { expectedGraph, graphOf } from "./support/graph";

test("the peered Redis Cloud stack registers exactly the recorded resources with the recorded inputs and URNs", async () => {
  const run = await runStack("dev", {
    "aws:region": "us-east-1",
    "redis-stack:allowedCidrs": '["10.60.0.0/16"]',
    "redis-stack:cloudPeerVpcId": "vpc-0a9b8c7d6e5f40312",
    "redis-stack:cloudPeerVpcCidrs": '["10.60.0.0/16"]',
    "redis-stack:cloudPeerSubnetIds": '["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]',
    "redis-stack:cloudPeerRouteTableIds": '["rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002"]',
    "redis-stack:rediscloudApiKey": "key",
    "redis-stack:rediscloudSecretKey": "secret",
  });
  expect(run.error).toBeUndefined();
  const actual = graphOf(run.resources);
  expect(actual.length).toBeGreaterThan(0);
  expect(actual).toEqual(expectedGraph("dev-peered", actual));
});
