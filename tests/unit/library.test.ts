/**
 * The components as a library, under Pulumi mocks: `new RedisEc2Cluster("c")` works with no arguments,
 * every argument is a config key of the same name (and every key of the target is an argument), bad
 * arguments fail with the rules and messages of `pulumi preview` but name the argument and the fix as code,
 * and a cluster finds its last deployment among the stack's outputs however the program exported it.
 */
import { RedisEc2Cluster } from "../../components/ec2/cluster";
import { RedisCloudDatabase } from "../../components/cloud/database";
import { EC2_COMPONENT_OPTIONS, RedisEc2ClusterArgs } from "../../components/ec2/args";
import { CLOUD_COMPONENT_OPTIONS, RedisCloudDatabaseArgs } from "../../components/cloud/args";
import { CONFIG_KEYS, ConfigKey, targetKeys } from "../../components/config/keys";
import { argumentFix } from "../../components/config/problems";
import { parseSettings } from "../../components/config/parse";
import { findDeployment } from "../../components/ec2/resolve";
import { DeployedShape } from "../../components/ec2/day2";
import { stackConfig } from "../../lab/stackFiles";
import { byType, runProgram, valueOf } from "./support/stackHarness";

const CLOUD_CA = stackConfig("dev")["redis-stack:cloudCaCertificate"];

/** Every argument of each component, set: the compiler makes this list complete (`Required<...>`). */
const ALL_EC2: Required<RedisEc2ClusterArgs> = {
  topology: "cluster",
  shards: 3,
  replicasPerShard: 1,
  instanceType: "r7g.large",
  maxmemory: "8gb",
  maxmemoryPolicy: "allkeys-lru",
  persistence: "aof+rdb",
  tls: true,
  nodeTimeoutMs: 2000,
  healthTimeoutMinutes: 20,
  nodeGeneration: 0,
  amiId: "ami-0123456789abcdef0",
  dataVolumeGb: 40,
  vpcId: "vpc-0123456789abcdef0",
  subnetIds: ["subnet-0a", "subnet-0b"],
  vpcCidr: "10.40.0.0/16",
  ipHostOffset: 10,
  allowedCidrs: ["10.0.0.0/16"],
  alertEmail: "oncall@example.com",
  metricsIntervalSeconds: 60,
  alarmMemoryPercent: 90,
  alarmLatencyP99Ms: 10,
  alarmDiskPercent: 80,
  alarmEvictionsPerSecond: 1,
  backupIntervalHours: 6,
  backupRetentionDays: 7,
  restoreFrom: "s3://other-backups/shop/old/backups/20261205T060000Z/manifest.json",
  appAclGrants: "+flushdb",
  clientMaxRetries: 10,
  clientConnectTimeoutMs: 5000,
  region: "us-east-1",
  tags: {},
  configNamespace: "redis-stack",
  healthReader: async () => ({}),
};
const ALL_CLOUD: Required<RedisCloudDatabaseArgs> = {
  persistence: "aof+rdb",
  maxmemoryPolicy: "allkeys-lru",
  tls: true,
  allowedCidrs: ["10.0.0.0/16"],
  clientMaxRetries: 10,
  clientConnectTimeoutMs: 5000,
  alarmMemoryPercent: 90,
  alarmLatencyP99Ms: 10,
  cloudRegion: "us-east-1",
  cloudMemoryGb: 1,
  cloudThroughputOps: 1000,
  cloudPaymentMethod: "credit-card",
  cloudPaymentMethodId: "123",
  cloudPaymentCardLast4: "1234",
  cloudDeploymentCidr: "10.0.0.0/24",
  cloudMultiAz: true,
  cloudBackupPath: "s3://b/p",
  backupRetentionDays: 7,
  cloudBackupIntervalHours: 6,
  cloudClusterApi: false,
  cloudCaCertificate: CLOUD_CA,
  cloudPeerVpcId: "vpc-0a",
  cloudPeerVpcCidrs: ["10.60.0.0/16"],
  cloudPeerSubnetIds: ["subnet-0a"],
  cloudPeerRouteTableIds: ["rtb-0a"],
  region: "us-east-1",
  tags: {},
  configNamespace: "redis-stack",
};

test("each component's arguments are exactly its target's config keys, plus how it runs", () => {
  const keysOf = (args: object, options: readonly string[]) =>
    Object.keys(args)
      .filter((k) => !options.includes(k))
      .sort();
  expect(keysOf(ALL_EC2, EC2_COMPONENT_OPTIONS)).toEqual([...targetKeys("ec2")].sort());
  expect(keysOf(ALL_CLOUD, CLOUD_COMPONENT_OPTIONS)).toEqual(
    // The EC2-only alarm thresholds mean nothing to Redis Cloud's alerts.
    [...targetKeys("cloud")].sort(),
  );
  for (const k of [...targetKeys("ec2"), ...targetKeys("cloud")]) expect(CONFIG_KEYS).toHaveProperty(k);
});

const run = <T>(program: () => Promise<T> | T, config: Record<string, string> = {}) =>
  runProgram(program, { project: "shop", stack: "dev", config });

test('new RedisEc2Cluster("cache") with no arguments builds the default cluster in the provider\'s region', async () => {
  const r = await run(async () => {
    const cache = new RedisEc2Cluster("cache");
    await cache.ready;
    return cache.outputs;
  });
  expect(r.error).toBeUndefined();
  expect(byType(r.resources, "aws:ec2/instance:Instance")).toHaveLength(6);
  expect(r.calls).toContain("aws:index/getRegion:getRegion");
  const o = r.outputs;
  if (!o) throw new Error("no outputs");
  expect(await valueOf(o.clusterMode)).toBe(true);
  expect(await valueOf(o.nodes)).toHaveLength(6);
  // Names outside Pulumi carry the component's name, so two clusters in one stack never share one.
  const params = byType(r.resources, "aws:ssm/parameter:Parameter").map((p) => String(p.inputs.name));
  expect(params).toContain("/shop/dev-cache/app-password");
  expect(params.every((n) => n.startsWith("/shop/dev-cache/"))).toBe(true);
  // Its backups too: a bucket of its own, with the same scope as prefix.
  expect(await valueOf(o.backupPrefix)).toBe("shop/dev-cache");
  expect(await valueOf(o.backupBucket)).toMatch(/^cache-backups-[0-9a-f]{7}$/);
  // Its last deployment is read through a stack reference of its own, under the component.
  const ref = byType(r.resources, "pulumi:pulumi:StackReference");
  expect(ref.map((x) => x.urn)).toEqual([
    "urn:pulumi:dev::shop::redis-stack:ec2:RedisCluster$pulumi:pulumi:StackReference::cache-deployed",
  ]);
  expect((await valueOf(o.deployment)).component).toBe("cache");
});

test("bad arguments fail before any cloud resource, each naming the argument and the fix as code", async () => {
  const r = await run(async () => {
    const cache = new RedisEc2Cluster("cache", {
      region: "us-east-1",
      shards: 2,
      maxmemory: "lots",
      allowedCidrs: ["0.0.0.0/0"],
      // A typo a JavaScript caller can make; TypeScript refuses it at compile time.
      ...({ shardz: 4 } as object),
    });
    await cache.ready;
  });
  const message = String(r.error?.message);
  expect(message).toMatch(/^invalid arguments of RedisEc2Cluster "cache" \(4 problems\):/);
  expect(message).toContain('- shards = "2": must be a whole number from 3 to 500');
  expect(message).toContain("fix: shards: 3");
  expect(message).toContain('- maxmemory = "lots": is not a memory size');
  expect(message).toContain('fix: use a size with a unit, e.g. maxmemory: "10gb"');
  expect(message).toContain('- shardz = "4": is not an argument of the EC2 cluster');
  expect(message).toContain("did you mean 'shards'?");
  expect(message).toContain("allowedCidrs");
  expect(message).not.toContain("pulumi config");
  expect(r.resources.filter((x) => !x.type.startsWith("redis-stack:"))).toEqual([]);
});

test("the Redis Cloud component takes its keys as arguments and checks them the same way", async () => {
  const ok = await run(async () => {
    const db = new RedisCloudDatabase("db", {
      allowedCidrs: ["203.0.113.0/24"],
      cloudPaymentCardLast4: "1234",
      cloudBackupPath: "s3://acme-backups/redis",
      cloudCaCertificate: CLOUD_CA,
    });
    await db.ready;
    return db.outputs;
  });
  expect(ok.error).toBeUndefined();
  expect(byType(ok.resources, "rediscloud:index/subscriptionDatabase:SubscriptionDatabase")).toHaveLength(1);
  expect(await valueOf(ok.outputs?.tls ?? (undefined as never))).toBe(true);
  const bad = await run(async () => {
    const db = new RedisCloudDatabase("db", { cloudPaymentCardLast4: "1234", persistence: "aof", tls: false });
    await db.ready;
  });
  const message = String(bad.error?.message);
  expect(message).toMatch(/^invalid arguments of RedisCloudDatabase "db" \(1 problem\):/);
  expect(message).toContain("- allowedCidrs = (not set): a Redis Cloud database accepts connections from any address");
  expect(message).toContain("fix: allowedCidrs: [<your app network, e.g. 203.0.113.0/24>]");
});

describe("fixes as code", () => {
  test.each([
    ["pulumi config set shards 3", "shards: 3"],
    ["pulumi config set tls true", "tls: true"],
    ["pulumi config set instanceType r7g.large", 'instanceType: "r7g.large"'],
    ["pulumi config set --path 'allowedCidrs[0]' 10.0.0.0/16", 'allowedCidrs: ["10.0.0.0/16"]'],
    ["pulumi config set aws:region us-east-1", 'region: "us-east-1"'],
    [
      "pulumi config rm shards (or pulumi config set topology cluster to spread)",
      'leave shards out (or topology: "cluster" to spread)',
    ],
    ['pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"', "cloudCaCertificate: <the text of redis_ca.pem>"],
    ["pulumi config set cloudPaymentCardLast4 <last 4 digits> (or x)", "cloudPaymentCardLast4: <last 4 digits> (or x)"],
  ])("%s", (fix, code) => expect(argumentFix(fix)).toBe(code));

  test("every fix the validator writes reads as code, with no pulumi command left", () => {
    const bad: Record<string, string>[] = [];
    // One nonsense value per key, for both targets, and the cross-key problems (missing pairs, payment, CA).
    for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
      for (const value of ["nonsense!", "-1", '["x"]', "0.0.0.0/0", "99999999"]) {
        bad.push({ target: "ec2", "aws:region": "", [key]: value });
        bad.push({ target: "cloud", "aws:region": "eu-west-1", [key]: value });
      }
    }
    bad.push({ target: "cloud", cloudPeerVpcId: "vpc-0a", allowedCidrs: '["10.0.0.0/24"]' });
    bad.push({ target: "ec2", "aws:region": "us-east-1", topology: "sentinel", shards: "3", replicasPerShard: "1" });
    const fixes = new Set(bad.flatMap((raw) => parseSettings(raw).problems.map((p) => p.fix)));
    expect(fixes.size).toBeGreaterThan(40);
    const leftovers = [...fixes].map(argumentFix).filter((f) => /pulumi config/.test(f));
    expect(leftovers).toEqual([]);
  });
});

describe("the last deployment among the stack's outputs", () => {
  const record = (component?: string): DeployedShape => ({
    target: "ec2",
    ...(component ? { component } : {}),
    shards: 3,
    replicasPerShard: 1,
    tls: true,
    dataVolumeGb: 32,
    nodes: ["shard0-0"],
  });
  test("the repository's own program: `deployment` at the top, named or from before names", () => {
    expect(findDeployment({ deployment: record() }, "redis-prod", "prod")).toEqual(record());
    expect(findDeployment({ deployment: record("redis-prod") }, "redis-prod", "prod")).toEqual(record("redis-prod"));
    // An unnamed record belongs to the stack's own cluster only.
    expect(findDeployment({ deployment: record() }, "cache", "prod")).toBeUndefined();
  });
  test("a program that exports a component's outputs object, or its deployment under any name", () => {
    expect(findDeployment({ cache: { env: {}, deployment: record("cache") } }, "cache", "dev")).toEqual(
      record("cache"),
    );
    expect(findDeployment({ cacheShape: record("cache"), other: record("sessions") }, "sessions", "dev")).toEqual(
      record("sessions"),
    );
    expect(findDeployment({ cache: { deployment: record("cache") } }, "sessions", "dev")).toBeUndefined();
    expect(findDeployment({}, "cache", "dev")).toBeUndefined();
  });
});
