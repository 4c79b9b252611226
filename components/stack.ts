/**
 * Glue between Pulumi's stack config and the components: read every key of this project's namespace,
 * validate it (all problems at once, before any resource exists), look up what only AWS knows
 * (availability zones, subnets), and build the one component the stack's `target` asks for.
 */
import { stackDimension } from "./monitoring/metrics";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import {
  CloudPeeringSettings,
  ConfigProblem,
  DEFAULT_INSTANCE_TYPE,
  INSTANCE_TYPE_PATTERN,
  Settings,
} from "./config/settings";
import { ConfigKey, SECRET_KEYS } from "./config/keys";
import { formatProblems } from "./config/problems";
import { parseSettings } from "./config/parse";
import { factsFromAws, InstanceTypeInfo } from "./ec2/instanceTypes";
import { checkSubnets } from "./ec2/topology";
import { ssmNames } from "./ec2/node/userData";
import { sentinelMasterName } from "./ec2/sentinel";
import { Placement, RedisEc2Cluster } from "./ec2/cluster";
import { CloudPeer, RedisCloudDatabase } from "./cloud/database";
import { ConnectionOutputs, ReachabilityOutputs } from "./contract/connection";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { checkDeployedChange, DeployedShape, deploymentOf, isDeployedShape, nodeChange } from "./ec2/day2";

/** The stack output that says what runs; the next update reads it back (readDeployed). */
export const DEPLOYMENT_OUTPUT = "deployment";

/**
 * What this stack deployed last, read from its own outputs (a stack reference to itself: Pulumi reads the
 * last update's outputs). Undefined before the first update, and for a Redis Cloud stack.
 */
export async function readDeployed(project: string, stack: string): Promise<DeployedShape | undefined> {
  const self = new pulumi.StackReference(`${stack}-deployed`, {
    name: `${pulumi.getOrganization()}/${project}/${stack}`,
  });
  const details = await self.getOutputDetails(DEPLOYMENT_OUTPUT);
  return isDeployedShape(details.value) ? details.value : undefined;
}

/** This project's config as raw strings (namespace stripped), plus `aws:region`. */
export function readRawConfig(project: string): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (fullKey === "aws:region") raw[fullKey] = value;
    const prefix = `${project}:`;
    if (fullKey.startsWith(prefix))
      // A secret is never read into settings, only whether it is set ("" is Pulumi.yaml's default: unset).
      raw[fullKey.slice(prefix.length)] =
        SECRET_KEYS.has(fullKey.slice(prefix.length) as ConfigKey) && value !== "" ? "(secret)" : value;
  }
  return raw;
}

function fail(problems: ConfigProblem[], project: string): never {
  throw new pulumi.RunError(formatProblems(problems, project));
}

/**
 * AWS's facts about the configured instance type (memory, architecture). A type AWS does not know in
 * this region becomes a problem naming `instanceType`, listed with every other problem.
 */
async function lookUpInstanceType(
  raw: Record<string, string>,
): Promise<{ facts?: InstanceTypeInfo; problems: ConfigProblem[] }> {
  if ((raw.target ?? "ec2") !== "ec2") return { problems: [] };
  const instanceType = raw.instanceType ?? DEFAULT_INSTANCE_TYPE;
  if (!INSTANCE_TYPE_PATTERN.test(instanceType)) return { problems: [] }; // parseSettings reports the shape
  try {
    const t = await aws.ec2.getInstanceType({ instanceType });
    return { facts: factsFromAws(t.memorySize, t.supportedArchitectures), problems: [] };
  } catch (e) {
    const reason = e instanceof Error ? e.message.split("\n")[0] : String(e);
    return {
      problems: [
        {
          key: "instanceType",
          value: instanceType,
          problem: `is not an instance type AWS offers in ${raw["aws:region"] ?? "this region"} (${reason})`,
          fix: `pulumi config set instanceType ${DEFAULT_INSTANCE_TYPE} (aws ec2 describe-instance-types lists them)`,
        },
      ],
    };
  }
}

export async function loadSettings(project: string): Promise<Settings> {
  const raw = readRawConfig(project);
  const lookup = await lookUpInstanceType(raw);
  const { settings, problems } = parseSettings(raw, lookup.facts);
  // An unknown type also leaves maxmemory underivable; naming instanceType alone is the useful message.
  const rest =
    lookup.problems.length > 0 ? problems.filter((p) => !(p.key === "maxmemory" && p.value === undefined)) : problems;
  const all = [...lookup.problems, ...rest];
  if (!settings || all.length > 0) fail(all, project);
  return settings;
}

/** Availability zones of the region that offer the instance type, in AWS's order. */
async function zonesOffering(instanceType: string): Promise<Set<string>> {
  const offerings = await aws.ec2.getInstanceTypeOfferings({
    locationType: "availability-zone",
    filters: [{ name: "instance-type", values: [instanceType] }],
  });
  return new Set(offerings.locations);
}

/** Where the EC2 nodes go; subnets handed in are checked against the topology first. */
export async function resolvePlacement(settings: Settings, project: string): Promise<Placement> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("resolvePlacement needs EC2 settings");
  const offered = await zonesOffering(ec2.instanceType);
  if (ec2.vpcId === undefined || ec2.subnetIds === undefined) {
    const azs = await aws.getAvailabilityZones({ state: "available" });
    const zones = azs.names.filter((z) => offered.has(z)).slice(0, 3);
    const needed = ec2.replicasPerShard + 1;
    if (zones.length < needed) {
      const fewOffered = zones.length < Math.min(azs.names.length, 3);
      fail(
        [
          fewOffered
            ? {
                key: "instanceType",
                value: ec2.instanceType,
                problem: `is offered in ${zones.length} availability zone(s) of ${ec2.region} (${zones.join(", ") || "none"}); ${ec2.replicasPerShard} replicas per shard need ${needed}`,
                fix: "choose a type offered in more zones (aws ec2 describe-instance-type-offerings --location-type availability-zone)",
              }
            : {
                key: "aws:region",
                value: ec2.region,
                problem: `has ${zones.length} availability zones; ${ec2.replicasPerShard} replicas per shard need ${needed}`,
                fix: "choose a region with 3 AZs",
              },
        ],
        project,
      );
    }
    return { kind: "create", vpcCidr: ec2.vpcCidr, zones };
  }
  const vpcId = ec2.vpcId;
  const subnets = await Promise.all(ec2.subnetIds.map((id) => aws.ec2.getSubnet({ id })));
  const problems: ConfigProblem[] = subnets
    .filter((s) => s.vpcId !== vpcId)
    .map((s) => ({
      key: "subnetIds",
      value: s.id,
      problem: `belongs to ${s.vpcId}, not to vpcId ${vpcId}`,
      fix: "list subnets of the configured VPC only",
    }));
  for (const s of subnets.filter((x) => !offered.has(x.availabilityZone))) {
    problems.push({
      key: "subnetIds",
      value: s.id,
      problem: `is in ${s.availabilityZone}, where instanceType ${ec2.instanceType} is not offered`,
      fix: "list subnets in zones that offer the type, or choose another instanceType",
    });
  }
  const infos = subnets.map((s) => ({ id: s.id, availabilityZone: s.availabilityZone, cidrBlock: s.cidrBlock }));
  // Addresses are offset + shard x (R + 1) + member in every subnet: the plan's size is what must fit.
  const checked = checkSubnets(infos, ec2.replicasPerShard, ec2.shards * (ec2.replicasPerShard + 1), ec2.ipHostOffset);
  problems.push(...checked.problems);
  if (problems.length > 0) fail(problems, project);
  return {
    kind: "existing",
    vpcId,
    zones: checked.perAz.map((s) => ({ name: s.availabilityZone, subnetId: s.id, cidr: s.cidrBlock })),
  };
}

/**
 * The peered VPC's account: the one the stack's AWS credentials are in, which must also own the VPC (they
 * accept the peering and add the routes there), so config does not repeat it.
 */
async function resolvePeer(peering: CloudPeeringSettings): Promise<CloudPeer> {
  const identity = await aws.getCallerIdentity({});
  return { ...peering, awsAccountId: identity.accountId };
}

/** The `monitoring` output: the alert topic, dashboard and health wait (EC2), or Redis Cloud's alerts. */
export interface MonitoringOutput {
  alertTopicArn?: string;
  dashboardUrl?: string;
  healthyAt?: string;
  alerts?: string[];
}

/**
 * The stack's outputs: the connection contract (connection.ts), where an app must run to reach it (`vpcId`,
 * `subnetIds`, `clientSecurityGroupId`), what runs and how it is watched. App deploys read `env`, `vpcId`,
 * `subnetIds` and `clientSecurityGroupId` through a StackReference: keep these names.
 */
export type StackOutputs = ConnectionOutputs &
  ReachabilityOutputs & {
    [DEPLOYMENT_OUTPUT]?: DeployedShape;
    monitoring: pulumi.Output<MonitoringOutput>;
  };

/** Builds the component for `settings.target` and returns the output contract. */
export async function deploy(project: string, stack: string): Promise<StackOutputs> {
  const settings = await loadSettings(project);
  if (settings.persistence === "none")
    void pulumi.log.warn(
      "persistence is 'none': data will not survive a restart of a node (or of the whole Redis Cloud database)",
    );
  const tags = { "redis-stack:stack": stack, "redis-stack:project": project };
  if (settings.ec2) {
    const ec2 = settings.ec2;
    const placement = await resolvePlacement(settings, project);
    const deployed = await readDeployed(project, stack);
    const changeProblems = checkDeployedChange(deployed, deploymentOf(ec2, settings.tls));
    if (changeProblems.length > 0) fail(changeProblems, project);
    if (deployed && ec2.shards !== deployed.shards) {
      const verb = ec2.shards > deployed.shards ? "adds" : "drains and removes";
      void pulumi.log.warn(
        `shards ${deployed.shards} -> ${ec2.shards}: this update ${verb} ${Math.abs(ec2.shards - deployed.shards)} shard(s). ` +
          (ec2.shards > deployed.shards
            ? "New masters join empty; the cluster moves their share of the slots to them once their replicas are in."
            : "Their slots move to the remaining masters before their nodes are deleted; their data volumes are retained."),
      );
    }
    const cluster = new RedisEc2Cluster(`redis-${stack}`, {
      settings: settings.ec2,
      maxmemoryPolicy: settings.maxmemoryPolicy,
      persistence: settings.persistence,
      tls: settings.tls,
      allowedCidrs: settings.allowedCidrs,
      alertEmail: settings.alertEmail,
      client: settings.client,
      placement,
      ssm: ssmNames(project, stack),
      metricsStack: stackDimension(project, stack),
      sentinelMaster: sentinelMasterName(project, stack),
      deployed,
      tags,
    });
    const { leaving } = nodeChange(deployed, cluster.deployment);
    if (leaving.length > 0) void pulumi.log.info(`nodes leaving after their slots are drained: ${leaving.join(", ")}`);
    return {
      ...cluster.connection,
      vpcId: cluster.vpcId,
      subnetIds: cluster.subnetIds,
      clientSecurityGroupId: cluster.clientSecurityGroupId,
      [DEPLOYMENT_OUTPUT]: cluster.deployment,
      monitoring: pulumi
        .all([cluster.alertTopicArn, cluster.dashboardUrl, cluster.healthyAt])
        .apply(([alertTopicArn, dashboardUrl, healthyAt]): MonitoringOutput => ({
          alertTopicArn,
          dashboardUrl,
          healthyAt,
        })),
    };
  }
  const cloud = settings.cloud;
  if (!cloud) throw new Error("settings carry neither ec2 nor cloud");
  const config = new pulumi.Config(project);
  const raw = readRawConfig(project);
  const secret = (key: "rediscloudApiKey" | "rediscloudSecretKey") =>
    (raw[key] ?? "") === "" ? undefined : config.requireSecret(key);
  const apiKey = secret("rediscloudApiKey");
  const secretKey = secret("rediscloudSecretKey");
  const provider = apiKey && secretKey ? new rediscloud.Provider("rediscloud", { apiKey, secretKey }) : undefined;
  const peer = cloud.peering ? await resolvePeer(cloud.peering) : undefined;
  const db = new RedisCloudDatabase(
    `redis-${stack}`,
    {
      settings: cloud,
      maxmemoryPolicy: settings.maxmemoryPolicy,
      persistence: settings.persistence,
      tls: settings.tls,
      allowedCidrs: settings.allowedCidrs,
      client: settings.client,
      peer,
      tags,
    },
    provider ? { providers: [provider] } : undefined,
  );
  return {
    ...db.connection,
    ...(db.vpcId && db.subnetIds ? { vpcId: db.vpcId, subnetIds: db.subnetIds } : {}),
    monitoring: db.alerts.apply((alerts): { alerts?: string[] } => ({ alerts })),
  };
}
