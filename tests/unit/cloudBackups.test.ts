/**
 * Redis Cloud's backups without `cloudBackupPath`: the dev stack creates the bucket and the KMS key with the
 * access Redis documents for its backup account, TLS only, expiring backups after backupRetentionDays, and
 * points the database's remote backup at it; with a path of your own, or without RDB, it creates nothing.
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { byType, Registered, runStack, RunResult, unwrapSecrets, valueOf } from "./support/stackHarness";
import {
  cloudBackupBucketPolicy,
  cloudBackupKeyPolicy,
  cloudBackupPath,
  REDIS_CLOUD_BACKUP_PRINCIPAL,
} from "../../components/cloud/backups";
import { backupLifecycleRules } from "../../components/ec2/backups";
import { checkInputsAgainstSchema, checkInputsAgainstValidation, loadSchema, loadValidation } from "./rediscloudSchema";

const DATABASE = "rediscloud:index/subscriptionDatabase:SubscriptionDatabase";
const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const one = (run: RunResult, type: string) => {
  const found = byType(run.resources, type);
  expect(found).toHaveLength(1);
  return inputs(found[0]);
};

test("the policies: Redis Cloud's documented object and key access, TLS only, the key kept to S3", () => {
  const arn = "arn:aws:s3:::b";
  const bucket = cloudBackupBucketPolicy(arn);
  expect(bucket.Statement.map((s) => s.Sid)).toEqual(["DenyInsecureTransport", "RedisCloudBackupsAccess"]);
  expect(bucket.Statement[1]).toEqual({
    Sid: "RedisCloudBackupsAccess",
    Effect: "Allow",
    Principal: { AWS: "arn:aws:iam::168085023892:root" },
    Action: ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
    Resource: "arn:aws:s3:::b/*",
  });
  const key = cloudBackupKeyPolicy("123456789012", "us-east-1");
  expect(key.Statement[0]).toMatchObject({ Principal: { AWS: "arn:aws:iam::123456789012:root" }, Action: ["kms:*"] });
  expect(key.Statement[1]).toMatchObject({
    Principal: { AWS: REDIS_CLOUD_BACKUP_PRINCIPAL },
    Condition: { StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } },
  });
  expect(key.Statement[1].Action).not.toContain("kms:*");
  expect(cloudBackupPath("b", "redis-stack/dev")).toBe("s3://b/redis-stack/dev/backups");
});

describe("dev without cloudBackupPath", () => {
  let run: RunResult;
  beforeAll(async () => {
    run = await runStack("dev", {
      "redis-stack:cloudBackupPath": undefined,
      "redis-stack:backupRetentionDays": "30",
    });
    if (run.error) throw run.error;
  });

  test("creates a versioned, private, SSE-KMS bucket and key for Redis Cloud, and backs up to it", async () => {
    const bucket = byType(run.resources, "aws:s3/bucket:Bucket");
    expect(bucket).toHaveLength(1);
    const name = bucket[0].name;
    // The harness's stand-in for Pulumi's auto-name (support/stackHarness.ts).
    const bucketName = `${name}-${createHash("sha256").update(name).digest("hex").slice(0, 7)}`;
    const arn = `arn:aws:s3:::${bucketName}`;
    expect(JSON.parse(String(one(run, "aws:s3/bucketPolicy:BucketPolicy").policy))).toEqual(
      cloudBackupBucketPolicy(arn),
    );
    expect(JSON.parse(String(one(run, "aws:kms/key:Key").policy))).toEqual(
      cloudBackupKeyPolicy("123456789012", "us-east-1"),
    );
    expect(one(run, "aws:kms/key:Key")).toMatchObject({ enableKeyRotation: true });
    expect(one(run, "aws:s3/bucketVersioning:BucketVersioning")).toMatchObject({
      versioningConfiguration: { status: "Enabled" },
    });
    expect(one(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")).toMatchObject({
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    expect(one(run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").rules).toEqual(
      JSON.parse(JSON.stringify(backupLifecycleRules("redis-stack/dev", 30))),
    );
    const db = one(run, DATABASE);
    expect(db.remoteBackup).toEqual({
      interval: "every-6-hours",
      storageType: "aws-s3",
      storagePath: `s3://${bucketName}/redis-stack/dev/backups`,
    });
    // The stack exports where the backups go (the runbook's restore starts there).
    expect(await valueOf(backupPathOf(run))).toBe(`s3://${bucketName}/redis-stack/dev/backups`);
    // What the provider checks still holds.
    expect(checkInputsAgainstSchema(loadSchema(), DATABASE, db)).toEqual([]);
    expect(checkInputsAgainstValidation(loadValidation(), DATABASE, db)).toEqual([]);
  });
});

describe("dev with AOF only", () => {
  test("no RDB backups: no bucket, no key, no remote backup", async () => {
    const run = await runStack("dev", {
      "redis-stack:cloudBackupPath": undefined,
      "redis-stack:persistence": "aof",
    });
    if (run.error) throw run.error;
    expect(byType(run.resources, "aws:s3/bucket:Bucket")).toEqual([]);
    expect(byType(run.resources, "aws:kms/key:Key")).toEqual([]);
    expect(one(run, DATABASE).remoteBackup).toBeUndefined();
    expect(await valueOf(backupPathOf(run))).toBe("");
  });
});

function backupPathOf(run: RunResult): pulumi.Output<string> {
  const path = run.outputs?.backupPath;
  if (!path) throw new Error("the stack exports no backupPath");
  return path;
}
