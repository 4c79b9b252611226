/**
 * The arguments of the EC2 component (`RedisEc2Cluster`), as a program that imports the library writes them.
 * Each has the name, meaning and default of the stack config key it mirrors (docs/configuration.md), is
 * optional, and is validated by the same rules with the same messages as `pulumi preview` (a problem names
 * the argument and the fix). Values are plain, not `pulumi.Input`: they decide how many resources exist and
 * what each node's user-data says, which must be known at preview.
 */
import type { ParameterReader } from "./health";
import type { MetricsInterval } from "../monitoring/metrics";
import type { EvictionPolicy, Persistence, Topology } from "../config/settings";
import type { ConfigKey } from "../config/keys";
import { sentinelMasterName } from "./sentinel";
import { ssmNames, SsmNames } from "./node/userData";
import { stackDimension } from "../monitoring/metrics";
import { backupObjectPrefix } from "./backups";

export interface RedisEc2ClusterArgs {
  /** `cluster` (Redis Cluster, sharded; the default) or `sentinel` (one primary, replicas and Sentinel). Fixed once deployed. */
  topology?: Topology;
  /** Masters. Cluster: at least 3 (default 3). Sentinel: 1. */
  shards?: number;
  /** Replicas per master, each in another AZ than its master (cluster: default 1; sentinel: default 2). Fixed once deployed. */
  replicasPerShard?: number;
  /** EC2 instance type (default `r7g.large`); its RAM and architecture come from AWS at preview. */
  instanceType?: string;
  /** Redis `maxmemory` per node, e.g. `"10gb"` (default: 65% of the type's RAM). */
  maxmemory?: string;
  /** Eviction policy (default `allkeys-lru`). */
  maxmemoryPolicy?: EvictionPolicy;
  /** `aof+rdb` (default), `aof`, `rdb` or `none`; AOF is `appendfsync everysec`. */
  persistence?: Persistence;
  /** TLS for clients, replication and the cluster bus (default true). Fixed once deployed. */
  tls?: boolean;
  /** `cluster-node-timeout` in ms, 1000-60000 (default 2000): failure detection. */
  nodeTimeoutMs?: number;
  /** How long `pulumi up` waits for every node to report healthy, in minutes (default 20; 0: do not wait). */
  healthTimeoutMinutes?: number;
  /** Bump by one to restart every node once, one at a time (default 0). */
  nodeGeneration?: number;
  /** Pin the nodes' AMI (default: the newest Debian 12 at creation, never changed). */
  amiId?: string;
  /** Encrypted gp3 data volume per node in GB (default 3 x maxmemory, at least 20); grows online, never shrinks. */
  dataVolumeGb?: number;
  /** An existing VPC, with `subnetIds` (default: the component creates a VPC). */
  vpcId?: string;
  /** Private subnets of `vpcId`, one per AZ, at least 2 AZs. */
  subnetIds?: string[];
  /** CIDR of the VPC the component creates (default `10.40.0.0/16`). */
  vpcCidr?: string;
  /** First static host address used in each subnet (default 10). */
  ipHostOffset?: number;
  /** Networks allowed to connect besides the client security group (never `0.0.0.0/0`). */
  allowedCidrs?: string[];
  /** Email subscribed to the alert topic. */
  alertEmail?: string;
  /** Seconds between a node's metric collections and the alarms' period: 10, 30 or 60 (default 60). */
  metricsIntervalSeconds?: MetricsInterval;
  /** Alarm when a node uses this percent of maxmemory (default 90). */
  alarmMemoryPercent?: number;
  /** Alarm when a node's p99 command latency exceeds this many ms (default 10). */
  alarmLatencyP99Ms?: number;
  /** Alarm when a node's data volume is this percent full (default 80). */
  alarmDiskPercent?: number;
  /** Alarm when a node evicts more keys per second than this, sustained (default 1). */
  alarmEvictionsPerSecond?: number;
  /**
   * Hours between scheduled backups (an RDB of every shard) to the cluster's S3 bucket: 0 (none; the bucket
   * and its key exist all the same, for on-demand backups) or 1-168 (default 6).
   */
  backupIntervalHours?: number;
  /** Days the bucket keeps a backup before its lifecycle rule expires it, 1-3650 (default 7). */
  backupRetentionDays?: number;
  /**
   * Create the cluster with the data of a backup: the S3 URI of its manifest
   * (`s3://<bucket>/<prefix>/backups/<id>/manifest.json`, as `node.sh backup` prints it). Each planned master
   * loads its shard before its Redis first starts; a backup that does not fit (shard count, slot ranges, a
   * checksum, a newer RDB) stops the nodes instead. Only a new cluster restores.
   */
  restoreFrom?: string;
  /**
   * Command rules added to the app user's least-privilege ACL, separated by spaces (for example
   * "+flushdb +keys"): `+command`, `-command`, `+command|subcommand`, `+@category` or `-@category`, each
   * known to Redis 7.0; @all, @admin and @dangerous are refused whole (name the commands). Applied live.
   */
  appAclGrants?: string;
  /** `REDIS_MAX_RETRIES` handed to apps (default 10). */
  clientMaxRetries?: number;
  /** `REDIS_CONNECT_TIMEOUT` handed to apps, ms (default 5000). */
  clientConnectTimeoutMs?: number;
  /**
   * The AWS region (the stack config's `aws:region`). Default: the region of the AWS provider the component
   * runs with.
   */
  region?: string;
  /** Tags on every resource, besides the component's own. */
  tags?: Record<string, string>;
  /**
   * Report problems as this stack config namespace's keys (`pulumi config set <namespace>:...`) instead of as
   * arguments: for a program whose config keys are these arguments (the repository's own `index.ts`).
   */
  configNamespace?: string;
  /** How `pulumi up` reads the nodes' status (default: SSM with the deployer's credentials). For tests. */
  healthReader?: ParameterReader;
}

/** The arguments that are not config keys: how the component runs, not what it builds. */
export const EC2_COMPONENT_OPTIONS = ["region", "tags", "configNamespace", "healthReader"] as const;

/** A config key the EC2 component takes as an argument (KEY_SCOPES), by name. */
export type Ec2ArgumentKey = Exclude<keyof RedisEc2ClusterArgs, (typeof EC2_COMPONENT_OPTIONS)[number]>;
// Every argument is a config key of the same name: the compiler refuses a key the table does not have.
const argumentsAreKeys: Ec2ArgumentKey extends ConfigKey ? true : never = true;
void argumentsAreKeys;

/** The name the repository's own program gives its cluster: it keeps the stack-wide names it was deployed with. */
export function stackComponentName(stack: string): string {
  return `redis-${stack}`;
}

/**
 * The names a cluster's resources outside Pulumi go by: its SSM parameters (the node role may read only
 * below `ssm.prefix`), the `Stack` dimension of its metrics, its Sentinel master name, its prefix in its
 * backup bucket. The stack's own
 * cluster (`redis-<stack>`) keeps the stack-wide names (`/<project>/<stack>/...`); any other component adds
 * its own name, so two clusters in one stack never share one.
 */
export interface ClusterNames {
  ssm: SsmNames;
  metricsStack: string;
  sentinelMaster: string;
  /** Where its backups go in its bucket (`<project>/<scope>`; backups.ts backupObjectPrefix). */
  backupPrefix: string;
}

export function clusterNames(project: string, stack: string, name: string): ClusterNames {
  const scope = name === stackComponentName(stack) ? stack : `${stack}-${name}`;
  return {
    ssm: ssmNames(project, scope),
    metricsStack: stackDimension(project, scope),
    sentinelMaster: sentinelMasterName(project, scope),
    backupPrefix: backupObjectPrefix(project, scope),
  };
}
