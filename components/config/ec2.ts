/**
 * The EC2 target's keys: layout (topology, shards, replicas), instance and memory, timeouts, volume, network,
 * node image, monitoring, backups and the app user's grants.
 */
import type { InstanceTypeInfo } from "../ec2/instanceTypes";
import { defaultMaxmemoryBytes, describeInstanceType } from "../ec2/instanceTypes";
import { REPL_BACKLOG_BYTES } from "../ec2/node/redisConf";
import { MIN_SENTINELS, SENTINEL_DEFAULT_REPLICAS } from "../ec2/sentinel";
import { DEFAULT_METRICS_INTERVAL, METRICS_INTERVALS, MetricsInterval } from "../monitoring/metrics";
import { parseRestoreFrom } from "../ec2/backups";
import { appAclGrantProblem, parseAppAclGrants } from "../ec2/node/appAcl";
import { Reader } from "./reader";
import {
  AlarmThresholds,
  BACKUP_INTERVAL_MAX_HOURS,
  BACKUP_RETENTION_MAX_DAYS,
  DEFAULT_ALARM_THRESHOLDS,
  DEFAULT_BACKUP_INTERVAL_HOURS,
  DEFAULT_BACKUP_RETENTION_DAYS,
  DEFAULT_INSTANCE_TYPE,
  DEFAULT_NODE_TIMEOUT_MS,
  Ec2Settings,
  INSTANCE_TYPE_PATTERN,
  MAX_CLUSTER_NODES,
  NODE_TIMEOUT_MAX_MS,
  NODE_TIMEOUT_MIN_MS,
  TOPOLOGIES,
} from "./settings";
import { formatBytes, GIB, isCidr, parseMemorySize } from "./values";

/** The smallest maxmemory a node may have: 4 replication backlogs (found when a lab node at 16 MB refused writes). */
export const MIN_MAXMEMORY_BYTES = 4 * REPL_BACKLOG_BYTES;

/** The EC2 target's settings, step by step; every problem lands in `r`. */
export function parseEc2(r: Reader, awsRegion: string | undefined, instanceFacts?: InstanceTypeInfo): Ec2Settings {
  if (awsRegion === undefined || awsRegion === "") {
    r.fail("aws:region", undefined, "the EC2 target needs an AWS region", "pulumi config set aws:region us-east-1");
  }
  const layout = parseLayout(r);
  const instance = parseInstance(r, instanceFacts);
  const timeouts = parseTimeouts(r);
  const dataVolumeGb = parseDataVolume(r, instance.maxmemoryBytes);
  const network = parseNetwork(r);
  const image = parseNodeImage(r);
  const { metricsIntervalSeconds, alarms } = parseMonitoring(r);
  const backups = parseBackups(r);
  const appAclGrants = parseAppAcl(r);
  return {
    region: awsRegion ?? "",
    ...layout,
    ...instance,
    ...timeouts,
    dataVolumeGb,
    ...network,
    ...image,
    metricsIntervalSeconds,
    alarms,
    ...backups,
    appAclGrants,
  };
}

/**
 * instanceType and maxmemory: the type's RAM (from AWS, or the family table) gives maxmemory's default and
 * its ceiling; the replication backlog its floor.
 */
function parseInstance(
  r: Reader,
  instanceFacts: InstanceTypeInfo | undefined,
): Pick<Ec2Settings, "instanceType" | "architecture" | "memoryBytes" | "maxmemoryBytes"> {
  const instanceType = r.get("instanceType") ?? DEFAULT_INSTANCE_TYPE;
  if (!INSTANCE_TYPE_PATTERN.test(instanceType)) {
    r.fail("instanceType", instanceType, "is not an EC2 instance type", "pulumi config set instanceType r7g.large");
  }
  const info = instanceFacts ?? describeInstanceType(instanceType);

  const mmRaw = r.get("maxmemory");
  let maxmemoryBytes = info.memoryBytes !== undefined ? defaultMaxmemoryBytes(info.memoryBytes) : 0;
  if (mmRaw !== undefined) {
    const parsed = parseMemorySize(mmRaw);
    if (parsed === undefined) {
      r.fail(
        "maxmemory",
        mmRaw,
        "is not a memory size",
        "use a size with a unit, e.g. pulumi config set maxmemory 10gb",
      );
    } else if (parsed < MIN_MAXMEMORY_BYTES) {
      r.fail(
        "maxmemory",
        mmRaw,
        `is below ${formatBytes(MIN_MAXMEMORY_BYTES)}: the ${formatBytes(REPL_BACKLOG_BYTES)} replication backlog counts against ` +
          "maxmemory, and a node whose backlog fills it has nothing left to evict and refuses writes",
        `pulumi config set maxmemory ${formatBytes(MIN_MAXMEMORY_BYTES)} (or more)`,
      );
    } else if (info.memoryBytes !== undefined && parsed > info.memoryBytes) {
      r.fail(
        "maxmemory",
        mmRaw,
        `is larger than the RAM of ${instanceType} (${formatBytes(info.memoryBytes)})`,
        `leave it unset for the safe default (${formatBytes(defaultMaxmemoryBytes(info.memoryBytes))}, 65% of RAM) or choose a larger instanceType`,
      );
    } else {
      maxmemoryBytes = parsed;
    }
  } else if (info.memoryBytes === undefined) {
    r.fail(
      "maxmemory",
      undefined,
      `the stack cannot tell how much RAM ${instanceType} has, so it cannot derive a safe maxmemory`,
      "set it explicitly to about 65% of the instance's RAM, e.g. pulumi config set maxmemory 10gb",
    );
  }

  return { instanceType, architecture: info.architecture, memoryBytes: info.memoryBytes, maxmemoryBytes };
}

/** nodeTimeoutMs (failure detection) and healthTimeoutMinutes (how long `pulumi up` waits). */
function parseTimeouts(r: Reader): Pick<Ec2Settings, "nodeTimeoutMs" | "healthTimeoutMinutes"> {
  const nodeTimeoutMs = r.int(
    "nodeTimeoutMs",
    DEFAULT_NODE_TIMEOUT_MS,
    NODE_TIMEOUT_MIN_MS,
    NODE_TIMEOUT_MAX_MS,
    "failover takes about this long plus 1-2 s; lower risks false failovers",
  );

  const healthTimeoutMinutes = r.int(
    "healthTimeoutMinutes",
    20,
    0,
    240,
    "minutes pulumi up waits for every node to report healthy (0: do not wait)",
  );

  return { nodeTimeoutMs, healthTimeoutMinutes };
}

/** dataVolumeGb: room for AOF rewrites and RDB snapshots, 3 x maxmemory by default. */
function parseDataVolume(r: Reader, maxmemoryBytes: number): number {
  const defaultVolumeGb = Math.max(20, Math.ceil((3 * maxmemoryBytes) / GIB));
  const dataVolumeGb = r.int(
    "dataVolumeGb",
    defaultVolumeGb,
    1,
    16384,
    "AOF rewrites and RDB snapshots need about 3 x maxmemory",
  );
  if (maxmemoryBytes > 0 && dataVolumeGb * GIB < 2 * maxmemoryBytes) {
    r.fail(
      "dataVolumeGb",
      String(dataVolumeGb),
      `is smaller than twice maxmemory (${formatBytes(maxmemoryBytes)}): an AOF rewrite could fill the disk`,
      `pulumi config set dataVolumeGb ${defaultVolumeGb}`,
    );
  }

  return dataVolumeGb;
}

/** vpcId and subnetIds (an existing network, together or not at all), vpcCidr, ipHostOffset. */
function parseNetwork(r: Reader): Pick<Ec2Settings, "vpcId" | "subnetIds" | "vpcCidr" | "ipHostOffset"> {
  const vpcId = r.get("vpcId");
  const subnetIds = r.list("subnetIds");
  if (vpcId !== undefined && !/^vpc-[0-9a-f]+$/.test(vpcId)) {
    r.fail(
      "vpcId",
      vpcId,
      "is not a VPC id",
      "use the id of an existing VPC, like vpc-0123456789abcdef0, or unset it to create one",
    );
  }
  if ((vpcId === undefined) !== (subnetIds === undefined)) {
    r.fail(
      vpcId === undefined ? "vpcId" : "subnetIds",
      undefined,
      "vpcId and subnetIds go together",
      "set both (an existing VPC and its private subnets) or neither (the stack creates them)",
    );
  }
  if (subnetIds !== undefined) {
    if (subnetIds.length < 2) {
      r.fail(
        "subnetIds",
        subnetIds.join(","),
        `needs at least 2 private subnets in different availability zones (got ${subnetIds.length})`,
        "list one private subnet per AZ, 3 AZs recommended",
      );
    }
    for (const id of subnetIds) {
      if (!/^subnet-[0-9a-f]+$/.test(id))
        r.fail("subnetIds", id, "is not a subnet id", "use ids like subnet-0123456789abcdef0");
    }
  }
  const vpcCidr = r.get("vpcCidr") ?? "10.40.0.0/16";
  if (!isCidr(vpcCidr) || Number(vpcCidr.split("/")[1]) > 20) {
    r.fail(
      "vpcCidr",
      vpcCidr,
      "must be an IPv4 CIDR of /20 or larger (it is cut into 6 subnets)",
      "pulumi config set vpcCidr 10.40.0.0/16",
    );
  }
  const ipHostOffset = r.int("ipHostOffset", 10, 4, 200, "AWS reserves the first 4 addresses of a subnet");
  return { vpcId, subnetIds, vpcCidr, ipHostOffset };
}

/** nodeGeneration (a rolling restart) and amiId (a pinned image). */
function parseNodeImage(r: Reader): Pick<Ec2Settings, "nodeGeneration" | "amiId"> {
  const nodeGeneration = r.int(
    "nodeGeneration",
    0,
    0,
    1000000,
    "bump it by one to restart every node, one at a time (Redis package upgrade, TLS material re-read)",
  );
  const amiId = r.get("amiId");
  if (amiId !== undefined && !/^ami-[0-9a-f]{8,17}$/.test(amiId)) {
    r.fail(
      "amiId",
      amiId,
      "is not an AMI id",
      "use an id like ami-0123456789abcdef0 (a Debian 12 AMI of the instance type's architecture), or unset it",
    );
  }

  return { nodeGeneration, amiId };
}

/**
 * topology, shards and replicasPerShard. Their defaults follow the topology: a cluster of 3 masters with a
 * replica each, or one primary with 2 replicas (3 nodes, 3 Sentinels).
 */
function parseLayout(r: Reader): Pick<Ec2Settings, "topology" | "shards" | "replicasPerShard"> {
  const topology = r.oneOf("topology", TOPOLOGIES, "cluster");
  if (topology === "cluster") {
    const shards = r.int("shards", 3, 3, 500, "Redis Cluster needs at least 3 masters to hold a failover majority");
    const replicasPerShard = r.int(
      "replicasPerShard",
      1,
      1,
      5,
      "at least one replica per master, or there is nothing to fail over to",
    );
    const nodes = shards * (1 + replicasPerShard);
    if (nodes > MAX_CLUSTER_NODES)
      r.fail(
        "shards",
        String(shards),
        `${shards} shards x (1 + ${replicasPerShard} replicas) is ${nodes} nodes, over ${MAX_CLUSTER_NODES}: every node's EC2 user-data carries the whole cluster plan, and EC2 takes at most 16 KiB of it`,
        `pulumi config set shards ${Math.floor(MAX_CLUSTER_NODES / (1 + replicasPerShard))}`,
      );
    return { topology, shards, replicasPerShard };
  }
  const shardsRaw = r.get("shards");
  if (shardsRaw !== undefined && shardsRaw !== "1")
    r.fail(
      "shards",
      shardsRaw,
      "the Sentinel topology runs one primary and its replicas: it does not shard the data",
      "pulumi config rm shards (or pulumi config set topology cluster to spread the data over shards)",
    );
  const replicasRaw = r.get("replicasPerShard");
  const replicas = replicasRaw === undefined ? SENTINEL_DEFAULT_REPLICAS : Number(replicasRaw);
  if (!Number.isInteger(replicas) || replicas < MIN_SENTINELS - 1 || replicas > 5) {
    r.fail(
      "replicasPerShard",
      replicasRaw,
      `the Sentinel topology runs a Sentinel on every node, and needs at least ${MIN_SENTINELS} of them (2 replicas) so that a majority can tell a dead primary from a partition; at most 5 replicas`,
      `pulumi config set replicasPerShard ${SENTINEL_DEFAULT_REPLICAS}`,
    );
    return { topology, shards: 1, replicasPerShard: SENTINEL_DEFAULT_REPLICAS };
  }
  return { topology, shards: 1, replicasPerShard: replicas };
}

/** backupRetentionDays: the backup bucket's lifecycle (EC2's bucket, or the one created for Redis Cloud). */
export function parseBackupRetentionDays(r: Reader): number {
  return r.int(
    "backupRetentionDays",
    DEFAULT_BACKUP_RETENTION_DAYS,
    1,
    BACKUP_RETENTION_MAX_DAYS,
    "days the bucket keeps a backup before expiring it",
  );
}

/** backupIntervalHours (0: no scheduled backups) and backupRetentionDays (the bucket's lifecycle). */
function parseBackups(r: Reader): Pick<Ec2Settings, "backupIntervalHours" | "backupRetentionDays" | "restoreFrom"> {
  const backupIntervalHours = r.int(
    "backupIntervalHours",
    DEFAULT_BACKUP_INTERVAL_HOURS,
    0,
    BACKUP_INTERVAL_MAX_HOURS,
    "hours between scheduled backups to the stack's S3 bucket, at most a week; 0 turns them off",
  );
  const backupRetentionDays = parseBackupRetentionDays(r);
  const restoreFrom = r.get("restoreFrom");
  if (restoreFrom !== undefined && !parseRestoreFrom(restoreFrom)) {
    r.fail(
      "restoreFrom",
      restoreFrom,
      "must be the S3 URI of a backup's manifest, as `node.sh backup` prints it",
      "pulumi config set restoreFrom s3://<bucket>/<project>/<stack>/backups/<id>/manifest.json (aws s3 ls s3://<bucket>/<project>/<stack>/backups/ lists them)",
    );
  }
  return { backupIntervalHours, backupRetentionDays, restoreFrom };
}

/** appAclGrants: command rules added to the app user's default, each one a rule Redis 7.0 knows. */
function parseAppAcl(r: Reader): string[] {
  const text = r.get("appAclGrants");
  if (text === undefined) return [];
  const grants = parseAppAclGrants(text);
  for (const rule of grants) {
    const problem = appAclGrantProblem(rule);
    if (problem !== undefined) {
      r.fail(
        "appAclGrants",
        text,
        problem,
        'pulumi config set appAclGrants "+flushdb +keys" (rules separated by spaces; see docs/security.md)',
      );
      break;
    }
  }
  return grants;
}

function isMetricsInterval(n: number): n is MetricsInterval {
  return (METRICS_INTERVALS as readonly number[]).includes(n);
}

/** The metrics' collection period and the alarms' thresholds (EC2). */
function parseMonitoring(r: Reader): { metricsIntervalSeconds: MetricsInterval; alarms: AlarmThresholds } {
  const interval = r.number(
    "metricsIntervalSeconds",
    DEFAULT_METRICS_INTERVAL,
    isMetricsInterval,
    `must be one of ${METRICS_INTERVALS.join(", ")}: CloudWatch alarms evaluate periods of 10 s, 30 s or whole minutes (below 60 s the metrics and alarms are high resolution, billed higher)`,
    `pulumi config set metricsIntervalSeconds ${DEFAULT_METRICS_INTERVAL}`,
  );
  return {
    metricsIntervalSeconds: isMetricsInterval(interval) ? interval : DEFAULT_METRICS_INTERVAL,
    alarms: parseAlarmThresholds(r),
  };
}

/** The alarms' thresholds: the EC2 alarms use all of them, Redis Cloud's alerts memory and latency. */
export function parseAlarmThresholds(r: Reader): AlarmThresholds {
  const d = DEFAULT_ALARM_THRESHOLDS;
  return {
    memoryPercent: r.int(
      "alarmMemoryPercent",
      d.memoryPercent,
      1,
      100,
      "percent of maxmemory a node may use before the memory alarm fires",
    ),
    latencyP99Ms: r.number(
      "alarmLatencyP99Ms",
      d.latencyP99Ms,
      (n) => n > 0,
      "must be a number of milliseconds greater than 0 (the p99 command latency above which the latency alarm fires)",
      `pulumi config set alarmLatencyP99Ms ${d.latencyP99Ms}`,
    ),
    diskPercent: r.int(
      "alarmDiskPercent",
      d.diskPercent,
      1,
      100,
      "percent of a node's data volume used before the disk alarm fires",
    ),
    evictionsPerSecond: r.number(
      "alarmEvictionsPerSecond",
      d.evictionsPerSecond,
      (n) => n >= 0,
      "must be a number of evictions per second, 0 or more (the sustained rate above which the evictions alarm fires)",
      `pulumi config set alarmEvictionsPerSecond ${d.evictionsPerSecond}`,
    ),
  };
}
