/**
 * Stack configuration: every key, its default, and its validation, in one place.
 *
 * `parseSettings` is pure: it takes the raw string values Pulumi holds for this project's namespace
 * and returns either a fully typed `Settings` or the complete list of problems, each naming the key,
 * the bad value and the fix. `index.ts` throws on problems before registering any resource, so bad
 * configuration fails at `pulumi preview`.
 */
import { X509Certificate } from "crypto";
import { describeInstanceType, defaultMaxmemoryBytes, Architecture, InstanceTypeInfo } from "./instanceTypes";
import { DEFAULT_METRICS_INTERVAL, METRICS_INTERVALS, MetricsInterval } from "./metrics";
import { REPL_BACKLOG_BYTES } from "./redisConf";
import { MIN_SENTINELS, SENTINEL_DEFAULT_REPLICAS } from "./sentinel";

/** The smallest maxmemory a node may have: 4 replication backlogs (found when a lab node at 16 MB refused writes). */
export const MIN_MAXMEMORY_BYTES = 4 * REPL_BACKLOG_BYTES;

export type Target = "cloud" | "ec2";
/** The EC2 layout: a Redis Cluster (shards), or one primary with replicas and Sentinel (components/sentinel.ts). */
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
export const BACKUP_INTERVAL_HOURS = [1, 2, 4, 6, 12, 24] as const;

/** Bounds for `cluster-node-timeout`: below 1 s a busy fork or GC pause triggers false failovers; above 60 s failover is pointless. */
export const NODE_TIMEOUT_MIN_MS = 1000;
export const NODE_TIMEOUT_MAX_MS = 60000;
/** Chosen from `npm run bench:failover` (see BENCHMARKS.md): p95 write gap under 5 s, no false failovers under load. */
export const DEFAULT_NODE_TIMEOUT_MS = 2000;

/** Where the EC2 alarms fire (components/alarms.ts); each is a config key (README, "Monitoring"). */
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
  /** Seconds between two metric collections on a node; also the alarms' period (components/alarms.ts). */
  metricsIntervalSeconds: MetricsInterval;
  alarms: AlarmThresholds;
}

/**
 * Where Redis Cloud says how to download its CA bundle (`redis_ca.pem`): the provider does not export the
 * CA, so `cloudCaCertificate` carries it. Cited by the config problem and the README.
 */
export const REDIS_CLOUD_CA_DOCS =
  "https://redis.io/docs/latest/operate/rc/security/database-security/tls-ssl/#download-certificates";

/** The peering config keys: all of them or none (a VPC peering between the subscription and the app's VPC). */
export const CLOUD_PEER_KEYS = [
  "cloudPeerVpcId",
  "cloudPeerVpcCidrs",
  "cloudPeerSubnetIds",
  "cloudPeerRouteTableIds",
] as const;

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
  backupPath?: string;
  backupIntervalHours: number;
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
  cloudRegion: "us-east-1",
  cloudMemoryGb: "1",
  cloudThroughputOps: "1000",
  cloudPaymentMethod: "credit-card",
  cloudPaymentMethodId: "(none)",
  cloudPaymentCardLast4: "(none)",
  cloudDeploymentCidr: "10.0.0.0/24",
  cloudMultiAz: "true",
  cloudBackupPath: "(none)",
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

/** Keys held as Pulumi secrets (`pulumi config set --secret`), never as plain config. */
export const SECRET_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(["rediscloudApiKey", "rediscloudSecretKey"]);

export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
    namespace: string,
  ) {
    super(formatProblems(problems, namespace));
    this.name = "ConfigError";
  }
}

export function formatProblems(problems: ConfigProblem[], namespace: string): string {
  const lines = problems.map((p) => {
    const shown = p.value === undefined ? "(not set)" : JSON.stringify(p.value);
    const key = p.key.includes(":") ? p.key : `${namespace}:${p.key}`;
    return `  - ${key} = ${shown}: ${p.problem}\n    fix: ${p.fix}`;
  });
  const n = problems.length;
  return `invalid stack configuration (${n} problem${n === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

/** Parses a Redis memory size: `512mb`, `4gb`, `1073741824` (bytes). Units are powers of 1024 as in redis.conf. */
export function parseMemorySize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|k|m|g)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? "b").toLowerCase();
  const factor: Record<string, number> = { b: 1, k: 1024, kb: 1024, m: MIB, mb: MIB, g: GIB, gb: GIB };
  const bytes = Math.floor(n * (factor[unit] ?? 1));
  return bytes > 0 ? bytes : undefined;
}

export function formatBytes(bytes: number): string {
  if (bytes % GIB === 0) return `${bytes / GIB}gb`;
  if (bytes % MIB === 0) return `${bytes / MIB}mb`;
  return String(bytes);
}

/** IPv4 CIDR check: four octets 0-255 and a prefix 0-32, with no host bits set. */
export function isCidr(text: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return false;
  const addr = octets.reduce((acc, o) => acc * 256 + o, 0);
  const hostBits = 2 ** (32 - prefix);
  return addr % hostBits === 0;
}

/** The first and last address of an IPv4 CIDR block (as 32-bit numbers); the text must pass isCidr. */
function cidrRange(cidr: string): [number, number] {
  const [ip, prefix] = cidr.split("/");
  const start = ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return [start, start + 2 ** (32 - Number(prefix)) - 1];
}

/** Whether two IPv4 CIDR blocks share an address (both must pass isCidr). */
export function cidrsOverlap(a: string, b: string): boolean {
  const [aStart, aEnd] = cidrRange(a);
  const [bStart, bEnd] = cidrRange(b);
  return aStart <= bEnd && bStart <= aEnd;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Why a CA bundle (PEM text, one or more certificates) cannot verify servers, or undefined when it can:
 * it must hold at least one PEM certificate block, every block must be an X.509 certificate, each a CA,
 * and no private key may ride along. Pure (parsing only, no clock: bundles carry retired CAs too).
 */
export function caBundleProblem(text: string): string | undefined {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    return "holds a private key: a CA bundle is public certificates only, and config is no place for a key";
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0)
    return "is not PEM text: it has no -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- block";
  for (const [i, block] of blocks.entries()) {
    const which = `certificate ${i + 1} of ${blocks.length}`;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      return `${which} is not a valid X.509 certificate (was it cut or re-wrapped when copied?)`;
    }
    if (!cert.ca)
      return `${which} (${cert.subject.replace(/\n/g, ", ")}) is not a CA certificate: the bundle must hold the CAs that sign the database's certificate, not a server certificate`;
  }
  return undefined;
}

/** A long value shortened for a problem line (PEM bundles run to kilobytes). */
function abbreviate(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Reads values out of the raw map, collecting problems instead of throwing. */
class Reader {
  readonly problems: ConfigProblem[] = [];
  constructor(private readonly raw: Record<string, string | undefined>) {}

  get(key: ConfigKey): string | undefined {
    const v = this.raw[key];
    return v === undefined || v === "" ? undefined : v;
  }

  fail(key: string, value: string | undefined, problem: string, fix: string): void {
    this.problems.push({ key, value, problem, fix });
  }

  int(key: ConfigKey, dflt: number, min: number, max: number, why: string): number {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.fail(key, v, `must be a whole number from ${min} to ${max} (${why})`, `pulumi config set ${key} ${dflt}`);
      return dflt;
    }
    return n;
  }

  number(key: ConfigKey, dflt: number, isOk: (n: number) => boolean, problem: string, fix: string): number {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || !isOk(n)) {
      this.fail(key, v, problem, fix);
      return dflt;
    }
    return n;
  }

  bool(key: ConfigKey, dflt: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if (v === "true" || v === "false") return v === "true";
    this.fail(key, v, "must be true or false", `pulumi config set ${key} ${dflt}`);
    return dflt;
  }

  oneOf<T extends string>(key: ConfigKey, allowed: readonly T[], dflt: T): T {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.fail(key, v, `must be one of ${allowed.join(", ")}`, `pulumi config set ${key} ${dflt}`);
    return dflt;
  }

  /** A list: a YAML/JSON array in the stack file, or a comma-separated string on the command line. */
  list(key: ConfigKey): string[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (v.trim().startsWith("[")) {
      try {
        const parsed: unknown = JSON.parse(v);
        // An empty list is unset (Pulumi.yaml's default for list keys).
        if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string"))
          return parsed.length === 0 ? undefined : parsed.map((s) => s.trim());
      } catch {
        // fall through to the problem below
      }
      this.fail(key, v, "must be a list of strings", `pulumi config set --path '${key}[0]' <value>`);
      return undefined;
    }
    return v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  }
}

/**
 * Validates raw config (keys without the project namespace, plus `aws:region`) into Settings.
 * Returns every problem at once; Settings only when there are none.
 */
/**
 * `instanceFacts`: what AWS says about the configured instance type (memory and architecture, from
 * `aws.ec2.getInstanceType` at preview). Without it (the local mode and the lab, which have no AWS), the
 * family table in instanceTypes.ts stands in.
 */
export function parseSettings(
  raw: Record<string, string | undefined>,
  instanceFacts?: InstanceTypeInfo,
): {
  settings?: Settings;
  problems: ConfigProblem[];
} {
  const r = new Reader(raw);

  for (const key of Object.keys(raw)) {
    if (key.includes(":") || key in CONFIG_KEYS) continue;
    const guess = closestKey(key);
    r.fail(
      key,
      raw[key],
      "is not a setting of this stack",
      guess
        ? `did you mean '${guess}'? (pulumi config rm ${key}; pulumi config set ${guess} ...)`
        : `pulumi config rm ${key}`,
    );
  }

  const targetRaw = r.get("target");
  let target: Target = "ec2";
  if (targetRaw !== undefined) {
    if (targetRaw === "cloud" || targetRaw === "ec2") target = targetRaw;
    else
      r.fail(
        "target",
        targetRaw,
        "must be 'cloud' (Redis Cloud) or 'ec2' (self-hosted Redis Cluster)",
        "pulumi config set target ec2",
      );
  }

  const persistence = r.oneOf("persistence", PERSISTENCE_MODES, "aof+rdb");
  const maxmemoryPolicy = r.oneOf("maxmemoryPolicy", EVICTION_POLICIES, "allkeys-lru");
  const tls = r.bool("tls", true);

  const allowedCidrs = r.list("allowedCidrs") ?? [];
  for (const cidr of allowedCidrs) {
    if (!isCidr(cidr)) {
      r.fail(
        "allowedCidrs",
        cidr,
        "is not an IPv4 CIDR block like 10.0.0.0/16 (no host bits set)",
        `pulumi config set --path 'allowedCidrs[0]' 10.0.0.0/16`,
      );
    } else if (cidr.endsWith("/0")) {
      r.fail(
        "allowedCidrs",
        cidr,
        "opens Redis to the whole internet",
        "list only the networks your apps run in, e.g. 10.0.0.0/16",
      );
    }
  }

  const alertEmail = r.get("alertEmail");
  if (alertEmail !== undefined && !EMAIL.test(alertEmail)) {
    r.fail("alertEmail", alertEmail, "is not an email address", "pulumi config set alertEmail oncall@example.com");
  }

  const client: ClientSettings = {
    maxRetries: r.int("clientMaxRetries", 10, 0, 1000, "retries per command while a failover completes"),
    connectTimeoutMs: r.int("clientConnectTimeoutMs", 5000, 100, 120000, "milliseconds"),
  };

  const settings: Settings = { target, persistence, maxmemoryPolicy, tls, allowedCidrs, alertEmail, client };
  if (target === "ec2") settings.ec2 = parseEc2(r, raw["aws:region"], instanceFacts);
  else settings.cloud = parseCloud(r, persistence, tls, allowedCidrs, raw["aws:region"]);

  return r.problems.length > 0 ? { problems: r.problems } : { settings, problems: [] };
}

function parseEc2(r: Reader, awsRegion: string | undefined, instanceFacts?: InstanceTypeInfo): Ec2Settings {
  if (awsRegion === undefined || awsRegion === "") {
    r.fail("aws:region", undefined, "the EC2 target needs an AWS region", "pulumi config set aws:region us-east-1");
  }
  const { topology, shards, replicasPerShard } = parseLayout(r);

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

  const { metricsIntervalSeconds, alarms } = parseMonitoring(r);

  return {
    region: awsRegion ?? "",
    topology,
    shards,
    replicasPerShard,
    instanceType,
    architecture: info.architecture,
    memoryBytes: info.memoryBytes,
    maxmemoryBytes,
    nodeTimeoutMs,
    dataVolumeGb,
    vpcId,
    subnetIds,
    vpcCidr,
    ipHostOffset,
    healthTimeoutMinutes,
    nodeGeneration,
    amiId,
    metricsIntervalSeconds,
    alarms,
  };
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
function parseAlarmThresholds(r: Reader): AlarmThresholds {
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

function parseCloud(
  r: Reader,
  persistence: Persistence,
  tls: boolean,
  allowedCidrs: string[],
  awsRegion: string | undefined,
): CloudSettings {
  const region = r.get("cloudRegion") ?? "us-east-1";
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    r.fail("cloudRegion", region, "is not an AWS region name", "pulumi config set cloudRegion us-east-1");
  }
  const memoryGb = r.number(
    "cloudMemoryGb",
    1,
    (n) => n > 0 && n <= 10000,
    "must be a memory size in GB greater than 0",
    "pulumi config set cloudMemoryGb 1",
  );
  const throughputOps = r.int(
    "cloudThroughputOps",
    1000,
    100,
    10000000,
    "operations per second the database is sized for",
  );
  const paymentMethod = r.oneOf("cloudPaymentMethod", ["credit-card", "marketplace"] as const, "credit-card");
  const paymentMethodId = r.get("cloudPaymentMethodId");
  const paymentCardLast4 = r.get("cloudPaymentCardLast4");
  if (paymentMethod === "credit-card" && paymentMethodId === undefined && paymentCardLast4 === undefined) {
    r.fail(
      "cloudPaymentMethodId",
      undefined,
      "Redis Cloud needs a payment method for a credit-card subscription",
      "pulumi config set cloudPaymentCardLast4 <last 4 digits of the card on your Redis Cloud account> (or cloudPaymentMethodId <id>, or cloudPaymentMethod marketplace)",
    );
  }
  if (paymentCardLast4 !== undefined && !/^\d{4}$/.test(paymentCardLast4)) {
    r.fail(
      "cloudPaymentCardLast4",
      paymentCardLast4,
      "must be exactly 4 digits",
      "pulumi config set cloudPaymentCardLast4 1234",
    );
  }
  if (paymentMethodId !== undefined && !/^\d+$/.test(paymentMethodId)) {
    r.fail(
      "cloudPaymentMethodId",
      paymentMethodId,
      "must be the numeric id Redis Cloud shows for the card",
      "copy it from Account settings > Payment methods, or use cloudPaymentCardLast4",
    );
  }
  const deploymentCidr = r.get("cloudDeploymentCidr") ?? "10.0.0.0/24";
  if (!isCidr(deploymentCidr) || !deploymentCidr.endsWith("/24")) {
    r.fail(
      "cloudDeploymentCidr",
      deploymentCidr,
      "must be a /24 CIDR block (Redis Cloud's requirement) that does not overlap your VPCs",
      "pulumi config set cloudDeploymentCidr 10.0.0.0/24",
    );
  }
  const multiAz = r.bool("cloudMultiAz", true);
  const backupPath = r.get("cloudBackupPath");
  if (backupPath !== undefined && !/^(s3|gs):\/\/[a-z0-9][a-z0-9.-]+[a-z0-9](\/.*)?$/.test(backupPath)) {
    r.fail(
      "cloudBackupPath",
      backupPath,
      "must be an s3:// (or gs://) URI",
      "pulumi config set cloudBackupPath s3://my-bucket/redis-backups",
    );
  }
  if ((persistence === "aof+rdb" || persistence === "rdb") && backupPath === undefined) {
    r.fail(
      "cloudBackupPath",
      undefined,
      `persistence '${persistence}' includes periodic RDB backups, which Redis Cloud writes to your storage`,
      "pulumi config set cloudBackupPath s3://my-bucket/redis-backups (or pulumi config set persistence aof)",
    );
  }
  const backupIntervalHours = r.number(
    "cloudBackupIntervalHours",
    6,
    (n) => (BACKUP_INTERVAL_HOURS as readonly number[]).includes(n),
    `must be one of ${BACKUP_INTERVAL_HOURS.join(", ")}`,
    "pulumi config set cloudBackupIntervalHours 6",
  );
  const clusterApi = r.bool("cloudClusterApi", false);
  const caCertificate = parseCloudCa(r, tls);
  const peering = parsePeering(r, { region, deploymentCidr, allowedCidrs, awsRegion });
  if (allowedCidrs.length === 0) {
    r.fail(
      "allowedCidrs",
      undefined,
      "a Redis Cloud database accepts connections from any address unless its source IPs are listed",
      "pulumi config set --path 'allowedCidrs[0]' <your app network, e.g. 203.0.113.0/24>",
    );
  }
  return {
    region,
    memoryGb,
    throughputOps,
    paymentMethod,
    paymentMethodId,
    paymentCardLast4,
    deploymentCidr,
    multiAz,
    backupPath,
    backupIntervalHours,
    clusterApi,
    caCertificate,
    peering,
    alarms: parseAlarmThresholds(r),
  };
}

/**
 * cloudCaCertificate: Redis Cloud's CA bundle, which apps need to verify the database's certificate
 * (REDIS_CA_PEM) and the provider does not export. Required with TLS; checked as PEM whenever set.
 */
function parseCloudCa(r: Reader, tls: boolean): string | undefined {
  const fix = 'pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"';
  const pem = r.get("cloudCaCertificate");
  if (pem === undefined) {
    if (tls)
      r.fail(
        "cloudCaCertificate",
        undefined,
        "TLS is on, and apps verify the database's certificate against Redis Cloud's CA (REDIS_CA_PEM), which the " +
          "rediscloud provider does not export: download the CA bundle (redis_ca.pem) from the Redis Cloud console " +
          `as ${REDIS_CLOUD_CA_DOCS} describes`,
        `${fix} (or pulumi config set tls false)`,
      );
    return undefined;
  }
  const problem = caBundleProblem(pem);
  if (problem !== undefined) {
    r.fail(
      "cloudCaCertificate",
      abbreviate(pem),
      `${problem}; it must be Redis Cloud's CA bundle (redis_ca.pem, ${REDIS_CLOUD_CA_DOCS})`,
      fix,
    );
    return undefined;
  }
  return pem.trim() + "\n";
}

/** How to set each peering key, for the problem that names it missing. */
const PEER_KEY_FIX: Record<(typeof CLOUD_PEER_KEYS)[number], string> = {
  cloudPeerVpcId: "pulumi config set cloudPeerVpcId vpc-0123456789abcdef0 (the VPC your apps run in)",
  cloudPeerVpcCidrs: "pulumi config set --path 'cloudPeerVpcCidrs[0]' 10.60.0.0/16 (that VPC's CIDR block)",
  cloudPeerSubnetIds:
    "pulumi config set --path 'cloudPeerSubnetIds[0]' subnet-0123456789abcdef0 (the subnets your apps run in)",
  cloudPeerRouteTableIds:
    "pulumi config set --path 'cloudPeerRouteTableIds[0]' rtb-0123456789abcdef0 (the route tables of those subnets)",
};

/** /24 blocks offered as a deployment CIDR when the configured one overlaps the peered VPC. */
const SPARE_DEPLOYMENT_CIDRS = ["10.99.0.0/24", "10.254.0.0/24", "172.31.254.0/24", "192.168.254.0/24"];

/**
 * The cloudPeer* keys: all four or none. The peered VPC's CIDRs must not overlap the subscription's
 * deployment CIDR, must be allowed in by allowedCidrs (the database's source-IP list), and the AWS side
 * (accepter, routes) is created in aws:region, which must be the subscription's region.
 */
function parsePeering(
  r: Reader,
  c: { region: string; deploymentCidr: string; allowedCidrs: string[]; awsRegion: string | undefined },
): CloudPeeringSettings | undefined {
  const nonEmpty = (list: string[] | undefined) => (list !== undefined && list.length > 0 ? list : undefined);
  const given = {
    cloudPeerVpcId: r.get("cloudPeerVpcId"),
    cloudPeerVpcCidrs: nonEmpty(r.list("cloudPeerVpcCidrs")),
    cloudPeerSubnetIds: nonEmpty(r.list("cloudPeerSubnetIds")),
    cloudPeerRouteTableIds: nonEmpty(r.list("cloudPeerRouteTableIds")),
  };
  const set = CLOUD_PEER_KEYS.filter((k) => given[k] !== undefined);
  if (set.length === 0) return undefined;
  for (const key of CLOUD_PEER_KEYS.filter((k) => given[k] === undefined)) {
    r.fail(
      key,
      undefined,
      `VPC peering needs ${CLOUD_PEER_KEYS.join(", ")} together, and only ${set.join(", ")} ${set.length === 1 ? "is" : "are"} set`,
      `${PEER_KEY_FIX[key]}; or, for no peering, pulumi config rm ${set.join(" / ")}`,
    );
  }
  const { cloudPeerVpcId: vpcId, cloudPeerVpcCidrs: vpcCidrs } = given;
  const { cloudPeerSubnetIds: subnetIds, cloudPeerRouteTableIds: routeTableIds } = given;
  if (vpcId !== undefined && !/^vpc-[0-9a-f]+$/.test(vpcId))
    r.fail("cloudPeerVpcId", vpcId, "is not a VPC id", PEER_KEY_FIX.cloudPeerVpcId);
  for (const id of subnetIds ?? [])
    if (!/^subnet-[0-9a-f]+$/.test(id))
      r.fail("cloudPeerSubnetIds", id, "is not a subnet id", PEER_KEY_FIX.cloudPeerSubnetIds);
  for (const id of routeTableIds ?? [])
    if (!/^rtb-[0-9a-f]+$/.test(id))
      r.fail("cloudPeerRouteTableIds", id, "is not a route table id", PEER_KEY_FIX.cloudPeerRouteTableIds);
  const deploymentOk = isCidr(c.deploymentCidr);
  for (const cidr of vpcCidrs ?? []) {
    if (!isCidr(cidr)) {
      r.fail(
        "cloudPeerVpcCidrs",
        cidr,
        "is not an IPv4 CIDR block like 10.60.0.0/16 (no host bits set)",
        PEER_KEY_FIX.cloudPeerVpcCidrs,
      );
      continue;
    }
    if (deploymentOk && cidrsOverlap(cidr, c.deploymentCidr)) {
      const spare = SPARE_DEPLOYMENT_CIDRS.find((s) =>
        (vpcCidrs ?? []).every((v) => !isCidr(v) || !cidrsOverlap(s, v)),
      );
      r.fail(
        "cloudPeerVpcCidrs",
        cidr,
        `overlaps cloudDeploymentCidr ${c.deploymentCidr}, the CIDR of Redis Cloud's VPC: peered networks must not ` +
          "overlap (AWS refuses to peer overlapping VPCs, and the routes would be ambiguous)",
        `choose a cloudDeploymentCidr outside your VPC before the subscription exists, e.g. pulumi config set ` +
          `cloudDeploymentCidr ${spare ?? "<a /24 outside your VPC>"} (changing it later replaces the subscription and its data)`,
      );
    }
  }
  // The database's source-IP list applies to peered apps too: at least part of the VPC must be in it
  // (listing only the apps' subnets is a deliberate narrowing, so one overlap is enough).
  const peerCidrs = (vpcCidrs ?? []).filter(isCidr);
  const allowed = c.allowedCidrs.filter(isCidr);
  if (allowed.length > 0 && peerCidrs.length > 0 && !peerCidrs.some((p) => allowed.some((a) => cidrsOverlap(a, p)))) {
    r.fail(
      "allowedCidrs",
      c.allowedCidrs.join(","),
      `lets none of the peered VPC (${peerCidrs.join(", ")}) in: the database accepts only the source IPs listed here, peered apps included`,
      `pulumi config set --path 'allowedCidrs[${c.allowedCidrs.length}]' ${peerCidrs[0]}`,
    );
  }
  if (c.awsRegion !== c.region) {
    r.fail(
      "aws:region",
      c.awsRegion,
      `peering creates its AWS side (the accepter and the routes) in aws:region, and the peered VPC must be in the subscription's region (cloudRegion ${c.region})`,
      `pulumi config set aws:region ${c.region}`,
    );
  }
  if (vpcId === undefined || vpcCidrs === undefined || subnetIds === undefined || routeTableIds === undefined)
    return undefined;
  return { vpcId, vpcCidrs, subnetIds, routeTableIds };
}

/** Suggests the closest known key for a typo (edit distance <= 3). */
function closestKey(key: string): string | undefined {
  let best: { key: string; d: number } | undefined;
  for (const k of Object.keys(CONFIG_KEYS)) {
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
