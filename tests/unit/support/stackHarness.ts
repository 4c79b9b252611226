/**
 * Runs the real program (index.ts) under Pulumi mocks with a checked-in stack file's config, and
 * records every resource and invoke. One call per jest file: the Pulumi runtime is process-global.
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import type { DeployedShape } from "../../../components/ec2/day2";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import type { Ec2ClusterOutputs } from "../../../components/ec2/cluster";
import type { CloudDatabaseOutputs } from "../../../components/cloud/database";
import type { ConnectionOutputs } from "../../../components/contract/connection";
import { stackConfig } from "../../../lab/stackFiles";

export const PROJECT = "redis-stack";

/** What index.ts exports: the contract of either target, the EC2 cluster's other outputs when it is one. */
export type StackOutputs = ConnectionOutputs &
  Partial<Omit<Ec2ClusterOutputs, keyof ConnectionOutputs | "monitoring">> &
  Partial<Pick<CloudDatabaseOutputs, "backupPath">> & {
    monitoring: pulumi.Output<unknown>;
  };

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** The explicit provider (`urn::id`) the resource was registered with, inherited from its parents. */
  provider?: string;
  /** The URN the engine would give it (engineUrn): what a deployed stack matches resources by. */
  urn?: string;
}

/** The root stack's type: the engine leaves it out of its children's URNs. */
const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

/**
 * The URN the Pulumi engine gives a resource: `urn:pulumi:<stack>::<project>::<qualified type>::<name>`, where
 * the qualified type is the parent's whole qualified type, `$`, then the resource's own type (resource.NewURN
 * in pulumi/sdk/go/common/resource/urn.go). Pulumi's own MockMonitor keeps only the parent's last type, which
 * would hide a moved grandparent; the harness uses this instead.
 */
export function engineUrn(stack: string, project: string, parentUrn: string | undefined, type: string, name: string) {
  const parentType = parentUrn ? parentUrn.split("::")[2] : "";
  const qualified = parentType && parentType !== ROOT_STACK_TYPE ? `${parentType}$${type}` : type;
  return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

/** URNs by `type::name`, as the patched mock monitor hands them out (filled during runStack). */
const urns = new Map<string, string>();
(MockMonitor.prototype as unknown as { newUrn: (p: string, t: string, n: string) => string }).newUrn = function (
  parent: string,
  type: string,
  name: string,
): string {
  const urn = engineUrn(pulumi.getStack(), pulumi.getProject(), parent || undefined, type, name);
  const key = `${type}::${name}`;
  const seen = urns.get(key);
  if (seen !== undefined && seen !== urn) throw new Error(`two resources ${key}: ${seen} and ${urn}`);
  urns.set(key, urn);
  return urn;
};

/** Deterministic fake values the mocks hand out; tests scan outputs and user-data for them. */
export const FAKE = {
  password: (name: string) => `pw${name.replace(/[^A-Za-z0-9]/g, "")}`.padEnd(32, "X").slice(0, 32),
  privateKey: (name: string) => `-----BEGIN PRIVATE KEY-----\nKEY${name}\n-----END PRIVATE KEY-----\n`,
  cert: (name: string) => `-----BEGIN CERTIFICATE-----\nCERT${name}\n-----END CERTIFICATE-----\n`,
  endpoint: "redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com:12345",
  /** Redis Cloud's ids are numbers (the peering's subscriptionId must be one: validation-v1.3.5.json). */
  subscriptionId: "2170513",
  /** The AWS peering connection Redis Cloud requests (SubscriptionPeering's awsPeeringId). */
  peeringConnectionId: "pcx-0a1b2c3d4e5f67890",
  azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
  /** What getInstanceType answers (memory in MiB, architectures); any other type is unknown to "AWS". */
  instanceTypes: {
    "r7g.large": { memorySize: 16384, supportedArchitectures: ["arm64"] },
    "m7i.xlarge": { memorySize: 16384, supportedArchitectures: ["x86_64", "i386"] },
    "x2iedn.xlarge": { memorySize: 131072, supportedArchitectures: ["x86_64"] },
    "p5.48xlarge": { memorySize: 2097152, supportedArchitectures: ["x86_64"] },
  } as Record<string, { memorySize: number; supportedArchitectures: string[] }>,
  /** Zones offering each type (getInstanceTypeOfferings); types not listed are offered in every zone. */
  offeredIn: { "p5.48xlarge": ["us-east-1a"] } as Record<string, string[]>,
};

export interface SubnetFixture {
  id: string;
  vpcId: string;
  availabilityZone: string;
  cidrBlock: string;
}

export interface RunResult {
  outputs?: StackOutputs;
  error?: Error;
  resources: Registered[];
  calls: string[];
}

/** Unwraps Pulumi's secret envelope as the mock monitor receives it. */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (o[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) return unwrapSecrets(o.value);
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

function computedState(type: string, name: string): Record<string, unknown> {
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
      return { result: FAKE.password(name) };
    case "tls:index/privateKey:PrivateKey":
      return { privateKeyPem: FAKE.privateKey(name), publicKeyPem: "PUBLIC" };
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      return { certPem: FAKE.cert(name) };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: `CSR${name}` };
    case "aws:ebs/volume:Volume":
      // From the name, not the registration order: the graph fixtures stay put when code is reordered.
      return { id: `vol-0${createHash("sha256").update(name).digest("hex").slice(0, 16)}` };
    case "aws:s3/bucket:Bucket": {
      // Pulumi's auto-name: the resource name and 7 random characters (here from the name: stable fixtures).
      const bucket = `${name}-${createHash("sha256").update(name).digest("hex").slice(0, 7)}`;
      return { id: bucket, bucket, arn: `arn:aws:s3:::${bucket}` };
    }
    case "aws:kms/key:Key": {
      const h = createHash("sha256").update(name).digest("hex");
      const keyId = [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20, 32)].join("-");
      return { id: keyId, keyId, arn: `arn:aws:kms:us-east-1:123456789012:key/${keyId}` };
    }
    case "aws:ssm/parameter:Parameter":
      return { arn: `arn:aws:ssm:us-east-1:123456789012:parameter/${name}`, version: 1 };
    case "aws:sns/topic:Topic":
      return { arn: `arn:aws:sns:us-east-1:123456789012:${name}` };
    case "aws:iam/role:Role":
      return { name, arn: `arn:aws:iam::123456789012:role/${name}` };
    case "aws:iam/instanceProfile:InstanceProfile":
      return { name };
    case "rediscloud:index/subscription:Subscription":
      return { id: FAKE.subscriptionId };
    case "rediscloud:index/subscriptionPeering:SubscriptionPeering":
      return { id: `${FAKE.subscriptionId}/42`, awsPeeringId: FAKE.peeringConnectionId, status: "pending-acceptance" };
    case "rediscloud:index/subscriptionDatabase:SubscriptionDatabase":
      return {
        publicEndpoint: FAKE.endpoint,
        privateEndpoint: FAKE.endpoint.replace("redis-", "internal.redis-"),
        dbId: 7,
      };
    default:
      return {};
  }
}

/** Settles pending registrations: waits until no new resource appears for a few event-loop turns. */
async function settle(resources: Registered[]): Promise<void> {
  let last = -1;
  let stable = 0;
  while (stable < 5) {
    await new Promise((r) => setTimeout(r, 10));
    if (resources.length === last) stable++;
    else {
      stable = 0;
      last = resources.length;
    }
  }
}

export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve) => output.apply((v) => resolve(v)));
}

/**
 * Runs index.ts for `stack` with its checked-in config, optionally overridden (`project:key` or
 * `aws:region` keys; `undefined` removes a key). Resolves outputs or captures the thrown error.
 */
export async function runStack(
  stack: string,
  overrides: Record<string, string | undefined> = {},
  subnets: SubnetFixture[] = [],
  /** The stack's outputs from its last update (what it reads back through its self stack reference). */
  deployedOutputs: Record<string, unknown> = {},
  /** Objects in S3 the program may read, by `<bucket>/<key>` (a backup manifest restoreFrom names). */
  s3Objects: Record<string, S3ObjectFixture> = {},
): Promise<RunResult> {
  const config: Record<string, string> = { ...stackConfig(stack) };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete config[k];
    else config[k] = v;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = () => (require("../../../index") as () => Promise<StackOutputs>)();
  return runProgram(program, { project: PROJECT, stack, config, subnets, deployedOutputs, s3Objects });
}

/** The prod stack's deployment record after its first update: 3 shards x 1 replica, TLS, 32 GB volumes. */
export const PROD_DEPLOYMENT: DeployedShape = {
  target: "ec2",
  shards: 3,
  replicasPerShard: 1,
  tls: true,
  dataVolumeGb: 32,
  nodes: ["shard0-0", "shard1-0", "shard2-0", "shard0-1", "shard1-1", "shard2-1"],
};

/** An object aws.s3.getObject returns: its text body only for a text Content-Type, as the provider does. */
export interface S3ObjectFixture {
  body: string;
  contentType: string;
}

export interface ProgramRun {
  project: string;
  stack: string;
  /** Flat config, `namespace:key` -> string. */
  config: Record<string, string>;
  subnets?: SubnetFixture[];
  deployedOutputs?: Record<string, unknown>;
  s3Objects?: Record<string, S3ObjectFixture>;
  /** An update instead of a preview (the health waits run). Default: a preview. */
  update?: boolean;
}

/**
 * Runs any Pulumi program (index.ts, an example, a test's own) under the mocks, as a preview: what it
 * registers and invokes, and its outputs or the error it fails with.
 */
export async function runProgram<T = StackOutputs>(
  program: () => Promise<T> | T,
  run: ProgramRun,
): Promise<Omit<RunResult, "outputs"> & { outputs?: T }> {
  const { project, stack, config, subnets = [], deployedOutputs = {}, s3Objects = {} } = run;
  const resources: Registered[] = [];
  const calls: string[] = [];
  urns.clear();
  pulumi.runtime.setAllConfig(config);
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const inputs = args.inputs as Record<string, unknown>;
        resources.push({ type: args.type, name: args.name, inputs, provider: args.provider });
        const state: Record<string, unknown> =
          args.type === "pulumi:pulumi:StackReference"
            ? { ...inputs, outputs: deployedOutputs, secretOutputNames: [] }
            : { ...inputs, ...computedState(args.type, args.name) };
        const id = typeof state.id === "string" ? state.id : `${args.name}-id`;
        return { id, state };
      },
      call: (args) => {
        calls.push(args.token);
        const inputs = args.inputs as Record<string, unknown>;
        switch (args.token) {
          case "aws:index/getAvailabilityZones:getAvailabilityZones":
            return { names: FAKE.azs, zoneIds: ["use1-az1", "use1-az2", "use1-az4"] };
          case "aws:index/getRegion:getRegion":
            return { name: "us-east-1", region: "us-east-1", id: "us-east-1" };
          case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: "123456789012", arn: "arn:aws:iam::123456789012:user/ci", userId: "ci" };
          case "aws:ec2/getInstanceType:getInstanceType": {
            const type = String((inputs as { instanceType?: string }).instanceType);
            const facts = FAKE.instanceTypes[type];
            if (!facts)
              throw new Error(`InvalidInstanceType: The following supplied instance types do not exist: [${type}]`);
            return { instanceType: type, ...facts };
          }
          case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": {
            const filters = (inputs as { filters?: Array<{ values: string[] }> }).filters ?? [];
            const type = filters[0]?.values[0] ?? "";
            const locations = FAKE.offeredIn[type] ?? FAKE.azs;
            return {
              locations,
              locationTypes: locations.map(() => "availability-zone"),
              instanceTypes: locations.map(() => type),
            };
          }
          case "aws:ec2/getAmi:getAmi":
            return { id: "ami-0debian12", architecture: "arm64" };
          case "aws:ec2/getSubnet:getSubnet": {
            const s = subnets.find((x) => x.id === inputs.id);
            if (!s) throw new Error(`no fixture for subnet ${String(inputs.id)}`);
            return { ...s };
          }
          case "aws:s3/getObject:getObject": {
            const { bucket, key } = inputs as { bucket: string; key: string };
            const o = s3Objects[`${bucket}/${key}`];
            if (!o) throw new Error(`reading S3 Object (${key}) in bucket ${bucket}: couldn't find resource`);
            const text = /^(text\/|application\/json)/.test(o.contentType);
            return {
              bucket,
              key,
              contentType: o.contentType,
              contentLength: o.body.length,
              ...(text ? { body: o.body } : {}),
            };
          }
          case "rediscloud:index/getPaymentMethod:getPaymentMethod":
            return {
              id: "31337",
              cardType: "Visa",
              lastFourNumbers: String((inputs as { lastFourNumbers?: string }).lastFourNumbers ?? ""),
            };
          default:
            throw new Error(`unmocked invoke ${args.token}`);
        }
      },
    },
    project,
    stack,
    !run.update, // preview: what `pulumi preview` (and the PR check) runs; the health wait only runs in an update
    "organization", // what self-managed backends call every org (the stack reads its own outputs through it)
  );
  const withUrns = () => resources.map((r) => ({ ...r, urn: urns.get(`${r.type}::${r.name}`) }));
  try {
    const outputs = await program();
    await settle(resources);
    return { outputs, resources: withUrns(), calls };
  } catch (e) {
    await settle(resources);
    return { error: e as Error, resources: withUrns(), calls };
  }
}

/**
 * The registrations that stand for something in the cloud: a component is registered before it checks its
 * arguments (its own entry owns no cloud resource), so a failed check leaves exactly that and nothing else.
 */
export function cloudResources(run: RunResult): Registered[] {
  return run.resources.filter((r) => !r.type.startsWith(`${PROJECT}:`));
}

export function byType(resources: Registered[], type: string): Registered[] {
  return resources.filter((r) => r.type === type);
}

export function countByType(resources: Registered[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of resources) counts[r.type] = (counts[r.type] ?? 0) + 1;
  return counts;
}

/** A file the user-data writes (its heredoc), by its target path. */
export function fileIn(userData: string, path: string): string {
  const m = new RegExp(
    `cat >${path.replace(/[.]/g, "\\.")} <<'REDIS_STACK_FILE_END'\\n([\\s\\S]*?)\\nREDIS_STACK_FILE_END`,
  ).exec(userData);
  if (!m) throw new Error(`the user-data writes no ${path}`);
  return m[1];
}
