/**
 * The checked-in `dev` stack (Redis Cloud) under Pulumi mocks: the subscription and database the
 * binding registers, checked against the provider's schema, and the same output contract as EC2.
 */
import { cloudAlerts } from "../../components/cloud/database";
import { stackConfig, stackSettings } from "../../lab/stackFiles";
import * as pulumi from "@pulumi/pulumi";
import { byType, countByType, FAKE, runStack, RunResult, unwrapSecrets, valueOf } from "./support/stackHarness";
import { checkInputsAgainstSchema, checkInputsAgainstValidation, loadSchema, loadValidation } from "./rediscloudSchema";

const SUBSCRIPTION = "rediscloud:index/subscription:Subscription";
/** Redis Cloud's CA bundle as Pulumi.dev.yaml holds it (cloudCaCertificate). */
const CLOUD_CA = stackConfig("dev")["redis-stack:cloudCaCertificate"];
const DATABASE = "rediscloud:index/subscriptionDatabase:SubscriptionDatabase";

let run: RunResult;
const inputsOf = (type: string) => {
  const found = byType(run.resources, type);
  expect(found).toHaveLength(1);
  return unwrapSecrets(found[0].inputs) as Record<string, unknown>;
};

beforeAll(async () => {
  run = await runStack("dev");
  if (run.error) throw run.error;
});

test("creates one subscription and one database, and nothing on AWS (no peering configured)", () => {
  const counts = countByType(run.resources);
  expect(counts[SUBSCRIPTION]).toBe(1);
  expect(counts[DATABASE]).toBe(1);
  expect(counts["rediscloud:index/subscriptionPeering:SubscriptionPeering"]).toBeUndefined();
  expect(counts["redis-stack:cloud:RedisCloudPeering"]).toBeUndefined();
  expect(counts["random:index/randomPassword:RandomPassword"]).toBe(1);
  expect(Object.keys(counts).filter((t) => t.startsWith("aws:"))).toEqual([]);
  expect(run.calls).toEqual(["rediscloud:index/getPaymentMethod:getPaymentMethod"]);
});

test("subscription: AWS region, multi-AZ, /24 deployment CIDR, the card looked up by its last 4 digits", () => {
  expect(inputsOf(SUBSCRIPTION)).toMatchObject({
    paymentMethod: "credit-card",
    paymentMethodId: "31337",
    memoryStorage: "ram",
    cloudProvider: {
      provider: "AWS",
      regions: [{ region: "us-east-1", multipleAvailabilityZones: true, networkingDeploymentCidr: "10.0.0.0/24" }],
    },
    creationPlan: {
      memoryLimitInGb: 1,
      quantity: 1,
      replication: true,
      throughputMeasurementBy: "operations-per-second",
      throughputMeasurementValue: 1000,
    },
  });
});

test("database: replication, AOF every second, RDB backups to S3, allkeys-lru, TLS, password, allowlist, alerts", () => {
  const db = inputsOf(DATABASE);
  expect(db).toMatchObject({
    subscriptionId: FAKE.subscriptionId,
    replication: true,
    dataPersistence: "aof-every-1-second",
    remoteBackup: { interval: "every-6-hours", storageType: "aws-s3", storagePath: "s3://acme-redis-backups/dev" },
    dataEviction: "allkeys-lru",
    enableTls: true,
    password: FAKE.password("redis-dev-password"),
    sourceIps: ["203.0.113.0/24"],
    supportOssClusterApi: false,
  });
  expect((db.alerts as Array<{ name: string }>).map((a) => a.name)).toEqual([
    "dataset-size",
    "throughput-higher-than",
    "latency",
  ]);
  // The password reaches the engine as a secret.
  const raw = byType(run.resources, DATABASE)[0].inputs;
  expect(raw.password).toMatchObject({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig });
});

test("every input the component sets exists in the provider schema with the right type", () => {
  const schema = loadSchema();
  for (const type of [SUBSCRIPTION, DATABASE]) {
    for (const r of byType(run.resources, type)) {
      expect(checkInputsAgainstSchema(schema, type, unwrapSecrets(r.inputs) as Record<string, unknown>)).toEqual([]);
    }
  }
});

test("every input passes the provider's check-time validation lists (alert names, intervals, CIDRs, ...)", () => {
  const lists = loadValidation();
  for (const type of [SUBSCRIPTION, DATABASE]) {
    const registered = byType(run.resources, type);
    expect(registered.length).toBeGreaterThan(0);
    for (const r of registered) {
      expect(checkInputsAgainstValidation(lists, type, unwrapSecrets(r.inputs) as Record<string, unknown>)).toEqual([]);
    }
  }
});

test("the validation checker rejects what the provider rejects", () => {
  const lists = loadValidation();
  expect(
    checkInputsAgainstValidation(lists, DATABASE, { alerts: [{ name: "connections-limit", value: 80 }], port: 9999 }),
  ).toEqual([expect.stringContaining('alerts[].name: "connections-limit" is not one of'), "port: 9999 < 10000"]);
  expect(checkInputsAgainstValidation(lists, SUBSCRIPTION, { allowlist: { cidrs: ["10.0.0.0/33"] } })).toEqual([
    'allowlist.cidrs[]: "10.0.0.0/33" is not a CIDR',
  ]);
});

test("outputs: the same contract as EC2, the public endpoint, rediss URL with the default user, Redis Cloud's CA", async () => {
  const o = run.outputs;
  if (!o) throw new Error("no outputs");
  expect(await valueOf(o.target)).toBe("cloud");
  expect(await valueOf(o.clusterMode)).toBe(false);
  expect(await valueOf(o.nodes)).toEqual([FAKE.endpoint]);
  expect(await valueOf(o.tls)).toBe(true);
  expect(CLOUD_CA).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
  // The CA from config, plain (a public certificate) and in the secret env map.
  expect(await valueOf(o.caCertificate)).toBe(CLOUD_CA);
  expect(await pulumi.isSecret(o.caCertificate)).toBe(false);
  const url = await valueOf(o.redisUrl);
  expect(url).toBe(`rediss://default:${FAKE.password("redis-dev-password")}@${FAKE.endpoint}`);
  expect(await pulumi.isSecret(o.redisUrl)).toBe(true);
  expect(await pulumi.isSecret(o.env)).toBe(true);
  expect(await pulumi.isSecret(o.nodes)).toBe(false);
  expect(Object.keys(await valueOf(o.env)).sort()).toEqual([
    "REDIS_CA_PEM",
    "REDIS_CLUSTER_MODE",
    "REDIS_CLUSTER_NODES",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_MAX_RETRIES",
    "REDIS_TLS",
    "REDIS_URL",
  ]);
  expect((await valueOf(o.env)).REDIS_CA_PEM).toBe(CLOUD_CA);
  // Reached over the internet (allowedCidrs): no network to deploy apps into.
  expect(o.clientSecurityGroupId).toBeUndefined();
  expect(o.vpcId).toBeUndefined();
  expect(o.subnetIds).toBeUndefined();
  // The alert thresholds are the EC2 alarms' keys at their defaults (alarmMemoryPercent, alarmLatencyP99Ms).
  expect(((await valueOf(o.monitoring)) as { alerts?: string[] }).alerts).toEqual([
    "dataset-size 90",
    "throughput-higher-than 800",
    "latency 10",
  ]);
  // Where the backups are, for the runbook's restore: the configured cloudBackupPath, not a secret.
  if (!o.backupPath) throw new Error("the cloud stack exports no backupPath");
  expect(await valueOf(o.backupPath)).toBe("s3://acme-redis-backups/dev");
  expect(await pulumi.isSecret(o.backupPath)).toBe(false);
});

test("Redis Cloud's alerts take the same threshold keys as the EC2 alarms (latency in whole ms, rounded up)", () => {
  const cloud = stackSettings("dev", "redis-stack", { alarmMemoryPercent: "75", alarmLatencyP99Ms: "2.5" }).cloud;
  if (!cloud) throw new Error("dev is a Redis Cloud stack");
  expect(cloudAlerts(cloud)).toEqual([
    { name: "dataset-size", value: 75 },
    { name: "throughput-higher-than", value: 800 },
    { name: "latency", value: 3 },
  ]);
  expect(() => stackSettings("dev", "redis-stack", { alarmMemoryPercent: "0" })).toThrow(/alarmMemoryPercent/);
});
