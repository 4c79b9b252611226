/**
 * Stack config validation: defaults, and every bad input failing with the key, the value and the fix,
 * all problems at once. Pure: parseSettings is called with raw values as Pulumi hands them over.
 */
import * as fs from "fs";
import * as path from "path";
import { caBundleProblem, cidrsOverlap, parseMemorySize, isCidr } from "../../components/config/values";
import { ConfigProblem } from "../../components/config/settings";
import { formatProblems } from "../../components/config/problems";
import { parseSettings } from "../../components/config/parse";
import { REDIS_CLOUD_CA_DOCS } from "../../components/config/cloud";
import { describeInstanceType, defaultMaxmemoryBytes } from "../../components/ec2/instanceTypes";
import { stackConfig } from "../../lab/stackFiles";

/** Redis Cloud's CA bundle (five CA certificates) as the dev stack file holds it. */
const CLOUD_CA = stackConfig("dev")["redis-stack:cloudCaCertificate"];
/** A server (leaf) certificate: CA:FALSE. */
const SERVER_CERT = fs.readFileSync(path.join(__dirname, "fixtures/server-certificate.pem"), "utf8");

const EC2 = { "aws:region": "us-east-1" };
const CLOUD = {
  target: "cloud",
  cloudPaymentCardLast4: "4242",
  cloudBackupPath: "s3://acme-backups/redis",
  allowedCidrs: '["203.0.113.0/24"]',
  cloudCaCertificate: CLOUD_CA,
};
/** A complete peering with the app's VPC 10.60.0.0/16 (let in by allowedCidrs). */
const PEERED = {
  ...CLOUD,
  "aws:region": "us-east-1",
  allowedCidrs: '["10.60.0.0/16"]',
  cloudPeerVpcId: "vpc-0a9b8c7d6e5f40312",
  cloudPeerVpcCidrs: '["10.60.0.0/16"]',
  cloudPeerSubnetIds: '["subnet-0a", "subnet-0b"]',
  cloudPeerRouteTableIds: '["rtb-0a", "rtb-0b"]',
};

function problems(raw: Record<string, string>): ConfigProblem[] {
  const r = parseSettings(raw);
  expect(r.settings).toBeUndefined();
  return r.problems;
}

/** Exactly one problem for `key`, whose text mentions `about` and whose fix is actionable. */
function expectProblem(raw: Record<string, string>, key: string, about: RegExp): ConfigProblem {
  const found = problems(raw).filter((p) => p.key === key);
  expect(found).toHaveLength(1);
  expect(found[0].problem).toMatch(about);
  expect(found[0].fix.length).toBeGreaterThan(10);
  return found[0];
}

describe("defaults", () => {
  test("ec2 with nothing but a region: 3 x 1 r7g.large, 65% maxmemory, allkeys-lru, AOF+RDB, TLS, 2 s node timeout", () => {
    const { settings, problems: p } = parseSettings(EC2);
    expect(p).toEqual([]);
    expect(settings).toMatchObject({
      target: "ec2",
      persistence: "aof+rdb",
      maxmemoryPolicy: "allkeys-lru",
      tls: true,
      allowedCidrs: [],
      client: { maxRetries: 10, connectTimeoutMs: 5000 },
      ec2: {
        shards: 3,
        replicasPerShard: 1,
        instanceType: "r7g.large",
        architecture: "arm64",
        nodeTimeoutMs: 2000,
        ipHostOffset: 10,
        vpcCidr: "10.40.0.0/16",
      },
    });
    // r7g.large has 16 GiB: 65% rounded down to whole MiB.
    expect(settings?.ec2?.maxmemoryBytes).toBe(10649 * 1024 * 1024);
  });

  test("instance types are sized by family; unknown ones are not guessed", () => {
    expect(describeInstanceType("r6i.2xlarge")).toEqual({ architecture: "x86_64", memoryBytes: 64 * 1024 ** 3 });
    expect(describeInstanceType("m7g.xlarge")).toEqual({ architecture: "arm64", memoryBytes: 16 * 1024 ** 3 });
    expect(describeInstanceType("c7gn.large")).toEqual({ architecture: "arm64", memoryBytes: 4 * 1024 ** 3 });
    expect(describeInstanceType("t4g.small")).toEqual({ architecture: "arm64", memoryBytes: 2 * 1024 ** 3 });
    expect(describeInstanceType("x2iedn.xlarge").memoryBytes).toBeUndefined();
    expect(defaultMaxmemoryBytes(1024 ** 3)).toBe(665 * 1024 * 1024);
  });

  test("explicit values parse: sizes with units, lists from YAML or the command line", () => {
    const { settings } = parseSettings({
      ...EC2,
      maxmemory: "4gb",
      allowedCidrs: "10.0.0.0/8, 172.16.0.0/12",
      shards: "6",
      replicasPerShard: "2",
      nodeTimeoutMs: "3000",
    });
    expect(settings?.ec2?.maxmemoryBytes).toBe(4 * 1024 ** 3);
    expect(settings?.allowedCidrs).toEqual(["10.0.0.0/8", "172.16.0.0/12"]);
    expect(settings?.ec2).toMatchObject({ shards: 6, replicasPerShard: 2, nodeTimeoutMs: 3000 });
    expect(parseMemorySize("512mb")).toBe(512 * 1024 * 1024);
    expect(parseMemorySize("lots")).toBeUndefined();
    expect(isCidr("10.0.0.0/16")).toBe(true);
    expect(isCidr("10.0.0.1/16")).toBe(false);
    expect(isCidr("300.0.0.0/8")).toBe(false);
  });

  test("monitoring: 60 s metrics, alarms at 90% memory, 10 ms p99, 80% disk, 1 eviction/s; each settable", () => {
    expect(parseSettings(EC2).settings?.ec2).toMatchObject({
      metricsIntervalSeconds: 60,
      alarms: { memoryPercent: 90, latencyP99Ms: 10, diskPercent: 80, evictionsPerSecond: 1 },
    });
    const { settings, problems: p } = parseSettings({
      ...EC2,
      metricsIntervalSeconds: "10",
      alarmMemoryPercent: "100",
      alarmLatencyP99Ms: "2.5",
      alarmDiskPercent: "1",
      alarmEvictionsPerSecond: "0",
    });
    expect(p).toEqual([]);
    expect(settings?.ec2).toMatchObject({
      metricsIntervalSeconds: 10,
      alarms: { memoryPercent: 100, latencyP99Ms: 2.5, diskPercent: 1, evictionsPerSecond: 0 },
    });
  });

  test("backups (EC2): every 6 h, kept 7 days; 0 turns the schedule off", () => {
    expect(parseSettings(EC2).settings?.ec2).toMatchObject({ backupIntervalHours: 6, backupRetentionDays: 7 });
    for (const [interval, retention] of [
      ["0", "1"],
      ["1", "30"],
      ["168", "3650"],
    ]) {
      const { settings, problems: p } = parseSettings({
        ...EC2,
        backupIntervalHours: interval,
        backupRetentionDays: retention,
      });
      expect(p).toEqual([]);
      expect(settings?.ec2).toMatchObject({
        backupIntervalHours: Number(interval),
        backupRetentionDays: Number(retention),
      });
    }
  });

  test("cloud defaults: 1 GB, 1000 ops/s, multi-AZ, 6-hourly backups, no cluster API", () => {
    const { settings, problems: p } = parseSettings(CLOUD);
    expect(p).toEqual([]);
    expect(settings?.cloud).toMatchObject({
      region: "us-east-1",
      memoryGb: 1,
      throughputOps: 1000,
      multiAz: true,
      backupIntervalHours: 6,
      clusterApi: false,
      deploymentCidr: "10.0.0.0/24",
    });
    expect(settings?.ec2).toBeUndefined();
  });
});

describe("each bad input names the key, the value and the fix", () => {
  test("shards < 3", () => {
    const p = expectProblem({ ...EC2, shards: "2" }, "shards", /at least 3 masters|from 3/);
    expect(p.value).toBe("2");
    expect(p.fix).toContain("pulumi config set shards 3");
  });
  test("more cluster nodes than one user-data can carry the plan of (shards x (1 + replicas) over 60)", () => {
    const p = expectProblem({ ...EC2, shards: "21", replicasPerShard: "2" }, "shards", /63 nodes, over 60.*16 KiB/);
    expect(p.value).toBe("21");
    expect(p.fix).toBe("pulumi config set shards 20");
    expect(parseSettings({ ...EC2, shards: "30" }).settings?.ec2).toMatchObject({ shards: 30, replicasPerShard: 1 });
    expect(parseSettings({ ...EC2, shards: "20", replicasPerShard: "2" }).problems).toEqual([]);
  });
  test("replicas < 1", () => {
    expectProblem({ ...EC2, replicasPerShard: "0" }, "replicasPerShard", /from 1/);
  });
  test("maxmemory larger than the instance's RAM", () => {
    const p = expectProblem(
      { ...EC2, instanceType: "r7g.large", maxmemory: "20gb" },
      "maxmemory",
      /larger than the RAM of r7g.large \(16gb\)/,
    );
    expect(p.fix).toContain("10649mb");
  });
  test("maxmemory too small to hold the replication backlog (Redis 7 counts it in used_memory)", () => {
    const p = expectProblem({ ...EC2, maxmemory: "100mb" }, "maxmemory", /below 256mb: the 64mb replication backlog/);
    expect(p.fix).toBe("pulumi config set maxmemory 256mb (or more)");
    expect(parseSettings({ ...EC2, maxmemory: "256mb" }).problems).toEqual([]);
  });
  test("an instance type the stack cannot size, without maxmemory", () => {
    const p = expectProblem(
      { ...EC2, instanceType: "x2iedn.xlarge" },
      "maxmemory",
      /cannot tell how much RAM x2iedn.xlarge has/,
    );
    expect(p.fix).toContain("pulumi config set maxmemory");
    // ...and with an explicit maxmemory it is fine.
    expect(parseSettings({ ...EC2, instanceType: "x2iedn.xlarge", maxmemory: "64gb" }).problems).toEqual([]);
  });
  test("unknown eviction policy", () => {
    expectProblem({ ...EC2, maxmemoryPolicy: "allkeys-lfru" }, "maxmemoryPolicy", /allkeys-lru.*noeviction/);
  });
  test("nodeTimeoutMs outside a sane range", () => {
    expectProblem({ ...EC2, nodeTimeoutMs: "200" }, "nodeTimeoutMs", /from 1000 to 60000/);
    expectProblem({ ...EC2, nodeTimeoutMs: "120000" }, "nodeTimeoutMs", /from 1000 to 60000/);
  });
  test("fewer subnets than needed", () => {
    expectProblem(
      { ...EC2, vpcId: "vpc-0abc", subnetIds: '["subnet-0aaa"]' },
      "subnetIds",
      /at least 2 private subnets/,
    );
  });
  test("vpcId without subnetIds", () => {
    expectProblem({ ...EC2, vpcId: "vpc-0abc" }, "subnetIds", /go together/);
  });
  test("an invalid CIDR, and the whole internet", () => {
    expectProblem({ ...EC2, allowedCidrs: '["10.0.0.300/8"]' }, "allowedCidrs", /not an IPv4 CIDR/);
    expectProblem({ ...EC2, allowedCidrs: '["0.0.0.0/0"]' }, "allowedCidrs", /whole internet/);
    expectProblem({ ...CLOUD, cloudDeploymentCidr: "10.0.0.0/16" }, "cloudDeploymentCidr", /\/24/);
  });
  test("Redis Cloud memory <= 0", () => {
    expectProblem({ ...CLOUD, cloudMemoryGb: "0" }, "cloudMemoryGb", /greater than 0/);
    expectProblem({ ...CLOUD, cloudMemoryGb: "-1" }, "cloudMemoryGb", /greater than 0/);
  });
  test("unknown persistence value", () => {
    expectProblem({ ...CLOUD, persistence: "aof-always" }, "persistence", /aof\+rdb, aof, rdb, none/);
  });
  test("missing payment method for Redis Cloud", () => {
    const { cloudPaymentCardLast4: _omit, ...rest } = CLOUD;
    const p = expectProblem(rest, "cloudPaymentMethodId", /needs a payment method/);
    expect(p.fix).toContain("cloudPaymentCardLast4");
    expect(parseSettings({ ...rest, cloudPaymentMethod: "marketplace" }).problems).toEqual([]);
  });
  test("RDB backups without a backup path are fine (the stack creates the bucket); a cloud database open to everyone is not", () => {
    const parsed = parseSettings({ ...CLOUD, cloudBackupPath: "", backupRetentionDays: "30" });
    expect(parsed.problems).toEqual([]);
    expect(parsed.settings?.cloud).toMatchObject({ backupPath: undefined, backupRetentionDays: 30 });
    expectProblem({ ...CLOUD, cloudBackupPath: "ftp://x" }, "cloudBackupPath", /s3:\/\//);
    expectProblem({ ...CLOUD, allowedCidrs: "" }, "allowedCidrs", /any address/);
  });
  test("malformed alert email", () => {
    expectProblem({ ...EC2, alertEmail: "oncall-at-example" }, "alertEmail", /not an email/);
  });
  test("unknown target", () => {
    const p = expectProblem({ ...EC2, target: "gcp" }, "target", /'cloud'.*'ec2'/);
    expect(p.value).toBe("gcp");
  });
  test("missing AWS region for EC2", () => {
    expectProblem({}, "aws:region", /needs an AWS region/);
  });
  test("metricsIntervalSeconds other than 10, 30 or 60", () => {
    for (const bad of ["15", "0", "120", "fast"]) {
      const p = expectProblem({ ...EC2, metricsIntervalSeconds: bad }, "metricsIntervalSeconds", /one of 10, 30, 60/);
      expect(p.value).toBe(bad);
      expect(p.fix).toBe("pulumi config set metricsIntervalSeconds 60");
    }
  });
  test("alarmMemoryPercent and alarmDiskPercent outside 1-100 or not whole", () => {
    for (const bad of ["0", "101", "90.5", "lots"]) {
      expect(expectProblem({ ...EC2, alarmMemoryPercent: bad }, "alarmMemoryPercent", /from 1 to 100/).fix).toBe(
        "pulumi config set alarmMemoryPercent 90",
      );
      expect(expectProblem({ ...EC2, alarmDiskPercent: bad }, "alarmDiskPercent", /from 1 to 100/).fix).toBe(
        "pulumi config set alarmDiskPercent 80",
      );
    }
  });
  test("alarmLatencyP99Ms not above 0", () => {
    for (const bad of ["0", "-5", "slow"]) {
      const p = expectProblem({ ...EC2, alarmLatencyP99Ms: bad }, "alarmLatencyP99Ms", /milliseconds greater than 0/);
      expect(p.fix).toBe("pulumi config set alarmLatencyP99Ms 10");
    }
  });
  test("alarmEvictionsPerSecond below 0", () => {
    for (const bad of ["-1", "many"]) {
      const p = expectProblem({ ...EC2, alarmEvictionsPerSecond: bad }, "alarmEvictionsPerSecond", /0 or more/);
      expect(p.fix).toBe("pulumi config set alarmEvictionsPerSecond 1");
    }
  });
  test("backupIntervalHours outside 0-168, backupRetentionDays outside 1-3650, or not whole", () => {
    for (const bad of ["-1", "169", "1.5", "daily"]) {
      const p = expectProblem(
        { ...EC2, backupIntervalHours: bad },
        "backupIntervalHours",
        /whole number from 0 to 168 \(.*0 turns them off\)/,
      );
      expect(p.value).toBe(bad);
      expect(p.fix).toBe("pulumi config set backupIntervalHours 6");
    }
    for (const bad of ["0", "3651", "2.5", "forever"]) {
      const p = expectProblem({ ...EC2, backupRetentionDays: bad }, "backupRetentionDays", /from 1 to 3650/);
      expect(p.value).toBe(bad);
      expect(p.fix).toBe("pulumi config set backupRetentionDays 7");
    }
  });
  test("restoreFrom must be a backup manifest's S3 URI; a good one reaches the settings", () => {
    const good = "s3://old-backups/redis-stack/prod/backups/20261205T060000Z/manifest.json";
    expect(parseSettings({ ...EC2, restoreFrom: good }).settings?.ec2?.restoreFrom).toBe(good);
    expect(parseSettings(EC2).settings?.ec2?.restoreFrom).toBeUndefined();
    for (const bad of ["s3://old-backups/redis-stack/prod/backups/20261205T060000Z/", "old-backups/x/manifest.json"]) {
      const p = expectProblem({ ...EC2, restoreFrom: bad }, "restoreFrom", /S3 URI of a backup's manifest/);
      expect(p.fix).toMatch(/^pulumi config set restoreFrom s3:\/\/.*manifest\.json/);
    }
  });
  test("a typo'd key is reported with a suggestion", () => {
    const p = expectProblem({ ...EC2, shard: "3" }, "shard", /not a setting/);
    expect(p.fix).toContain("did you mean 'shards'");
  });
});

describe("Redis Cloud: the CA apps verify against (cloudCaCertificate)", () => {
  test("with TLS, the CA bundle is required: the problem says what it is, where to download it and the command", () => {
    const { cloudCaCertificate: _omit, ...withoutCa } = CLOUD;
    const p = expectProblem(withoutCa, "cloudCaCertificate", /TLS is on.*Redis Cloud's CA.*REDIS_CA_PEM/);
    expect(p.value).toBeUndefined();
    expect(p.problem).toContain(REDIS_CLOUD_CA_DOCS);
    expect(p.problem).toContain("redis_ca.pem");
    expect(p.fix).toBe(
      'pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)" (or pulumi config set tls false)',
    );
    // Pulumi.yaml's default for an unset key is "": the same.
    expectProblem({ ...withoutCa, cloudCaCertificate: "" }, "cloudCaCertificate", /TLS is on/);
    // Without TLS there is nothing to verify.
    const plain = parseSettings({ ...withoutCa, tls: "false" });
    expect(plain.problems).toEqual([]);
    expect(plain.settings?.cloud?.caCertificate).toBeUndefined();
  });

  test("the bundle is kept as given (one trailing newline)", () => {
    const { settings, problems: p } = parseSettings({ ...CLOUD, cloudCaCertificate: `\n${CLOUD_CA.trim()}` });
    expect(p).toEqual([]);
    expect(settings?.cloud?.caCertificate).toBe(CLOUD_CA);
  });

  test("a value that is not PEM, a damaged block, a server certificate or a private key is refused", () => {
    const cases: [string, RegExp][] = [
      ["redis_ca.pem", /is not PEM text: it has no -----BEGIN CERTIFICATE-----/],
      ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", /certificate 1 of 1 is not a valid X\.509/],
      [SERVER_CERT, /certificate 1 of 1 \(CN=redis-12345\..*\) is not a CA certificate/],
      [`${CLOUD_CA}-----BEGIN PRIVATE KEY-----\nMIG\n-----END PRIVATE KEY-----\n`, /holds a private key/],
    ];
    for (const [value, about] of cases) {
      const p = expectProblem({ ...CLOUD, cloudCaCertificate: value }, "cloudCaCertificate", about);
      expect(p.problem).toContain(REDIS_CLOUD_CA_DOCS);
      expect(p.fix).toBe('pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"');
      // The value is shown shortened: a bundle runs to kilobytes.
      expect(String(p.value).length).toBeLessThanOrEqual(60);
    }
    // Checked whenever set, TLS or not.
    expectProblem({ ...CLOUD, tls: "false", cloudCaCertificate: "nope" }, "cloudCaCertificate", /not PEM/);
    expect(caBundleProblem(CLOUD_CA)).toBeUndefined();
    expect(caBundleProblem(`${CLOUD_CA}${SERVER_CERT}`)).toMatch(/certificate 6 of 6/);
  });
});

describe("Redis Cloud: VPC peering with the app's VPC (cloudPeer*)", () => {
  test("all four keys make a peering; none is no peering", () => {
    const { settings, problems: p } = parseSettings(PEERED);
    expect(p).toEqual([]);
    expect(settings?.cloud?.peering).toEqual({
      vpcId: "vpc-0a9b8c7d6e5f40312",
      vpcCidrs: ["10.60.0.0/16"],
      subnetIds: ["subnet-0a", "subnet-0b"],
      routeTableIds: ["rtb-0a", "rtb-0b"],
    });
    expect(parseSettings(CLOUD).settings?.cloud?.peering).toBeUndefined();
    // Pulumi.yaml's defaults ("" and []) are no peering too.
    const defaults = {
      cloudPeerVpcId: "",
      cloudPeerVpcCidrs: "[]",
      cloudPeerSubnetIds: "[]",
      cloudPeerRouteTableIds: "[]",
    };
    expect(parseSettings({ ...CLOUD, ...defaults }).settings?.cloud?.peering).toBeUndefined();
  });

  test("a partial peering names each missing key with the command that sets it", () => {
    const { cloudPeerSubnetIds: _s, cloudPeerRouteTableIds: _r, ...partial } = PEERED;
    const p = problems(partial);
    expect(p.map((x) => x.key)).toEqual(["cloudPeerSubnetIds", "cloudPeerRouteTableIds"]);
    for (const x of p) {
      expect(x.value).toBeUndefined();
      expect(x.problem).toBe(
        "VPC peering needs cloudPeerVpcId, cloudPeerVpcCidrs, cloudPeerSubnetIds, cloudPeerRouteTableIds together, " +
          "and only cloudPeerVpcId, cloudPeerVpcCidrs are set",
      );
      expect(x.fix).toContain(`pulumi config set --path '${x.key}[0]'`);
      expect(x.fix).toContain("pulumi config rm cloudPeerVpcId / cloudPeerVpcCidrs");
    }
    const alone = expectProblem(
      { ...CLOUD, cloudPeerVpcId: "vpc-0a9b8c7d6e5f40312" },
      "cloudPeerVpcCidrs",
      /only cloudPeerVpcId is set/,
    );
    expect(alone.fix).toContain("pulumi config set --path 'cloudPeerVpcCidrs[0]' 10.60.0.0/16");
  });

  test("ids and CIDRs are checked", () => {
    expectProblem({ ...PEERED, cloudPeerVpcId: "app-vpc" }, "cloudPeerVpcId", /not a VPC id/);
    expectProblem({ ...PEERED, cloudPeerSubnetIds: '["subnet-0a", "sn-1"]' }, "cloudPeerSubnetIds", /not a subnet id/);
    expectProblem(
      { ...PEERED, cloudPeerRouteTableIds: '["rtb-0a", "main"]' },
      "cloudPeerRouteTableIds",
      /not a route table/,
    );
    const p = expectProblem(
      { ...PEERED, cloudPeerVpcCidrs: '["10.60.0.1/16"]' },
      "cloudPeerVpcCidrs",
      /not an IPv4 CIDR/,
    );
    expect(p.value).toBe("10.60.0.1/16");
  });

  test("the peered VPC must not overlap the subscription's deployment CIDR: the fix offers a free /24", () => {
    const p = expectProblem(
      { ...PEERED, cloudPeerVpcCidrs: '["10.0.0.0/8"]', allowedCidrs: '["10.0.0.0/8"]' },
      "cloudPeerVpcCidrs",
      /overlaps cloudDeploymentCidr 10\.0\.0\.0\/24, the CIDR of Redis Cloud's VPC/,
    );
    expect(p.value).toBe("10.0.0.0/8");
    // 10.99.0.0/24 and 10.254.0.0/24 are inside 10/8: the first spare outside it.
    expect(p.fix).toContain("pulumi config set cloudDeploymentCidr 172.31.254.0/24");
    expect(p.fix).toContain("replaces the subscription");
    // A deployment CIDR elsewhere is fine.
    expect(
      parseSettings({
        ...PEERED,
        cloudPeerVpcCidrs: '["10.0.0.0/8"]',
        allowedCidrs: '["10.0.0.0/8"]',
        cloudDeploymentCidr: "172.31.254.0/24",
      }).problems,
    ).toEqual([]);
    expect(cidrsOverlap("10.0.0.0/24", "10.0.0.128/25")).toBe(true);
    expect(cidrsOverlap("10.0.0.0/24", "10.0.1.0/24")).toBe(false);
  });

  test("allowedCidrs must let the peered VPC in, and the AWS side goes to the subscription's region", () => {
    const p = expectProblem(
      { ...PEERED, allowedCidrs: '["203.0.113.0/24"]' },
      "allowedCidrs",
      /lets none of the peered VPC \(10\.60\.0\.0\/16\) in/,
    );
    expect(p.fix).toBe("pulumi config set --path 'allowedCidrs[1]' 10.60.0.0/16");
    // A part of the VPC is enough (a deliberate narrowing to the apps' subnets).
    expect(parseSettings({ ...PEERED, allowedCidrs: '["10.60.4.0/24"]' }).problems).toEqual([]);
    const twoCidrs = { ...PEERED, cloudPeerVpcCidrs: '["10.60.0.0/16", "10.61.0.0/16"]' };
    expect(parseSettings(twoCidrs).problems).toEqual([]);
    const region = expectProblem({ ...PEERED, "aws:region": "eu-west-1" }, "aws:region", /cloudRegion us-east-1/);
    expect(region.fix).toBe("pulumi config set aws:region us-east-1");
    const { "aws:region": _r, ...noRegion } = PEERED;
    expectProblem(noRegion, "aws:region", /accepter and the routes/);
  });

  test("the message names every problem of a bad peering at once, under its namespaced key", () => {
    const text = formatProblems(
      problems({ ...PEERED, cloudPeerVpcId: "x", cloudPeerVpcCidrs: '["10.0.0.0/16"]', "aws:region": "eu-west-1" }),
      "redis-stack",
    );
    expect(text).toMatch(/^invalid stack configuration \(4 problems\):/);
    for (const key of [
      "redis-stack:cloudPeerVpcId",
      "redis-stack:cloudPeerVpcCidrs",
      "redis-stack:allowedCidrs",
      "aws:region",
    ])
      expect(text).toContain(key);
  });
});

test("every problem is listed at once", () => {
  const p = problems({
    ...EC2,
    shards: "1",
    replicasPerShard: "0",
    maxmemoryPolicy: "lru",
    nodeTimeoutMs: "5",
    alertEmail: "x",
    allowedCidrs: "nope",
  });
  expect(p.map((x) => x.key).sort()).toEqual([
    "alertEmail",
    "allowedCidrs",
    "maxmemoryPolicy",
    "nodeTimeoutMs",
    "replicasPerShard",
    "shards",
  ]);
});

describe("the Sentinel topology (topology=sentinel)", () => {
  test("defaults to one primary and 2 replicas: 3 nodes, 3 Sentinels; the cluster stays the default", () => {
    expect(parseSettings(EC2).settings?.ec2).toMatchObject({ topology: "cluster", shards: 3, replicasPerShard: 1 });
    const ec2 = parseSettings({ ...EC2, topology: "sentinel" }).settings?.ec2;
    expect(ec2).toMatchObject({ topology: "sentinel", shards: 1, replicasPerShard: 2 });
    // Pulumi.yaml's defaults for shards and replicasPerShard are "" (unset), as the CLI hands them over.
    expect(parseSettings({ ...EC2, topology: "sentinel", shards: "", replicasPerShard: "" }).settings?.ec2).toEqual(
      ec2,
    );
    expect(
      parseSettings({ ...EC2, topology: "sentinel", shards: "1", replicasPerShard: "4" }).settings?.ec2,
    ).toMatchObject({ shards: 1, replicasPerShard: 4 });
  });

  test("shards other than 1 fail, naming shards and how to fix it", () => {
    const p = expectProblem({ ...EC2, topology: "sentinel", shards: "3" }, "shards", /one primary.*does not shard/);
    expect(p.fix).toMatch(/pulumi config rm shards/);
  });

  test("fewer than 3 Sentinels (replicasPerShard below 2) fail, naming replicasPerShard", () => {
    for (const replicas of ["1", "0", "two", "6"]) {
      const p = expectProblem(
        { ...EC2, topology: "sentinel", replicasPerShard: replicas },
        "replicasPerShard",
        /at least 3 of them/,
      );
      expect(p.fix).toBe("pulumi config set replicasPerShard 2");
    }
  });

  test("an unknown topology fails with the choices", () => {
    expectProblem({ ...EC2, topology: "sentinels" }, "topology", /cluster, sentinel/);
  });
});
