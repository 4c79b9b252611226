/**
 * Every key this project reads from its stack config: the documented default (the README's table), how
 * Pulumi.yaml declares it, and which keys are secrets. The library's component arguments carry the same
 * names (components/ec2/args.ts, components/cloud/args.ts).
 */
import {
  DEFAULT_ALARM_THRESHOLDS,
  DEFAULT_BACKUP_INTERVAL_HOURS,
  DEFAULT_BACKUP_RETENTION_DAYS,
  DEFAULT_INSTANCE_TYPE,
  DEFAULT_NODE_TIMEOUT_MS,
} from "./settings";
import { DEFAULT_METRICS_INTERVAL } from "../monitoring/metrics";

/** Every key this project reads, with its default (as documented in the README table). */
export const CONFIG_KEYS = {
  target: "ec2",
  persistence: "aof+rdb",
  maxmemoryPolicy: "allkeys-lru",
  tls: "true",
  allowedCidrs: "[]",
  alertEmail: "(none)",
  clientMaxRetries: "10",
  clientConnectTimeoutMs: "5000",
  topology: "cluster",
  shards: "3 (cluster), 1 (sentinel)",
  replicasPerShard: "1 (cluster), 2 (sentinel)",
  instanceType: DEFAULT_INSTANCE_TYPE,
  maxmemory: "65% of the instance's RAM",
  nodeTimeoutMs: String(DEFAULT_NODE_TIMEOUT_MS),
  healthTimeoutMinutes: "20",
  nodeGeneration: "0",
  amiId: "(newest Debian 12 at creation)",
  dataVolumeGb: "3 x maxmemory, at least 20",
  vpcId: "(create a VPC)",
  subnetIds: "(create 3 private subnets)",
  vpcCidr: "10.40.0.0/16",
  ipHostOffset: "10",
  metricsIntervalSeconds: String(DEFAULT_METRICS_INTERVAL),
  alarmMemoryPercent: String(DEFAULT_ALARM_THRESHOLDS.memoryPercent),
  alarmLatencyP99Ms: String(DEFAULT_ALARM_THRESHOLDS.latencyP99Ms),
  alarmDiskPercent: String(DEFAULT_ALARM_THRESHOLDS.diskPercent),
  alarmEvictionsPerSecond: String(DEFAULT_ALARM_THRESHOLDS.evictionsPerSecond),
  backupIntervalHours: String(DEFAULT_BACKUP_INTERVAL_HOURS),
  backupRetentionDays: String(DEFAULT_BACKUP_RETENTION_DAYS),
  restoreFrom: "(none)",
  appAclGrants: "(none)",
  cloudRegion: "us-east-1",
  cloudMemoryGb: "1",
  cloudThroughputOps: "1000",
  cloudPaymentMethod: "credit-card",
  cloudPaymentMethodId: "(none)",
  cloudPaymentCardLast4: "(none)",
  cloudDeploymentCidr: "10.0.0.0/24",
  cloudMultiAz: "true",
  cloudBackupPath: "(a bucket the stack creates)",
  cloudBackupIntervalHours: "6",
  cloudClusterApi: "false",
  cloudCaCertificate: "(none; required with tls)",
  cloudPeerVpcId: "(none: no peering)",
  cloudPeerVpcCidrs: "(none)",
  cloudPeerSubnetIds: "(none)",
  cloudPeerRouteTableIds: "(none)",
  rediscloudApiKey: "(env REDISCLOUD_ACCESS_KEY)",
  rediscloudSecretKey: "(env REDISCLOUD_SECRET_KEY)",
} as const;
export type ConfigKey = keyof typeof CONFIG_KEYS;

/** How each key is declared in Pulumi.yaml's `config:` block (the CLI checks stack values against it). */
export type PulumiConfigType = "string" | "integer" | "boolean" | "array";

export const CONFIG_TYPES: Record<ConfigKey, PulumiConfigType> = {
  target: "string",
  persistence: "string",
  maxmemoryPolicy: "string",
  tls: "boolean",
  allowedCidrs: "array",
  alertEmail: "string",
  clientMaxRetries: "integer",
  clientConnectTimeoutMs: "integer",
  topology: "string",
  // Strings: their defaults depend on the topology, and a declared key needs a literal default ("").
  shards: "string",
  replicasPerShard: "string",
  instanceType: "string",
  maxmemory: "string",
  nodeTimeoutMs: "integer",
  healthTimeoutMinutes: "integer",
  nodeGeneration: "integer",
  amiId: "string",
  // A string: its default is derived (3 x maxmemory), and a declared key needs a literal default ("").
  dataVolumeGb: "string",
  vpcId: "string",
  subnetIds: "array",
  vpcCidr: "string",
  ipHostOffset: "integer",
  metricsIntervalSeconds: "integer",
  alarmMemoryPercent: "integer",
  // Strings, like cloudMemoryGb: fractions are meaningful (2.5 ms, 0.2 evictions/s).
  alarmLatencyP99Ms: "string",
  alarmDiskPercent: "integer",
  alarmEvictionsPerSecond: "string",
  backupIntervalHours: "integer",
  backupRetentionDays: "integer",
  restoreFrom: "string",
  appAclGrants: "string",
  cloudRegion: "string",
  // A string: the memory limit may be fractional (0.5), and Pulumi's config types have no number.
  cloudMemoryGb: "string",
  cloudThroughputOps: "integer",
  cloudPaymentMethod: "string",
  cloudPaymentMethodId: "string",
  cloudPaymentCardLast4: "string",
  cloudDeploymentCidr: "string",
  cloudMultiAz: "boolean",
  cloudBackupPath: "string",
  cloudBackupIntervalHours: "integer",
  cloudClusterApi: "boolean",
  // PEM text (a public certificate, not a secret): pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"
  cloudCaCertificate: "string",
  cloudPeerVpcId: "string",
  cloudPeerVpcCidrs: "array",
  cloudPeerSubnetIds: "array",
  cloudPeerRouteTableIds: "array",
  rediscloudApiKey: "string",
  rediscloudSecretKey: "string",
};

/**
 * The `default:` each key has in Pulumi.yaml. The CLI refuses to run a stack that lacks a value for a
 * declared key with no default ("Stack 'prod' is missing configuration values ...": pulumi's
 * ValidateStackConfigAndApplyProjectConfig), so every key gets one: the literal default where CONFIG_KEYS
 * has one, and "" or [] (read as unset) where the default is derived or absent.
 */
export function projectDefault(key: ConfigKey): string | number | boolean | string[] {
  const documented: string = CONFIG_KEYS[key];
  switch (CONFIG_TYPES[key]) {
    case "array":
      return [];
    case "integer":
      return Number(documented);
    case "boolean":
      return documented === "true";
    case "string":
      return /^[\w.+:/-]+$/.test(documented) ? documented : "";
  }
}

/**
 * Where each key applies: `stack` keys choose and reach a target (read by the program, not by a component);
 * the others are arguments of the EC2 component, the Redis Cloud component, or both, with the same names.
 */
export type KeyScope = "stack" | "ec2" | "cloud" | "both";

export const KEY_SCOPES: Record<ConfigKey, KeyScope> = {
  target: "stack",
  persistence: "both",
  maxmemoryPolicy: "both",
  tls: "both",
  allowedCidrs: "both",
  alertEmail: "ec2",
  clientMaxRetries: "both",
  clientConnectTimeoutMs: "both",
  topology: "ec2",
  shards: "ec2",
  replicasPerShard: "ec2",
  instanceType: "ec2",
  maxmemory: "ec2",
  nodeTimeoutMs: "ec2",
  healthTimeoutMinutes: "ec2",
  nodeGeneration: "ec2",
  amiId: "ec2",
  dataVolumeGb: "ec2",
  vpcId: "ec2",
  subnetIds: "ec2",
  vpcCidr: "ec2",
  ipHostOffset: "ec2",
  metricsIntervalSeconds: "ec2",
  alarmMemoryPercent: "both",
  alarmLatencyP99Ms: "both",
  alarmDiskPercent: "ec2",
  alarmEvictionsPerSecond: "ec2",
  backupIntervalHours: "ec2",
  backupRetentionDays: "both",
  restoreFrom: "ec2",
  appAclGrants: "ec2",
  cloudRegion: "cloud",
  cloudMemoryGb: "cloud",
  cloudThroughputOps: "cloud",
  cloudPaymentMethod: "cloud",
  cloudPaymentMethodId: "cloud",
  cloudPaymentCardLast4: "cloud",
  cloudDeploymentCidr: "cloud",
  cloudMultiAz: "cloud",
  cloudBackupPath: "cloud",
  cloudBackupIntervalHours: "cloud",
  cloudClusterApi: "cloud",
  cloudCaCertificate: "cloud",
  cloudPeerVpcId: "cloud",
  cloudPeerVpcCidrs: "cloud",
  cloudPeerSubnetIds: "cloud",
  cloudPeerRouteTableIds: "cloud",
  rediscloudApiKey: "stack",
  rediscloudSecretKey: "stack",
};

/** The keys a target's component takes as arguments, in the table's order. */
export function targetKeys(target: "ec2" | "cloud"): ConfigKey[] {
  return (Object.keys(CONFIG_KEYS) as ConfigKey[]).filter((k) => KEY_SCOPES[k] === target || KEY_SCOPES[k] === "both");
}

/** Keys held as Pulumi secrets (`pulumi config set --secret`), never as plain config. */
export const SECRET_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(["rediscloudApiKey", "rediscloudSecretKey"]);

/** Suggests the closest known key for a typo (edit distance <= 3). */
export function closestKey(key: string): string | undefined {
  return closestOf(key, Object.keys(CONFIG_KEYS));
}

/** The name among `names` closest to a typo (edit distance <= 3). */
export function closestOf(key: string, names: readonly string[]): string | undefined {
  let best: { key: string; d: number } | undefined;
  for (const k of names) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d <= 3 && (best === undefined || d < best.d)) best = { key: k, d };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}
