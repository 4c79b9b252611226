/**
 * The app's service on ECS Fargate, wired from a Redis connection contract (the `env` map and where to run:
 * `vpcId`, `subnetIds`, `clientSecurityGroupId`), whether it comes from a redis-stack stack's outputs
 * (index.ts) or from a cluster the app's own program creates (examples/app-with-cache). Decisions live in
 * task.ts; this file only wires resources.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  appEgress,
  containerDefinitions,
  endpointPorts,
  executionRolePolicy,
  SECRET_ENV_NAMES,
  SecretRef,
  splitEnv,
} from "./task";

export interface AppServiceInput {
  /** Where the contract comes from, for messages and descriptions (a stack's name, a component's). */
  source: string;
  /** The contract's env map (secret). */
  env: pulumi.Output<Record<string, string>>;
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string[]>;
  /** Absent for a Redis Cloud database reached over its public endpoint. */
  clientSecurityGroupId: pulumi.Output<string | undefined>;
  image: string;
  cpu: number;
  memory: number;
  desiredCount: number;
  logRetentionDays: number;
}

export interface AppServiceOutputs {
  serviceName: pulumi.Output<string>;
  clusterName: pulumi.Output<string>;
  logGroupName: pulumi.Output<string>;
}

export function appService(input: AppServiceInput): AppServiceOutputs {
  const { env, vpcId, subnetIds, clientSecurityGroupId, image, cpu, memory, desiredCount, logRetentionDays } = input;
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  // Split by name: the plain part loses its secret mark (on purpose, so the task definition stays
  // readable in diffs); each secret goes to its own SecureString, its value still secret.
  const split = env.apply((e) => splitEnv(e, input.source));
  const plainEnv = pulumi.unsecret(split.apply((s) => s.plain));
  const parameters = SECRET_ENV_NAMES.map(
    (envName) =>
      [
        envName,
        new aws.ssm.Parameter(envName.toLowerCase().replace(/_/g, "-"), {
          name: `/${project}/${stack}/${envName}`,
          type: "SecureString",
          value: pulumi.secret(split.apply((s) => s.secret[envName])),
          description: `${envName} from ${input.source}, read by ECS when a task of ${project}-${stack} starts`,
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
}
