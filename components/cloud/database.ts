/**
 * Redis Cloud (Pro) subscription + database: replication on, AOF every second,
 * periodic RDB backups to your bucket, TLS (apps verify it against Redis Cloud's CA from config), a
 * generated password, a source-IP allowlist and alerts; optionally a VPC peering with the app's VPC, and
 * then apps connect to the database's private endpoint.
 * Talks to the `rediscloud` provider through the typed binding `@rediscloud/pulumi-rediscloud`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { CloudPeeringSettings, CloudSettings, ClientSettings, EvictionPolicy, Persistence } from "../config/settings";
import { connectionOutputs, ConnectionOutputs, TlsFacts } from "../contract/connection";

/** The peered VPC as the stack resolved it: the config's VPC, in the account of the stack's AWS credentials. */
export interface CloudPeer extends CloudPeeringSettings {
  /** The account the VPC lives in (aws.getCallerIdentity: the accepter and routes run with those credentials). */
  awsAccountId: string;
}

export interface RedisCloudDatabaseArgs {
  settings: CloudSettings;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  tls: boolean;
  allowedCidrs: string[];
  client: ClientSettings;
  /** A VPC peering with the app's VPC (settings.peering with its account); apps then use the private endpoint. */
  peer?: CloudPeer;
  tags?: Record<string, string>;
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

export interface RedisCloudPeeringArgs {
  /** The subscription to peer (Redis Cloud's numeric id). */
  subscriptionId: pulumi.Input<string>;
  /** The subscription's region: the peered VPC's too. */
  region: string;
  /** The subscription's networking deployment CIDR: the app's route tables send it into the peering. */
  deploymentCidr: string;
  peer: CloudPeer;
  tags?: Record<string, string>;
}

/**
 * A VPC peering between a Redis Cloud subscription and the app's VPC: Redis Cloud requests it
 * (SubscriptionPeering, which also routes the VPC's CIDRs on its side), AWS accepts it in the app's
 * account, and each of the app's route tables sends the subscription's deployment CIDR through it.
 */
export class RedisCloudPeering extends pulumi.ComponentResource {
  /** The AWS peering connection (`pcx-...`), once accepted. */
  readonly peeringConnectionId: pulumi.Output<string>;
  /** Resolves once every route to the subscription exists: the private endpoint is reachable from then on. */
  readonly routed: pulumi.Output<string[]>;

  constructor(name: string, args: RedisCloudPeeringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:cloud:RedisCloudPeering", name, {}, opts);
    const child = { parent: this };
    const p = args.peer;
    const request = new rediscloud.SubscriptionPeering(
      `${name}-request`,
      {
        subscriptionId: args.subscriptionId,
        providerName: "AWS",
        region: args.region,
        awsAccountId: p.awsAccountId,
        vpcId: p.vpcId,
        // The provider takes exactly one of vpcCidr and vpcCidrs; the list covers VPCs with secondary CIDRs.
        vpcCidrs: p.vpcCidrs,
      },
      child,
    );
    const accepter = new aws.ec2.VpcPeeringConnectionAccepter(
      `${name}-accept`,
      {
        vpcPeeringConnectionId: request.awsPeeringId,
        autoAccept: true,
        tags: { Name: name, ...args.tags },
      },
      child,
    );
    // Named after the route table, so reordering the config list changes nothing.
    const routes = p.routeTableIds.map(
      (routeTableId) =>
        new aws.ec2.Route(
          `${name}-${routeTableId}`,
          {
            routeTableId,
            destinationCidrBlock: args.deploymentCidr,
            vpcPeeringConnectionId: accepter.vpcPeeringConnectionId,
          },
          child,
        ),
    );
    this.peeringConnectionId = accepter.vpcPeeringConnectionId;
    this.routed = pulumi.all(routes.map((r) => r.id));
    this.registerOutputs({ peeringConnectionId: this.peeringConnectionId, routed: this.routed });
  }
}

export class RedisCloudDatabase extends pulumi.ComponentResource {
  readonly connection: ConnectionOutputs;
  readonly subscriptionId: pulumi.Output<string>;
  readonly alerts: pulumi.Output<string[]>;
  /** The peered VPC (`vpcId` output) when peered. */
  readonly vpcId?: pulumi.Output<string>;
  /** The peered VPC's subnets the apps run in (`subnetIds` output) when peered. */
  readonly subnetIds?: pulumi.Output<string[]>;

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
    this.connection = connectionOutputs({
      target: "cloud",
      nodes: endpoint.apply((e) => [e]),
      username: "default",
      password: password.result,
      ...trust,
      clusterMode: s.clusterApi,
      client: args.client,
    });
    this.subscriptionId = subscription.id;
    this.alerts = pulumi.output(alerts.map((a) => `${a.name} ${a.value}`));
    if (args.peer) {
      this.vpcId = pulumi.output(args.peer.vpcId);
      this.subnetIds = pulumi.output(args.peer.subnetIds);
    }
    this.registerOutputs({
      connection: this.connection,
      subscriptionId: this.subscriptionId,
      alerts: this.alerts,
      vpcId: this.vpcId,
      subnetIds: this.subnetIds,
    });
  }
}
