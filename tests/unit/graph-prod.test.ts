/** The prod stack's resource graph (names, types, URNs, inputs) equals the reviewed fixture. */
import { engineUrn, runStack } from "./support/stackHarness";
import { expectedGraph, graphOf } from "./support/graph";

test("the prod stack registers exactly the recorded resources with the recorded inputs and URNs", async () => {
  const run = await runStack("prod");
  expect(run.error).toBeUndefined();
  const actual = graphOf(run.resources);
  expect(actual.length).toBeGreaterThan(0);
  expect(actual).toEqual(expectedGraph("prod", actual));
  // A grandchild carries its whole parent chain, as the engine names it (Pulumi's mock keeps one level).
  const dashboard = actual.find((r) => r.type === "aws:cloudwatch/dashboard:Dashboard");
  expect(dashboard?.urn).toBe(
    "urn:pulumi:prod::redis-stack::redis-stack:ec2:RedisCluster$redis-stack:monitoring:NodeAlarms$aws:cloudwatch/dashboard:Dashboard::redis-prod-alarms-dashboard",
  );
});

test("engineUrn leaves the root stack out of its children's types and chains every other parent", () => {
  const root = "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s";
  const a = engineUrn("s", "p", root, "x:a:A", "a");
  expect(a).toBe("urn:pulumi:s::p::x:a:A::a");
  const b = engineUrn("s", "p", a, "x:b:B", "b");
  expect(engineUrn("s", "p", b, "aws:s3/bucket:Bucket", "c")).toBe(
    "urn:pulumi:s::p::x:a:A$x:b:B$aws:s3/bucket:Bucket::c",
  );
  expect(engineUrn("s", "p", undefined, "x:a:A", "a")).toBe(a);
});
