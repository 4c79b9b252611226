/**
 * The largest Redis Cluster the config allows (MAX_CLUSTER_NODES: 30 shards x 1 replica) still renders
 * every node's user-data under EC2's 16 KiB: each one carries the whole cluster plan, so it is the one
 * input that grows with the cluster on every node. When this fails, ship the plan through SSM (as the
 * shipped libraries are) instead of lowering the bound.
 */
import { runStack } from "./support/stackHarness";
import { MAX_CLUSTER_NODES } from "../../components/config/settings";
import { decodeUserData, USER_DATA_LIMIT_BYTES } from "../../components/ec2/node/userData";

test("at the node bound every instance's user-data fits EC2's limit, and carries all the nodes' plan", async () => {
  const shards = MAX_CLUSTER_NODES / 2;
  const run = await runStack("prod", { "redis-stack:shards": String(shards) });
  expect(run.error).toBeUndefined();
  const instances = run.resources.filter((r) => r.type === "aws:ec2/instance:Instance");
  expect(instances).toHaveLength(MAX_CLUSTER_NODES);
  for (const i of instances) {
    const b64 = i.inputs.userDataBase64;
    expect(typeof b64).toBe("string");
    const gz = Buffer.from(b64 as string, "base64");
    expect(gz.length).toBeLessThanOrEqual(USER_DATA_LIMIT_BYTES);
    // The plan is really in it: the last shard's replica is named on every node.
    expect(decodeUserData(b64 as string)).toContain(`shard${shards - 1}-1`);
  }
}, 120_000);
