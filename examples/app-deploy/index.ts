/**
 * An app deploy that consumes a redis-stack stack: a container on ECS Fargate, in the stack's private
 * subnets, let in by its client security group, with the stack's `env` map as its environment. The one
 * secret in it (REDIS_URL) reaches the container through an SSM SecureString the task reads at start, so
 * the task definition holds no password. Decisions live in task.ts; this file only wires resources.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  appEgress,
  checkTaskSize,
  containerDefinitions,
  DEFAULTS,
  endpointPorts,
  executionRolePolicy,
  SECRET_ENV_NAMES,
  SecretRef,
  splitEnv,
} from "./task";

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
  const project = pulumi.getProject();
  const stack = pulumi.getStack();

  // The redis stack's outputs. `env` is a secret map (the engine keeps it secret here too); the network
  // outputs are plain. clientSecurityGroupId is absent for a Redis Cloud stack.
  const redis = new pulumi.StackReference("redis", { name: redisStack });
  const env = redis.requireOutput("env") as pulumi.Output<Record<string, string>>;
  const vpcId = redis.requireOutput("vpcId") as pulumi.Output<string>;
  const subnetIds = redis.requireOutput("subnetIds") as pulumi.Output<string[]>;
  const clientSecurityGroupId = redis.getOutput("clientSecurityGroupId") as pulumi.Output<string | undefined>;

  // Split by name: the plain part loses its secret mark (on purpose, so the task definition stays
  // readable in diffs); each secret goes to its own SecureString, its value still secret.
  const split = env.apply((e) => splitEnv(e, redisStack));
  const plainEnv = pulumi.unsecret(split.apply((s) => s.plain));
  const parameters = SECRET_ENV_NAMES.map(
    (envName) =>
      [
        envName,
        new aws.ssm.Parameter(envName.toLowerCase().replace(/_/g, "-"), {
          name: `/${project}/${stack}/${envName}`,
          type: "SecureString",
          value: pulumi.secret(split.apply((s) => s.secret[envName])),
          description: `${envName} from ${redisStack}, read by ECS when a task of ${project}-${stack} starts`,
        }),
      ] as const,
  );
  const secrets = pulumi.all(
    Object.fromEntries(
      parameters.map(([envName, p]) => [
        envName,
        pulumi.all([p.arn, p.version]).apply(([arn, version]): SecretRef => ({ arn, version })),
      ]),
    ),
  );

  const logGroup = new aws.cloudwatch.LogGroup("app", {
    name: `/ecs/${project}/${stack}`,
    retentionInDays: logRetentionDays,
  });

  // The execution role is what ECS uses to start the task; the app itself gets no AWS role at all.
  const executionRole = new aws.iam.Role("execution", {
    description: `ECS starts ${project}-${stack} tasks with this role`,
    assumeRolePolicy: JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole" }],
    }),
  });
  const executionPolicy = new aws.iam.RolePolicy("execution", {
    role: executionRole.id,
    policy: pulumi
      .all([logGroup.arn, secrets])
      .apply(([logGroupArn, refs]) =>
        JSON.stringify(executionRolePolicy({ logGroupArn, secretArns: Object.values(refs).map((s) => s.arn), image })),
      ),
  });

  // The client group's only egress is to the Redis nodes, so the task also carries a group of its own
  // for HTTPS (image pull, secrets, logs), and for the Redis endpoint when there is no client group.
  const appSecurityGroup = new aws.ec2.SecurityGroup("app", {
    vpcId,
    description: `${project}-${stack} tasks: egress only`,
    egress: pulumi
      .all([clientSecurityGroupId, plainEnv])
      .apply(([client, e]) => appEgress(client ? [] : endpointPorts(e.REDIS_CLUSTER_NODES ?? ""))),
  });
  const securityGroups = pulumi
    .all([appSecurityGroup.id, clientSecurityGroupId])
    .apply(([app, client]) => (client ? [client, app] : [app]));

  const cluster = new aws.ecs.Cluster("app", {});
  const taskDefinition = new aws.ecs.TaskDefinition("app", {
    family: `${project}-${stack}`,
    requiresCompatibilities: ["FARGATE"],
    networkMode: "awsvpc",
    cpu: String(cpu),
    memory: String(memory),
    executionRoleArn: executionRole.arn,
    containerDefinitions: pulumi
      .all([plainEnv, secrets, logGroup.name, aws.getRegionOutput().region])
      .apply(([plain, refs, group, region]) =>
        containerDefinitions({ image, plainEnv: plain, secrets: refs, logGroup: group, region }),
      ),
  });
  const service = new aws.ecs.Service(
    "app",
    {
      cluster: cluster.arn,
      taskDefinition: taskDefinition.arn,
      launchType: "FARGATE",
      desiredCount,
      networkConfiguration: { subnets: subnetIds, securityGroups, assignPublicIp: false },
      // A revision whose tasks cannot start (image, secret, network) is rolled back to the last one that
      // ran. `pulumi up` waits for a steady service, and a rolled-back one is steady too: it does not fail
      // then (hashicorp/terraform-provider-aws#20858), so read the service's events after a deploy.
      deploymentCircuitBreaker: { enable: true, rollback: true },
      waitForSteadyState: true,
    },
    // Tasks read their secrets at start: the policy must be in place before the first one.
    { dependsOn: [executionPolicy] },
  );

  return { serviceName: service.name, clusterName: cluster.name, logGroupName: logGroup.name };
};
