/**
 * Preview knows what is deployed (the stack's own last `deployment` output, read through a stack reference
 * to itself) and refuses what a running cluster cannot take, naming the key, before any resource exists.
 */
import { PROD_DEPLOYMENT, runStack, valueOf } from "./support/stackHarness";

const deployment = PROD_DEPLOYMENT;

test("replicasPerShard 1 -> 2 on a deployed stack fails at preview naming the key and the fix", async () => {
  const run = await runStack("prod", { "redis-stack:replicasPerShard": "2" }, [], { deployment });
  expect(run.error?.message).toMatch(
    /redis-stack:replicasPerShard = "2": the deployed cluster runs 1 replica\(s\) per shard[\s\S]*fix: pulumi config set replicasPerShard 1/,
  );
  // Only the component's own entry and the read of the stack's own outputs: nothing would be created or changed.
  expect(run.resources.map((r) => r.type)).toEqual(["redis-stack:ec2:RedisCluster", "pulumi:pulumi:StackReference"]);
});

test("the same change on a stack never deployed is fine (nothing runs yet)", async () => {
  const run = await runStack("prod", { "redis-stack:replicasPerShard": "2" });
  expect(run.error).toBeUndefined();
});

test("TLS off and a smaller volume on a deployed stack fail at preview, each naming its key", async () => {
  const run = await runStack("prod", { "redis-stack:tls": "false", "redis-stack:dataVolumeGb": "24" }, [], {
    deployment,
  });
  expect(run.error?.message).toContain('redis-stack:tls = "false"');
  expect(run.error?.message).toContain('redis-stack:dataVolumeGb = "24"');
});

test("growing shards on a deployed stack previews the new nodes and exports the new deployment", async () => {
  const run = await runStack("prod", { "redis-stack:shards": "4" }, [], { deployment });
  expect(run.error).toBeUndefined();
  const instances = run.resources.filter((r) => r.type === "aws:ec2/instance:Instance").map((r) => r.name);
  expect(instances).toEqual(expect.arrayContaining(["redis-prod-shard3-0", "redis-prod-shard3-1"]));
  const exported = run.outputs?.deployment;
  if (!exported) throw new Error("no deployment output");
  expect((await valueOf(exported)).nodes).toHaveLength(8);
});
