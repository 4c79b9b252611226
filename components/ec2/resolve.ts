/**
 * What the EC2 component must know before it creates anything: its arguments validated (the rules and
 * messages of `pulumi preview`), then what only AWS knows (the instance type's RAM and architecture, the
 * zones that offer it, the subnets handed in) and what the stack deployed last. Every problem found is
 * reported at once, naming the argument (or config key) and the fix; nothing is registered before.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { ConfigError, ProblemAudience } from "../config/problems";
import { argumentsInput } from "../config/arguments";
import { parseSettings } from "../config/parse";
import { ConfigProblem, DEFAULT_INSTANCE_TYPE, INSTANCE_TYPE_PATTERN, Settings } from "../config/settings";
import { factsFromAws, InstanceTypeInfo } from "./instanceTypes";
import { checkSubnets } from "./topology";
import { checkDeployedChange, DeployedShape, deploymentOf, isDeployedShape } from "./day2";
import { EC2_COMPONENT_OPTIONS, RedisEc2ClusterArgs, stackComponentName } from "./args";
import { DEBIAN12_REDIS_RDB_VERSION, parseRestoreFrom, restoreManifestProblems } from "./backups";

/** Where the nodes go: an existing VPC's subnets (one per AZ), or a VPC the component creates. */
export type Placement =
  | { kind: "existing"; vpcId: string; zones: { name: string; subnetId: string; cidr: string }[] }
  | { kind: "create"; vpcCidr: string; zones: string[] };

/** The stack output the repository's own program exports its cluster's `deployment` as. */
export const DEPLOYMENT_OUTPUT = "deployment";

/** Everything the component builds from: validated settings (EC2 ones present), placement, last deployment. */
export interface ResolvedCluster {
  settings: Settings & { ec2: NonNullable<Settings["ec2"]> };
  placement: Placement;
  deployed?: DeployedShape;
}

/** Fails the deployment (at preview) with every problem, for the audience the arguments came from. */
function fail(problems: ConfigProblem[], audience: ProblemAudience): never {
  throw new ConfigError(problems, audience);
}

/**
 * AWS's facts about the configured instance type (memory, architecture). A type AWS does not know in this
 * region becomes a problem naming `instanceType`, listed with every other problem.
 */
async function lookUpInstanceType(
  instanceType: string,
  region: string | undefined,
  parent: pulumi.Resource,
): Promise<{ facts?: InstanceTypeInfo; problems: ConfigProblem[] }> {
  if (!INSTANCE_TYPE_PATTERN.test(instanceType)) return { problems: [] }; // the parser reports the shape
  try {
    const t = await aws.ec2.getInstanceType({ instanceType }, { parent });
    return { facts: factsFromAws(t.memorySize, t.supportedArchitectures), problems: [] };
  } catch (e) {
    const reason = e instanceof Error ? e.message.split("\n")[0] : String(e);
    return {
      problems: [
        {
          key: "instanceType",
          value: instanceType,
          problem: `is not an instance type AWS offers in ${region ?? "this region"} (${reason})`,
          fix: `pulumi config set instanceType ${DEFAULT_INSTANCE_TYPE} (aws ec2 describe-instance-types lists them)`,
        },
      ],
    };
  }
}

/** Availability zones of the region that offer the instance type, in AWS's order. */
async function zonesOffering(instanceType: string, parent: pulumi.Resource): Promise<Set<string>> {
  const offerings = await aws.ec2.getInstanceTypeOfferings(
    { locationType: "availability-zone", filters: [{ name: "instance-type", values: [instanceType] }] },
    { parent },
  );
  return new Set(offerings.locations);
}

/** Where the EC2 nodes go; subnets handed in are checked against the topology first. */
async function resolvePlacement(
  ec2: ResolvedCluster["settings"]["ec2"],
  parent: pulumi.Resource,
): Promise<{ placement?: Placement; problems: ConfigProblem[] }> {
  const offered = await zonesOffering(ec2.instanceType, parent);
  if (ec2.vpcId === undefined || ec2.subnetIds === undefined) {
    const azs = await aws.getAvailabilityZones({ state: "available" }, { parent });
    const zones = azs.names.filter((z) => offered.has(z)).slice(0, 3);
    const needed = ec2.replicasPerShard + 1;
    if (zones.length >= needed) return { placement: { kind: "create", vpcCidr: ec2.vpcCidr, zones }, problems: [] };
    const fewOffered = zones.length < Math.min(azs.names.length, 3);
    return {
      problems: [
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
    };
  }
  const vpcId = ec2.vpcId;
  const subnets = await Promise.all(ec2.subnetIds.map((id) => aws.ec2.getSubnet({ id }, { parent })));
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
  if (problems.length > 0) return { problems };
  return {
    placement: {
      kind: "existing",
      vpcId,
      zones: checked.perAz.map((s) => ({ name: s.availabilityZone, subnetId: s.id, cidr: s.cidrBlock })),
    },
    problems: [],
  };
}

/**
 * The deployment record (`deployment`) of the cluster named `name` among a stack's outputs: an output that
 * is the record, or holds it as `deployment` (a program that exports the component's `outputs` object). A
 * record names its component; the repository's program exported records without a name before, as
 * `deployment`, for `redis-<stack>`.
 */
export function findDeployment(
  outputs: Record<string, unknown>,
  name: string,
  stack: string,
): DeployedShape | undefined {
  const candidates: [string, unknown][] = Object.entries(outputs).flatMap(([key, value]) => {
    const nested =
      value && typeof value === "object" ? (value as Record<string, unknown>)[DEPLOYMENT_OUTPUT] : undefined;
    return [
      [key, value],
      [`${key}.${DEPLOYMENT_OUTPUT}`, nested],
    ] as [string, unknown][];
  });
  for (const [key, value] of candidates) {
    if (!isDeployedShape(value)) continue;
    if (value.component === name) return value;
    if (value.component === undefined && key === DEPLOYMENT_OUTPUT && name === stackComponentName(stack)) return value;
  }
  return undefined;
}

/**
 * What this stack deployed last for the cluster `name`, read from the stack's own outputs (a stack reference
 * to itself: Pulumi reads the last update's outputs). Undefined before the first update, or when the program
 * does not export the component's `deployment` (docs/library.md says to).
 */
async function readDeployed(name: string, parent: pulumi.Resource): Promise<DeployedShape | undefined> {
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  const own = name === stackComponentName(stack);
  // The repository's program has read its own outputs through `<stack>-deployed` at the top of the stack.
  const self = new pulumi.StackReference(
    own ? `${stack}-deployed` : `${name}-deployed`,
    { name: `${pulumi.getOrganization()}/${project}/${stack}` },
    own ? undefined : { parent },
  );
  const outputs = await new Promise<Record<string, unknown>>((resolve) =>
    self.outputs.apply((o) => resolve((o ?? {}) as Record<string, unknown>)),
  );
  return findDeployment(outputs, name, stack);
}

/**
 * Reads the manifest restoreFrom names (an invoke, so `pulumi preview` reads it with the deployer's
 * credentials) and checks that it fits the planned stack: a missing, unreadable or misfitting backup fails
 * the preview instead of booting nodes that refuse it. The files' checksums are checked by the nodes.
 */
async function checkRestoreSource(
  ec2: ResolvedCluster["settings"]["ec2"],
  parent: pulumi.Resource,
): Promise<ConfigProblem[]> {
  const uri = ec2.restoreFrom;
  const source = uri === undefined ? undefined : parseRestoreFrom(uri);
  if (!uri || !source) return []; // the parser reports the shape
  let object: aws.s3.GetObjectResult;
  try {
    object = await aws.s3.getObject({ bucket: source.bucket, key: source.key }, { parent });
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    const reason = text.split("\n").find((l) => l.trim() !== "") ?? "no reason given";
    return [
      {
        key: "restoreFrom",
        value: uri,
        problem: `cannot be read at preview (${reason})`,
        fix:
          `check it exists (aws s3 ls s3://${source.bucket}/${source.folder}); ` +
          "whoever runs pulumi needs s3:GetObject on it, and kms:Decrypt through S3 for its key",
      },
    ];
  }
  if (!object.body) {
    // The provider returns only text bodies: awscli uploads a .json as application/json, a hand upload may not.
    await pulumi.log.warn(
      `restoreFrom ${uri}: its Content-Type is ${object.contentType || "unset"}, so preview cannot read it; ` +
        "the nodes check it at boot (aws s3 cp sets application/json for a .json file)",
      parent,
    );
    return [];
  }
  return restoreManifestProblems(uri, object.body, {
    topology: ec2.topology,
    shards: ec2.shards,
    // A pinned AMI may carry another Redis: its nodes' redis-check-rdb decides at boot.
    maxRdbVersion: ec2.amiId === undefined ? DEBIAN12_REDIS_RDB_VERSION : undefined,
  });
}

/**
 * Validates the arguments and looks up what they depend on. Throws a ConfigError listing every problem,
 * phrased for `audience`.
 */
export async function resolveCluster(
  name: string,
  args: RedisEc2ClusterArgs,
  audience: ProblemAudience,
  parent: pulumi.Resource,
): Promise<ResolvedCluster> {
  const region = "region" in args ? args.region : (await aws.getRegion({}, { parent })).name;
  const instanceType = args.instanceType ?? DEFAULT_INSTANCE_TYPE;
  const lookup =
    typeof instanceType === "string" ? await lookUpInstanceType(instanceType, region, parent) : { problems: [] };
  const given = argumentsInput("ec2", args, EC2_COMPONENT_OPTIONS, region, args.configNamespace !== undefined);
  const parsed = parseSettings(given.input, lookup.facts);
  const { settings } = parsed;
  const problems = [...given.problems, ...parsed.problems];
  // An unknown type also leaves maxmemory underivable; naming instanceType alone is the useful message.
  const rest =
    lookup.problems.length > 0 ? problems.filter((p) => !(p.key === "maxmemory" && p.value === undefined)) : problems;
  const all = [...lookup.problems, ...rest];
  if (!settings?.ec2 || all.length > 0) fail(all, audience);
  const ec2 = settings.ec2;
  const { placement, problems: placementProblems } = await resolvePlacement(ec2, parent);
  if (!placement || placementProblems.length > 0) fail(placementProblems, audience);
  const deployed = await readDeployed(name, parent);
  const changeProblems = checkDeployedChange(deployed, deploymentOf(name, ec2, settings.tls));
  if (changeProblems.length > 0) fail(changeProblems, audience);
  // Only a new stack restores (its nodes ignore restoreFrom once they hold data): check it before creating one.
  if (ec2.restoreFrom !== undefined && deployed === undefined) {
    const restoreProblems = await checkRestoreSource(ec2, parent);
    if (restoreProblems.length > 0) fail(restoreProblems, audience);
  }
  return { settings: { ...settings, ec2 }, placement, deployed };
}
