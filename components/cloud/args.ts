/**
 * The arguments of the Redis Cloud component (`RedisCloudDatabase`), as a program that imports the library
 * writes them: each has the name, meaning and default of the stack config key it mirrors
 * (docs/configuration.md), is optional where a default exists, and is validated by the same rules with the
 * same messages as `pulumi preview`.
 */
import type { ConfigKey } from "../config/keys";
import type { EvictionPolicy, Persistence } from "../config/settings";

export interface RedisCloudDatabaseArgs {
  /** `aof+rdb` (default), `aof`, `rdb` or `none`. RDB backups go to `cloudBackupPath`. */
  persistence?: Persistence;
  /** Eviction policy (default `allkeys-lru`). */
  maxmemoryPolicy?: EvictionPolicy;
  /** TLS (default true); needs `cloudCaCertificate`. */
  tls?: boolean;
  /** Source IPs allowed to connect, peered apps included (required; never `0.0.0.0/0`). */
  allowedCidrs?: string[];
  /** `REDIS_MAX_RETRIES` handed to apps (default 10). */
  clientMaxRetries?: number;
  /** `REDIS_CONNECT_TIMEOUT` handed to apps, ms (default 5000). */
  clientConnectTimeoutMs?: number;
  /** The `dataset-size` alert, percent of the memory limit (default 90). */
  alarmMemoryPercent?: number;
  /** The `latency` alert, ms, rounded up (default 10). */
  alarmLatencyP99Ms?: number;
  /** AWS region of the subscription (default `us-east-1`). */
  cloudRegion?: string;
  /** Database memory limit in GB (default 1). */
  cloudMemoryGb?: number;
  /** Operations per second (default 1000). */
  cloudThroughputOps?: number;
  /** `credit-card` (default) or `marketplace`. */
  cloudPaymentMethod?: "credit-card" | "marketplace";
  /** The card's id (or `cloudPaymentCardLast4`). */
  cloudPaymentMethodId?: string;
  /** Last 4 digits of the account's card, looked up at deploy. */
  cloudPaymentCardLast4?: string;
  /** /24 for Redis Cloud's VPC, outside your VPCs (default `10.0.0.0/24`). */
  cloudDeploymentCidr?: string;
  /** Replicas in another AZ (default true). */
  cloudMultiAz?: boolean;
  /**
   * Where periodic RDB backups go (`s3://...`). Without it (and with RDB on) the component creates the bucket:
   * its own KMS key, TLS only, the access Redis Cloud documents for its backup account.
   */
  cloudBackupPath?: string;
  /** Days the bucket the component creates keeps a backup, 1-3650 (default 7); not used with cloudBackupPath. */
  backupRetentionDays?: number;
  /** Hours between RDB backups: 1, 2, 4, 6, 12 or 24 (default 6). */
  cloudBackupIntervalHours?: number;
  /** OSS Cluster API: clients then use cluster mode (default false). */
  cloudClusterApi?: boolean;
  /** Redis Cloud's CA bundle (PEM), handed to apps as `REDIS_CA_PEM` (required with TLS). */
  cloudCaCertificate?: string;
  /** Peer the subscription with this VPC (all four `cloudPeer*` or none). */
  cloudPeerVpcId?: string;
  /** That VPC's CIDR blocks. */
  cloudPeerVpcCidrs?: string[];
  /** The subnets of that VPC the apps run in. */
  cloudPeerSubnetIds?: string[];
  /** The route tables of those subnets. */
  cloudPeerRouteTableIds?: string[];
  /** The AWS region of the peered VPC's side (default: the AWS provider's); must be `cloudRegion`. */
  region?: string;
  /** Tags on the AWS resources (the peering's accepter). */
  tags?: Record<string, string>;
  /** Report problems as this stack config namespace's keys instead of as arguments (see the EC2 component). */
  configNamespace?: string;
}

/** The arguments that are not config keys. */
export const CLOUD_COMPONENT_OPTIONS = ["region", "tags", "configNamespace"] as const;

export type CloudArgumentKey = Exclude<keyof RedisCloudDatabaseArgs, (typeof CLOUD_COMPONENT_OPTIONS)[number]>;
// Every argument is a config key of the same name: the compiler refuses a key the table does not have.
const argumentsAreKeys: CloudArgumentKey extends ConfigKey ? true : never = true;
void argumentsAreKeys;
