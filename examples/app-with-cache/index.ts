/**
 * An app's own Pulumi program that creates its cache next to its service, with the redis-stack library:
 * a Redis Cluster in a VPC of its own (the component creates it), and the app on ECS Fargate in that VPC's
 * private subnets, let in by the cluster's client security group, with the cluster's `env` contract as its
 * environment (REDIS_URL through an SSM SecureString, as in examples/app-deploy).
 *
 * Outside this repository the import names the path of a checkout of it (docs/library.md).
 */
import * as pulumi from "@pulumi/pulumi";
import { RedisEc2Cluster } from "../../components";
import { checkTaskSize, DEFAULTS } from "../app-deploy/task";
import { appService } from "../app-deploy/service";

export = async () => {
  const config = new pulumi.Config();
  const image = config.require("image");
  checkTaskSize(DEFAULTS.cpu, DEFAULTS.memory);

  // Every argument is optional; these are the app's choices. A bad one fails `pulumi preview`, naming it.
  const cache = new RedisEc2Cluster("cache", {
    shards: config.getNumber("cacheShards") ?? 3,
    instanceType: config.get("cacheInstanceType") ?? "r7g.large",
    maxmemoryPolicy: "allkeys-lfu",
    alertEmail: config.get("alertEmail") || undefined,
  });
  await cache.ready;

  const service = appService({
    source: `the cache cluster of ${pulumi.getProject()}/${pulumi.getStack()}`,
    // The contract's names that are present (REDIS_CA_PEM only with TLS), still secret.
    env: cache.env.apply((e) =>
      Object.fromEntries(Object.entries(e).filter((kv): kv is [string, string] => kv[1] !== undefined)),
    ),
    vpcId: cache.vpcId,
    subnetIds: cache.subnetIds,
    clientSecurityGroupId: cache.clientSecurityGroupId,
    image,
    ...DEFAULTS,
  });

  // `cache` holds the cluster's `deployment`: the next `pulumi up` reads it back to roll and drain safely.
  return { ...service, cache: cache.outputs };
};
