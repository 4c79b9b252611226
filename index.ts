/**
 * redis-stack: production Redis in one `pulumi up`. The stack's config becomes the arguments of the one
 * component its `target` names (bad input fails at preview, naming the key and the fix), and the stack
 * exports that component's outputs: the same connection contract for both targets.
 */
import * as pulumi from "@pulumi/pulumi";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { RedisCloudDatabase, RedisEc2Cluster } from "./components";
import { stackComponentName } from "./components/ec2/args";
import { stackArguments } from "./components/config/stack";

export = async () => {
  const config = stackArguments(pulumi.getProject());
  const name = stackComponentName(pulumi.getStack());
  if (config.target === "ec2") {
    const cluster = new RedisEc2Cluster(name, config.args);
    await cluster.ready;
    return cluster.outputs;
  }
  const provider = config.credentials && new rediscloud.Provider("rediscloud", config.credentials);
  const database = new RedisCloudDatabase(name, config.args, provider ? { providers: [provider] } : undefined);
  await database.ready;
  return database.outputs;
};
