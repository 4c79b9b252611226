/**
 * Redis Cloud (Pro) subscription + database: replication on, AOF every second,
 * periodic RDB backups to your bucket, TLS, a generated password, a source-IP allowlist and alerts.
 * Talks to the `rediscloud` provider through the typed binding `@rediscloud/pulumi-rediscloud`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { CloudSettings, ClientSettings, EvictionPolicy, Persistence } from "./config";
import { connectionOutputs, ConnectionOutputs } from "./connection";

export interface RedisCloudDatabaseArgs {
  settings: CloudSettings;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  tls: boolean;
  allowedCidrs: string[];
  client: ClientSettings;
}

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

export function cloudRemoteBackup(
  s: CloudSettings,
  p: Persistence,
): { interval: string; storageType: string; storagePath: string } | undefined {
  if ((p !== "aof+rdb" && p !== "rdb") || s.backupPath === undefined) return undefined;
  return {
    interval: `every-${s.backupIntervalHours}-hours`,
    storageType: s.backupPath.startsWith("gs://") ? "google-blob-storage" : "aws-s3",
    storagePath: s.backupPath,
  };
}

export class RedisCloudDatabase extends pulumi.ComponentResource {
  readonly connection: ConnectionOutputs;
  readonly subscriptionId: pulumi.Output<string>;
  readonly alerts: pulumi.Output<string[]>;

  constructor(name: string, args: RedisCloudDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:cloud:RedisCloudDatabase", name, {}, opts);
    const s = args.settings;
    const child = { parent: this };

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
        remoteBackup: cloudRemoteBackup(s, args.persistence),
      },
      child,
    );

    this.connection = connectionOutputs({
      target: "cloud",
      nodes: database.publicEndpoint.apply((endpoint) => [endpoint]),
      username: "default",
      password: password.result,
      tls: args.tls,
      clusterMode: s.clusterApi,
      client: args.client,
    });
    this.subscriptionId = subscription.id;
    this.alerts = pulumi.output(alerts.map((a) => `${a.name} ${a.value}`));
    this.registerOutputs({ connection: this.connection, subscriptionId: this.subscriptionId, alerts: this.alerts });
  }
}
