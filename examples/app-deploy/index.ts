/**
 * An app deploy that consumes a redis-stack stack: a container on ECS Fargate, in the stack's private
 * subnets, let in by its client security group, with the stack's `env` map as its environment. The one
 * secret in it (REDIS_URL) reaches the container through an SSM SecureString the task reads at start, so
 * the task definition holds no password. Decisions live in task.ts, the service's wiring in service.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { checkTaskSize, DEFAULTS } from "./task";
import { appService } from "./service";

/** Pulumi runs this function; what it returns are the stack's outputs. */
export = () => {
  const config = new pulumi.Config();
  const redisStack = config.require("redisStack");
  const image = config.require("image");
  const cpu = config.getNumber("cpu") ?? DEFAULTS.cpu;
  const memory = config.getNumber("memory") ?? DEFAULTS.memory;
  const desiredCount = config.getNumber("desiredCount") ?? DEFAULTS.desiredCount;
  const logRetentionDays = config.getNumber("logRetentionDays") ?? DEFAULTS.logRetentionDays;
  checkTaskSize(cpu, memory);
  if (!image.includes("@sha256:"))
    void pulumi.log.warn(`image ${image} is not pinned by digest: a tag can move under a running service`);
  // The redis stack's outputs. `env` is a secret map (the engine keeps it secret here too); the network
  // outputs are plain. clientSecurityGroupId is absent for a Redis Cloud stack.
  const redis = new pulumi.StackReference("redis", { name: redisStack });
  const env = redis.requireOutput("env") as pulumi.Output<Record<string, string>>;
  const vpcId = redis.requireOutput("vpcId") as pulumi.Output<string>;
  const subnetIds = redis.requireOutput("subnetIds") as pulumi.Output<string[]>;
  const clientSecurityGroupId = redis.getOutput("clientSecurityGroupId") as pulumi.Output<string | undefined>;

  return appService({
    source: redisStack,
    env,
    vpcId,
    subnetIds,
    clientSecurityGroupId,
    image,
    cpu,
    memory,
    desiredCount,
    logRetentionDays,
  });
};
