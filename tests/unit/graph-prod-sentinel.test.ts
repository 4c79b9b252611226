/** The prod stack with `topology: sentinel`: its resource graph (names, types, URNs, inputs) equals the fixture. */
import { runStack } from "./support/stackHarness";
import { expectedGraph, graphOf } from "./support/graph";

test("the Sentinel topology registers exactly the recorded resources with the recorded inputs and URNs", async () => {
  const run = await runStack("prod", {
    "redis-stack:topology": "sentinel",
    "redis-stack:shards": undefined,
    "redis-stack:replicasPerShard": undefined,
  });
  expect(run.error).toBeUndefined();
  const actual = graphOf(run.resources);
  expect(actual.length).toBeGreaterThan(0);
  expect(actual).toEqual(expectedGraph("prod-sentinel", actual));
});
