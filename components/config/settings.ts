/**
 * The typed settings every part of the stack reads: the enums, the defaults and the shape `parseSettings`
 * returns. No logic lives here, so every module may import it.
 */
import type { Architecture } from "../ec2/instanceTypes";
import type { MetricsInterval } from "../monitoring/metrics";

export type Target = "cloud" | "ec2";
/** The EC2 layout: a Redis Cluster (shards), or one primary with replicas and Sentinel (components/ec2/sentinel.ts). */
export const TOPOLOGIES = ["cluster", "sentinel"] as const;
export type Topology = (typeof TOPOLOGIES)[number];
export const PERSISTENCE_MODES = ["aof+rdb", "aof", "rdb", "none"] as const;
export type Persistence = (typeof PERSISTENCE_MODES)[number];
export const EVICTION_POLICIES = [
  "allkeys-lru",
  "allkeys-lfu",
  "allkeys-random",
  "volatile-lru",
  "volatile-lfu",
  "volatile-random",
  "volatile-ttl",
  "noeviction",
] as const;
export type EvictionPolicy = (typeof EVICTION_POLICIES)[number];

/** Bounds for `cluster-node-timeout`: below 1 s a busy fork or GC pause triggers false failovers; above 60 s failover is pointless. */
export const NODE_TIMEOUT_MIN_MS = 1000;
export const NODE_TIMEOUT_MAX_MS = 60000;
/**
 * The most nodes (shards x (1 + replicasPerShard)) a Redis Cluster may have: every node's user-data carries
 * the whole cluster plan and EC2 takes at most 16 KiB of user-data (gzip'd). At 60 the prod stack's
 * user-data is 16,234 bytes (`npm run bench:scale`, 2026-12-07); tests/unit/userDataScale.test.ts renders it at this
 * bound and fails once it no longer fits (then ship the plan through SSM instead).
 */
export const MAX_CLUSTER_NODES = 60;
/** Chosen from `npm run bench:failover` (see BENCHMARKS.md): p95 write gap under 5 s, no false failovers under load. */
export const DEFAULT_NODE_TIMEOUT_MS = 2000;

/**
 * Scheduled backups (EC2): hours between two, 0 for none (on-demand backups still work), at most a week.
 * Every 6 h by default: with AOF everysec a node already survives its own crash, so a backup is for what
 * replication copies too (a FLUSHALL, a bad deploy's writes) and for losing every copy of a volume; 4 a day
 * bound what an operator's mistake loses to 6 h, at 4 RDB uploads per shard a day.
 */
export const DEFAULT_BACKUP_INTERVAL_HOURS = 6;
export const BACKUP_INTERVAL_MAX_HOURS = 168;
/** Days a backup is kept in the bucket before its lifecycle rule expires it (at most 10 years). */
export const DEFAULT_BACKUP_RETENTION_DAYS = 7;
export const BACKUP_RETENTION_MAX_DAYS = 3650;

/** Where the EC2 alarms fire (components/monitoring/alarms.ts); each is a config key (README, "Monitoring"). */
export interface AlarmThresholds {
  /** alarmMemoryPercent: used_memory as a percent of maxmemory, on the fullest node. */
  memoryPercent: number;
  /** alarmLatencyP99Ms: p99 command latency in milliseconds, on the slowest node. */
  latencyP99Ms: number;
  /** alarmDiskPercent: percent used of a node's data volume. */
  diskPercent: number;
  /** alarmEvictionsPerSecond: keys evicted per second on a node, sustained. */
  evictionsPerSecond: number;
}

export const DEFAULT_ALARM_THRESHOLDS: AlarmThresholds = {
  memoryPercent: 90,
  latencyP99Ms: 10,
  diskPercent: 80,
  evictionsPerSecond: 1,
};

export interface ClientSettings {
  /** Retries per command a client should make (REDIS_MAX_RETRIES): enough to ride out a failover. */
  maxRetries: number;
  /** Connect timeout in ms (REDIS_CONNECT_TIMEOUT). */
  connectTimeoutMs: number;
}

export interface Ec2Settings {
  region: string;
  topology: Topology;
  /** Masters (cluster); always 1 in the Sentinel topology. */
  shards: number;
  replicasPerShard: number;
  instanceType: string;
  architecture: Architecture;
  /** Instance RAM when the type is known. */
  memoryBytes?: number;
  maxmemoryBytes: number;
  nodeTimeoutMs: number;
  dataVolumeGb: number;
  vpcId?: string;
  subnetIds?: string[];
  /** CIDR of the VPC the stack creates when `vpcId` is not given. */
  vpcCidr: string;
  /** Host offset of the first static node address inside each subnet (AWS reserves .0-.3). */
  ipHostOffset: number;
  /** How long `pulumi up` waits for every node to report healthy; 0 does not wait. */
  healthTimeoutMinutes: number;
  /** Bumping it restarts every node once, one at a time (package upgrade, TLS material re-read). */
  nodeGeneration: number;
  /** A pinned AMI: changing it replaces the nodes one at a time. Unset: the newest Debian 12 at creation, never changed. */
  amiId?: string;
  /** Seconds between two metric collections on a node; also the alarms' period (components/monitoring/alarms.ts). */
  metricsIntervalSeconds: MetricsInterval;
  alarms: AlarmThresholds;
  /** Hours between a node's scheduled backups to the cluster's bucket; 0: none (components/ec2/backups.ts). */
  backupIntervalHours: number;
  /** Days the bucket keeps a backup before expiring it. */
  backupRetentionDays: number;
  /** A backup's manifest (s3://...manifest.json) a new stack loads its data from (backups.ts parseRestoreFrom). */
  restoreFrom?: string;
  /** Command rules added to the app user's least-privilege default (ec2/node/appAcl.ts), in their order. */
  appAclGrants: string[];
}

/**
 * A VPC peering between the Redis Cloud subscription and the app's VPC (redisCloud.ts RedisCloudPeering).
 * The VPC is in the account of the stack's AWS credentials and in the subscription's region.
 */
export interface CloudPeeringSettings {
  /** cloudPeerVpcId: the app's VPC. */
  vpcId: string;
  /** cloudPeerVpcCidrs: its CIDR blocks (Redis Cloud routes them into the peering). */
  vpcCidrs: string[];
  /** cloudPeerSubnetIds: where the apps run (the stack's `subnetIds` output). */
  subnetIds: string[];
  /** cloudPeerRouteTableIds: each gets a route to cloudDeploymentCidr through the peering. */
  routeTableIds: string[];
}

export interface CloudSettings {
  region: string;
  memoryGb: number;
  throughputOps: number;
  paymentMethod: "credit-card" | "marketplace";
  paymentMethodId?: string;
  paymentCardLast4?: string;
  deploymentCidr: string;
  multiAz: boolean;
  /** cloudBackupPath; absent, RDB persistence backs up to a bucket the stack creates for Redis Cloud. */
  backupPath?: string;
  backupIntervalHours: number;
  /** The lifecycle of the bucket the stack creates (none when backupPath is given: that bucket is yours). */
  backupRetentionDays: number;
  clusterApi: boolean;
  /** cloudCaCertificate: Redis Cloud's CA bundle (PEM); present whenever TLS is on (validated). */
  caCertificate?: string;
  /** Present when the cloudPeer* keys are set: apps then connect to the database's private endpoint. */
  peering?: CloudPeeringSettings;
  /** The same threshold keys as the EC2 alarms; Redis Cloud alerts on memory and latency (redisCloud.ts cloudAlerts). */
  alarms: AlarmThresholds;
}

export interface Settings {
  target: Target;
  persistence: Persistence;
  maxmemoryPolicy: EvictionPolicy;
  tls: boolean;
  allowedCidrs: string[];
  alertEmail?: string;
  client: ClientSettings;
  /** Present when target is ec2. */
  ec2?: Ec2Settings;
  /** Present when target is cloud. */
  cloud?: CloudSettings;
}

export interface ConfigProblem {
  key: string;
  value: string | undefined;
  problem: string;
  fix: string;
}

export const DEFAULT_INSTANCE_TYPE = "r7g.large";
/** The shape of an instance type name; anything else is refused before AWS is asked. */
export const INSTANCE_TYPE_PATTERN = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;
