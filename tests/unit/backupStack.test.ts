/**
 * The prod stack's backups under Pulumi mocks: a bucket and a KMS key of the cluster's own (versioned,
 * SSE-KMS with that key, private, TLS-only, expiring backups after backupRetentionDays), the node role
 * scoped to the cluster's prefix, and every node told where to write and when (node.env and its timer);
 * with backupIntervalHours 0 the bucket stays and the timer is off.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  byType,
  cloudResources,
  Registered,
  runStack,
  RunResult,
  unwrapSecrets,
  valueOf,
  fileIn,
} from "./support/stackHarness";
import { decodeUserData, renderBackupTimer } from "../../components/ec2/node/userData";
import { backupNodeStatements } from "../../components/ec2/backups";
import type { PolicyDocument } from "../../components/ec2/iam";

const PREFIX = "redis-stack/prod";

const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const only = (run: RunResult, type: string) => {
  const found = byType(run.resources, type);
  expect(found.map((r) => r.name)).toEqual(["redis-prod-backups"]);
  return inputs(found[0]);
};
const userData = (run: RunResult) =>
  byType(run.resources, "aws:ec2/instance:Instance").map((r) => decodeUserData(String(inputs(r).userDataBase64)));

let run: RunResult;
let bucketName: string;

beforeAll(async () => {
  run = await runStack("prod");
  if (run.error) throw run.error;
  bucketName = String(await valueOf(run.outputs?.backupBucket as pulumi.Output<string>));
});

describe("the bucket and its key", () => {
  test("a KMS key of the cluster's own, rotated, named after the stack, with an alias", () => {
    const key = only(run, "aws:kms/key:Key");
    expect(key.enableKeyRotation).toBe(true);
    expect(String(key.description)).toContain("redis-stack/prod");
    expect(only(run, "aws:kms/alias:Alias")).toMatchObject({ name: "alias/redis-stack/prod/backups" });
  });

  test("the bucket is never emptied to delete it, versioned, owner-enforced and blocks every public access", () => {
    const bucket = only(run, "aws:s3/bucket:Bucket");
    expect(bucket.forceDestroy).toBe(false);
    // Auto-named after the resource (unique worldwide): the stack exports the name.
    expect(bucket.bucket).toBeUndefined();
    expect(bucketName).toMatch(/^redis-prod-backups-[0-9a-f]{7}$/);
    expect(only(run, "aws:s3/bucketVersioning:BucketVersioning")).toEqual({
      bucket: bucketName,
      versioningConfiguration: { status: "Enabled" },
    });
    expect(only(run, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")).toEqual({
      bucket: bucketName,
      rule: { objectOwnership: "BucketOwnerEnforced" },
    });
    expect(only(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")).toEqual({
      bucket: bucketName,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
  });

  test("every object is encrypted with the cluster's key (SSE-KMS, S3 Bucket Keys)", () => {
    const sse = only(run, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration");
    const rules = sse.rules as Array<{
      applyServerSideEncryptionByDefault: { sseAlgorithm: string; kmsMasterKeyId: string };
      bucketKeyEnabled: boolean;
    }>;
    expect(sse.bucket).toBe(bucketName);
    expect(rules).toHaveLength(1);
    expect(rules[0].applyServerSideEncryptionByDefault.sseAlgorithm).toBe("aws:kms");
    expect(rules[0].applyServerSideEncryptionByDefault.kmsMasterKeyId).toMatch(
      /^arn:aws:kms:us-east-1:123456789012:key\/[0-9a-f-]{36}$/,
    );
    expect(rules[0].bucketKeyEnabled).toBe(true);
    // The key the alias names, the stack's own.
    const alias = only(run, "aws:kms/alias:Alias");
    expect(rules[0].applyServerSideEncryptionByDefault.kmsMasterKeyId).toBe(
      `arn:aws:kms:us-east-1:123456789012:key/${String(alias.targetKeyId)}`,
    );
  });

  test("its policy refuses any request without TLS", () => {
    const policy = only(run, "aws:s3/bucketPolicy:BucketPolicy");
    expect(policy.bucket).toBe(bucketName);
    const doc = JSON.parse(String(policy.policy)) as PolicyDocument;
    expect(doc.Statement).toEqual([
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: ["s3:*"],
        Resource: [`arn:aws:s3:::${bucketName}`, `arn:aws:s3:::${bucketName}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ]);
  });

  test("backups expire after backupRetentionDays (7), below the cluster's prefix", () => {
    const lifecycle = only(run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration");
    expect(lifecycle.bucket).toBe(bucketName);
    expect(lifecycle.rules).toEqual([
      expect.objectContaining({ filter: { prefix: `${PREFIX}/backups/` }, expiration: { days: 7 } }),
      expect.objectContaining({
        filter: { prefix: `${PREFIX}/` },
        noncurrentVersionExpiration: { noncurrentDays: 1 },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
      }),
    ]);
  });

  test("the stack exports the bucket and the prefix, not as secrets", async () => {
    const o = run.outputs;
    if (!o?.backupBucket || !o.backupPrefix) throw new Error("no backup outputs");
    expect(await valueOf(o.backupPrefix)).toBe(PREFIX);
    expect(await pulumi.isSecret(o.backupBucket)).toBe(false);
    expect(await pulumi.isSecret(o.backupPrefix)).toBe(false);
  });
});

test("the node role may write and read below the cluster's prefix only, and use the key only through S3", () => {
  const role = byType(run.resources, "aws:iam/rolePolicy:RolePolicy");
  expect(role).toHaveLength(1);
  const policy = JSON.parse(String(inputs(role[0]).policy)) as PolicyDocument;
  const sse = only(run, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration");
  const key = (sse.rules as Array<{ applyServerSideEncryptionByDefault: { kmsMasterKeyId: string } }>)[0]
    .applyServerSideEncryptionByDefault.kmsMasterKeyId;
  const backup = policy.Statement.filter((s) => ["BackupObjects", "ListBackups", "BackupKeyViaS3"].includes(s.Sid));
  expect(backup).toEqual(backupNodeStatements("us-east-1", "123456789012", bucketName, PREFIX, key));
  expect(backup.find((s) => s.Sid === "BackupObjects")?.Resource).toBe(`arn:aws:s3:::${bucketName}/${PREFIX}/*`);
  // Nothing on every bucket, nor on the whole of this one.
  const resources = policy.Statement.flatMap((s) => [s.Resource].flat());
  expect(resources.filter((r) => r.startsWith("arn:aws:s3:::*") || r === `arn:aws:s3:::${bucketName}/*`)).toEqual([]);
  expect(policy.Statement.flatMap((s) => s.Action).filter((a) => /^s3:(\*|Delete)/.test(a))).toEqual([]);
});

test("every node's node.env names the bucket, the prefix and the interval; its timer fires every 6 h", () => {
  const all = userData(run);
  expect(all).toHaveLength(6);
  for (const ud of all) {
    const env = fileIn(ud, "/etc/redis-stack/node.env").split("\n");
    expect(env).toEqual(
      expect.arrayContaining([
        `BACKUP_BUCKET='${bucketName}'`,
        `BACKUP_PREFIX='${PREFIX}'`,
        "BACKUP_INTERVAL_HOURS='6'",
      ]),
    );
    expect(fileIn(ud, "/etc/systemd/system/redis-node-backup.timer")).toBe(renderBackupTimer(6));
    expect(fileIn(ud, "/etc/systemd/system/redis-node-backup.timer")).toContain("OnCalendar=*-*-* 00/6:00:00 UTC");
    expect(fileIn(ud, "/etc/systemd/system/redis-node-backup.service")).toContain(
      "ExecStart=/usr/local/lib/redis-stack/node.sh backup scheduled",
    );
    // lib-backup.sh comes from SSM, named with its checksum.
    expect(ud).toMatch(
      /^\/usr\/local\/lib\/redis-stack\/lib-backup\.sh 0644 [0-9a-f]{64} \/redis-stack\/prod\/scripts\/lib-backup\.sh\/0/m,
    );
  }
});

describe("with backupIntervalHours 0 and backupRetentionDays 30", () => {
  let off: RunResult;
  beforeAll(async () => {
    off = await runStack("prod", {
      "redis-stack:backupIntervalHours": "0",
      "redis-stack:backupRetentionDays": "30",
    });
    if (off.error) throw off.error;
  });

  test("the bucket and its key stay (on-demand backups), and backups expire after 30 days", () => {
    expect(byType(off.resources, "aws:s3/bucket:Bucket")).toHaveLength(1);
    expect(byType(off.resources, "aws:kms/key:Key")).toHaveLength(1);
    const lifecycle = only(off, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration");
    expect((lifecycle.rules as Array<{ id: string; expiration: unknown }>)[0]).toMatchObject({
      id: "expire-backups",
      expiration: { days: 30 },
    });
  });

  test("every node has the timer, with no trigger and no [Install] section, and BACKUP_INTERVAL_HOURS 0", () => {
    for (const ud of userData(off)) {
      expect(fileIn(ud, "/etc/redis-stack/node.env").split("\n")).toContain("BACKUP_INTERVAL_HOURS='0'");
      const timer = fileIn(ud, "/etc/systemd/system/redis-node-backup.timer");
      expect(timer).toBe(renderBackupTimer(0));
      expect(timer).not.toMatch(/^On[A-Za-z]+=|\[Install\]/m);
    }
  });
});

test("a bad backupIntervalHours fails the preview naming the key and the fix, before anything is created", async () => {
  const bad = await runStack("prod", { "redis-stack:backupIntervalHours": "200" });
  const message = String(bad.error?.message);
  expect(message).toContain('redis-stack:backupIntervalHours = "200"');
  expect(message).toContain("fix: pulumi config set backupIntervalHours 6");
  expect(cloudResources(bad)).toEqual([]);
});
