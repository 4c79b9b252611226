/**
 * The library's Redis Cloud component: a (Pro) subscription + database: replication on, AOF every second,
 * periodic RDB backups to your bucket, TLS (apps verify it against Redis Cloud's CA from config), a
 * generated password, a source-IP allowlist and alerts; optionally a VPC peering with the app's VPC, and
 * then apps connect to the database's private endpoint.
 * Talks to the `rediscloud` provider through the typed binding `@rediscloud/pulumi-rediscloud`.
 */
import * as pulumi from "@pulumi/pulumi";
import { componentData } from "../componentData";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { CloudSettings, ClientSettings, EvictionPolicy, Persistence } from "../config/settings";
import { formatProblems, ProblemAudience } from "../config/problems";
import { argumentsInput } from "../config/arguments";
import { parseSettings } from "../config/parse";
import { CLOUD_PEER_KEYS } from "../config/cloud";
import { connectionOutputs, ConnectionOutputs, TlsFacts } from "../contract/connection";
import { CLOUD_COMPONENT_OPTIONS, RedisCloudDatabaseArgs } from "./args";
import { CloudPeer, RedisCloudPeering } from "./peering";
import { cloudBackupBucketPolicy, cloudBackupKeyPolicy, cloudBackupPath } from "./backups";
import { createBackupBucket } from "../backup/bucket";
import { backupLifecycleRules, backupObjectPrefix } from "../ec2/backups";

/** Stack persistence -> Redis Cloud's `dataPersistence` (RDB backups go through `remoteBackup`). */
export function cloudDataPersistence(p: Persistence): string {
  switch (p) {
    case "aof+rdb":
    case "aof":
      return "aof-every-1-second";
    case "rdb":
      return "snapshot-every-1-hour";
    case "none":
      return "none";
  }
}

/**
 * Alerts Redis Cloud mails to the account's users: memory, throughput, latency. The provider (v1.3.5)
 * accepts only the names in reference/rediscloud/validation-v1.3.5.json; its schema text lists more
 * (`connections-limit` among them) that its check rejects. The thresholds are the EC2 alarms' keys where
 * they mean the same: `alarmMemoryPercent` (dataset size, percent of the memory limit) and
 * `alarmLatencyP99Ms` (Redis Cloud compares its own latency figure in whole milliseconds: rounded up).
 * Values are integers in the provider's schema.
 */
export function cloudAlerts(s: CloudSettings): { name: string; value: number }[] {
  return [
    { name: "dataset-size", value: s.alarms.memoryPercent },
    { name: "throughput-higher-than", value: Math.floor(s.throughputOps * 0.8) },
    { name: "latency", value: Math.max(1, Math.ceil(s.alarms.latencyP99Ms)) },
  ];
}

/** Whether the database takes periodic RDB backups (Redis Cloud's remote backup). */
export function cloudBacksUp(p: Persistence): boolean {
  return p === "aof+rdb" || p === "rdb";
}

/**
 * The database's remote backup: to `cloudBackupPath`, or else to the bucket the stack created (`created`,
 * its S3 path); none without RDB persistence.
 */
export function cloudRemoteBackup(
  s: CloudSettings,
  p: Persistence,
  created?: pulumi.Input<string>,
): { interval: string; storageType: string; storagePath: pulumi.Input<string> } | undefined {
  if (!cloudBacksUp(p)) return undefined;
  const storagePath = s.backupPath ?? created;
  if (storagePath === undefined) throw new Error("RDB backups need cloudBackupPath or the stack's own bucket");
  return {
    interval: `every-${s.backupIntervalHours}-hours`,
    storageType: s.backupPath?.startsWith("gs://") ? "google-blob-storage" : "aws-s3",
    storagePath,
  };
}

/** What the wiring builds from: the validated settings and the resolved peer. */
interface DatabasePlan {
  settings: CloudSettings;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  tls: boolean;
  allowedCidrs: string[];
  client: ClientSettings;
  /** A VPC peering with the app's VPC (settings.peering with its account); apps then use the private endpoint. */
  peer?: CloudPeer;
  /** Where the stack creates the backup bucket (no cloudBackupPath, RDB on): the AWS account and region. */
  backupBucketIn?: { accountId: string; region: string };
  tags?: Record<string, string>;
}

/**
 * Everything a Redis Cloud database exports, as one object: the connection contract, the peered VPC and its
 * subnets when peered (where apps must run), and the alerts Redis Cloud sends.
 */
export type CloudDatabaseOutputs = ConnectionOutputs & {
  vpcId?: pulumi.Output<string>;
  subnetIds?: pulumi.Output<string[]>;
  monitoring: pulumi.Output<{ alerts?: string[] }>;
  /**
   * Where Redis Cloud writes the periodic RDB backups: `cloudBackupPath`, or `s3://<bucket>/<project>/<stack>/backups`
   * in the bucket the stack created (docs/runbook.md, "Backups"); "" when persistence takes no RDB.
   */
  backupPath: pulumi.Output<string>;
};

interface DatabaseData {
  outputs: CloudDatabaseOutputs;
  subscriptionId: pulumi.Output<string>;
  alerts: pulumi.Output<string[]>;
}

/** Wires the subscription, the database and the peering under the component. */
class DatabaseWiring {
  constructor(
    private readonly component: RedisCloudDatabase,
    private readonly name: string,
    private readonly args: DatabasePlan,
  ) {}

  /**
   * The database's backup bucket when the stack creates it (components/cloud/backups.ts): its own KMS key,
   * Redis Cloud's documented access, TLS only, expiring backups after backupRetentionDays.
   */
  private backupBucket(): { path: pulumi.Output<string>; ready: pulumi.Resource[] } | undefined {
    const at = this.args.backupBucketIn;
    if (!at) return undefined;
    const prefix = backupObjectPrefix(pulumi.getProject(), pulumi.getStack());
    const created = createBackupBucket(`${this.name}-backups`, {
      parent: this.component,
      tags: { Name: `${this.name}-backups`, ...this.args.tags },
      keyDescription: `Redis Cloud backups of database ${this.name} in Pulumi stack ${prefix}`,
      keyPolicy: JSON.stringify(cloudBackupKeyPolicy(at.accountId, at.region)),
      bucketPolicy: cloudBackupBucketPolicy,
      lifecycleRules: backupLifecycleRules(prefix, this.args.settings.backupRetentionDays),
    });
    return {
      path: created.bucket.bucket.apply((b) => cloudBackupPath(b, prefix)),
      ready: created.ready,
    };
  }

  build(): DatabaseData {
    const name = this.name;
    const args = this.args;
    const s = args.settings;
    const child = { parent: this.component };

    const paymentMethodId: pulumi.Input<string> | undefined =
      s.paymentMethod === "marketplace"
        ? undefined
        : (s.paymentMethodId ?? rediscloud.getPaymentMethodOutput({ lastFourNumbers: s.paymentCardLast4 }, child).id);

    const subscription = new rediscloud.Subscription(
      `${name}-subscription`,
      {
        name: `${name}-subscription`,
        paymentMethod: s.paymentMethod,
        paymentMethodId,
        memoryStorage: "ram",
        cloudProvider: {
          provider: "AWS",
          regions: [
            { region: s.region, multipleAvailabilityZones: s.multiAz, networkingDeploymentCidr: s.deploymentCidr },
          ],
        },
        creationPlan: {
          memoryLimitInGb: s.memoryGb,
          quantity: 1,
          replication: true,
          supportOssClusterApi: s.clusterApi,
          throughputMeasurementBy: "operations-per-second",
          throughputMeasurementValue: s.throughputOps,
        },
      },
      child,
    );

    const backups = this.backupBucket();
    const remote = cloudRemoteBackup(s, args.persistence, backups?.path);
    const password = new random.RandomPassword(`${name}-password`, { length: 32, special: false }, child);
    const alerts = cloudAlerts(s);
    const database = new rediscloud.SubscriptionDatabase(
      `${name}-db`,
      {
        subscriptionId: subscription.id,
        name: `${name}-db`,
        protocol: "redis",
        memoryLimitInGb: s.memoryGb,
        throughputMeasurementBy: "operations-per-second",
        throughputMeasurementValue: s.throughputOps,
        replication: true,
        dataPersistence: cloudDataPersistence(args.persistence),
        dataEviction: args.maxmemoryPolicy,
        supportOssClusterApi: s.clusterApi,
        enableTls: args.tls,
        password: password.result,
        sourceIps: args.allowedCidrs,
        alerts,
        remoteBackup: remote,
      },
      // Redis Cloud checks its access when backups are set: the bucket's policy and encryption come first.
      { ...child, dependsOn: backups?.ready ?? [] },
    );

    // Peered: apps reach the private endpoint through the peering, handed out once the routes exist.
    const peering = args.peer
      ? new RedisCloudPeering(
          `${name}-peering`,
          {
            subscriptionId: subscription.id,
            region: s.region,
            deploymentCidr: s.deploymentCidr,
            peer: args.peer,
            tags: args.tags,
          },
          child,
        )
      : undefined;
    const endpoint = peering
      ? pulumi.all([database.privateEndpoint, peering.routed]).apply(([e]) => e)
      : database.publicEndpoint;
    // config.ts requires cloudCaCertificate with TLS: apps verify the database against Redis Cloud's CA.
    if (args.tls && s.caCertificate === undefined) throw new Error("TLS on Redis Cloud needs cloudCaCertificate");
    const trust: TlsFacts = args.tls ? { tls: true, caCertificate: s.caCertificate ?? "" } : { tls: false };
    const connection = connectionOutputs({
      target: "cloud",
      nodes: endpoint.apply((e) => [e]),
      username: "default",
      password: password.result,
      ...trust,
      clusterMode: s.clusterApi,
      client: args.client,
    });
    const alertList = pulumi.output(alerts.map((a) => `${a.name} ${a.value}`));
    return {
      outputs: {
        ...connection,
        ...(args.peer ? { vpcId: pulumi.output(args.peer.vpcId), subnetIds: pulumi.output(args.peer.subnetIds) } : {}),
        monitoring: alertList.apply((list): { alerts?: string[] } => ({ alerts: list })),
        backupPath: pulumi.output(remote?.storagePath ?? ""),
      },
      subscriptionId: subscription.id,
      alerts: alertList,
    };
  }
}

/** The arguments ride to `initialize` under a symbol, out of the component's engine inputs (see RedisEc2Cluster). */
const ARGUMENTS = Symbol("RedisCloudDatabase arguments");

/** Validates the arguments and resolves the peered VPC's account; throws a RunError listing every problem. */
async function resolveDatabase(
  args: RedisCloudDatabaseArgs,
  audience: ProblemAudience,
  parent: pulumi.Resource,
): Promise<DatabasePlan> {
  const peered = CLOUD_PEER_KEYS.some((k) => args[k] !== undefined);
  const region = "region" in args || !peered ? args.region : (await aws.getRegion({}, { parent })).name;
  const given = argumentsInput("cloud", args, CLOUD_COMPONENT_OPTIONS, region, args.configNamespace !== undefined);
  const parsed = parseSettings(given.input);
  const problems = [...given.problems, ...parsed.problems];
  const settings = parsed.settings;
  if (!settings?.cloud || problems.length > 0) throw new pulumi.RunError(formatProblems(problems, audience));
  const cloud = settings.cloud;
  // The peered VPC's account is the one the AWS credentials are in: they accept the peering and add the routes.
  const peer = cloud.peering
    ? { ...cloud.peering, awsAccountId: (await aws.getCallerIdentity({}, { parent })).accountId }
    : undefined;
  // No cloudBackupPath with RDB on: the stack creates the bucket, in the AWS account and region it deploys to.
  const backupBucketIn =
    cloud.backupPath === undefined && cloudBacksUp(settings.persistence)
      ? {
          accountId: peer?.awsAccountId ?? (await aws.getCallerIdentity({}, { parent })).accountId,
          region: (await aws.getRegion({}, { parent })).name,
        }
      : undefined;
  return {
    settings: cloud,
    maxmemoryPolicy: settings.maxmemoryPolicy,
    persistence: settings.persistence,
    tls: settings.tls,
    allowedCidrs: settings.allowedCidrs,
    client: settings.client,
    peer,
    backupBucketIn,
    tags: { "redis-stack:stack": pulumi.getStack(), "redis-stack:project": pulumi.getProject(), ...args.tags },
  };
}

/**
 * A Redis Cloud (Pro) subscription and database with replication, AOF every second, periodic RDB backups,
 * TLS, a generated password, a source-IP allowlist and alerts; optionally peered with the app's VPC. Reaches
 * Redis Cloud through the `rediscloud` provider (pass one in `opts.providers`, or set its environment).
 */
export class RedisCloudDatabase extends pulumi.ComponentResource<DatabaseData> {
  readonly target: pulumi.Output<"cloud" | "ec2">;
  /** `rediss://default:<password>@<endpoint>` (secret). */
  readonly redisUrl: pulumi.Output<string>;
  readonly clusterMode: pulumi.Output<boolean>;
  readonly nodes: pulumi.Output<string[]>;
  readonly tls: pulumi.Output<boolean>;
  readonly caCertificate: pulumi.Output<string>;
  /** The variables apps read (secret). */
  readonly env: CloudDatabaseOutputs["env"];
  readonly subscriptionId: pulumi.Output<string>;
  readonly alerts: pulumi.Output<string[]>;
  /** Every output a stack exports, as one object (`vpcId` and `subnetIds` only when peered). */
  readonly outputs: CloudDatabaseOutputs;
  /** Settles once every resource is declared; rejects with the problems when the arguments are invalid. */
  readonly ready: Promise<void>;

  constructor(name: string, args: RedisCloudDatabaseArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:cloud:RedisCloudDatabase", name, { [ARGUMENTS]: args }, opts);
    const data = componentData(this.getData());
    const from = <T>(pick: (d: DatabaseData) => pulumi.Output<T>): pulumi.Output<T> => data.pick(pick);
    const contract = <K extends keyof ConnectionOutputs>(key: K) =>
      from((d) => d.outputs[key] as pulumi.Output<unknown>) as ConnectionOutputs[K];
    const peered = CLOUD_PEER_KEYS.some((k) => args[k] !== undefined);
    this.outputs = {
      target: contract("target"),
      redisUrl: contract("redisUrl"),
      clusterMode: contract("clusterMode"),
      nodes: contract("nodes"),
      tls: contract("tls"),
      caCertificate: contract("caCertificate"),
      env: contract("env"),
      // Known from the arguments: peered or not decides which outputs exist, before anything resolves.
      ...(peered
        ? {
            vpcId: from((d) => d.outputs.vpcId ?? pulumi.output("")),
            subnetIds: from((d) => d.outputs.subnetIds ?? pulumi.output([])),
          }
        : {}),
      monitoring: from((d) => d.outputs.monitoring),
      backupPath: from((d) => d.outputs.backupPath),
    };
    ({
      target: this.target,
      redisUrl: this.redisUrl,
      clusterMode: this.clusterMode,
      nodes: this.nodes,
      tls: this.tls,
      caCertificate: this.caCertificate,
      env: this.env,
    } = this.outputs);
    this.subscriptionId = from((d) => d.subscriptionId);
    this.alerts = from((d) => d.alerts);
    this.ready = data.ready;
  }

  protected async initialize(inputs: pulumi.Inputs, _opts: unknown, name: string): Promise<DatabaseData> {
    const args = (inputs as { [ARGUMENTS]?: RedisCloudDatabaseArgs })[ARGUMENTS] ?? {};
    const audience: ProblemAudience = args.configNamespace
      ? { config: args.configNamespace }
      : { component: `RedisCloudDatabase "${name}"` };
    const plan = await resolveDatabase(args, audience, this);
    const data = new DatabaseWiring(this, name, plan).build();
    this.registerOutputs({ ...data.outputs, subscriptionId: data.subscriptionId, alerts: data.alerts });
    return data;
  }
}
