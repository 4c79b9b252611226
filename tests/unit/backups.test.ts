/**
 * The backups' pure rules (components/ec2/backups.ts): where a cluster's backups live in its bucket, the
 * bucket's policy, what the node role may do there, the lifecycle, and when the timer fires (checked by
 * systemd's own calendar parser).
 */
import { spawnSync } from "child_process";
import {
  backupBucketPolicy,
  backupKeyAlias,
  backupLifecycleRules,
  backupNodeStatements,
  backupObjectPrefix,
  backupSchedule,
  backupsFolder,
  parseRestoreFrom,
  restoreSourceStatements,
} from "../../components/ec2/backups";
import { nodeRolePolicy } from "../../components/ec2/iam";
import { clusterNames } from "../../components/ec2/args";

const KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-0000-4000-8000-0123456789ab";

test("a cluster's prefix: <project>/<stack> (the library's clusters add their name), no slash at either end", () => {
  expect(backupObjectPrefix("redis-stack", "prod")).toBe("redis-stack/prod");
  expect(clusterNames("redis-stack", "prod", "redis-prod").backupPrefix).toBe("redis-stack/prod");
  expect(clusterNames("shop", "dev", "cache").backupPrefix).toBe("shop/dev-cache");
  expect(backupsFolder("redis-stack/prod")).toBe("redis-stack/prod/backups/");
  expect(() => backupObjectPrefix("", "prod")).toThrow(/without slashes/);
  expect(() => backupObjectPrefix("redis-stack", "a/")).toThrow(/without slashes/);
  expect(backupKeyAlias("redis-stack/prod")).toBe("alias/redis-stack/prod/backups");
  expect(backupKeyAlias("my.project/prod")).toBe("alias/my-project/prod/backups");
});

test("the bucket policy refuses any request without TLS, and nothing else", () => {
  const arn = "arn:aws:s3:::redis-prod-backups-0a1b2c3";
  expect(backupBucketPolicy(arn)).toEqual({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: ["s3:*"],
        Resource: [arn, `${arn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  });
});

test("a node may put and get objects below its prefix, list only that prefix, and use the key only through S3", () => {
  const st = backupNodeStatements("eu-west-1", "123456789012", "b-0a1b2c3", "redis-stack/prod", KEY);
  expect(st).toEqual([
    {
      Sid: "BackupObjects",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:GetObject"],
      Resource: "arn:aws:s3:::b-0a1b2c3/redis-stack/prod/*",
    },
    {
      Sid: "ListBackups",
      Effect: "Allow",
      Action: ["s3:ListBucket"],
      Resource: "arn:aws:s3:::b-0a1b2c3",
      Condition: { StringLike: { "s3:prefix": ["redis-stack/prod/*"] } },
    },
    {
      Sid: "BackupKeyViaS3",
      Effect: "Allow",
      Action: ["kms:GenerateDataKey", "kms:Decrypt"],
      Resource: KEY,
      Condition: { StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com" } },
    },
  ]);
  // Nothing deletes (the lifecycle expires), and no statement reaches past the bucket.
  const actions = st.flatMap((s) => s.Action);
  expect(actions.filter((a) => /Delete|\*/.test(a))).toEqual([]);
  for (const s of st)
    expect([s.Resource].flat().every((r) => r.startsWith("arn:aws:s3:::b-0a1b2c3") || r === KEY)).toBe(true);
});

test("the node role policy appends the backup statements when given the bucket, and is unchanged without", () => {
  const without = nodeRolePolicy("eu-west-1", "123456789012", "/redis-stack/prod", "/redis-stack/prod/status", KEY);
  const withBackup = nodeRolePolicy("eu-west-1", "123456789012", "/redis-stack/prod", "/redis-stack/prod/status", KEY, {
    bucket: "b-0a1b2c3",
    prefix: "redis-stack/prod",
  });
  expect(without.Statement.map((s) => s.Sid)).toEqual([
    "SessionManager",
    "ReadThisStacksParameters",
    "DecryptThisStacksSecretsViaSsm",
    "PublishNodeStatus",
    "PublishNodeMetrics",
  ]);
  expect(withBackup.Statement).toEqual([
    ...without.Statement,
    ...backupNodeStatements("eu-west-1", "123456789012", "b-0a1b2c3", "redis-stack/prod", KEY),
  ]);
  // Only the condition operators the lab's evaluator knows (the type allows no other).
  const operators = withBackup.Statement.flatMap((s) => Object.keys(s.Condition ?? {}));
  expect(operators.every((o) => /^(String(Not)?(Equals|Like)|Bool)$/.test(o))).toBe(true);
});

test("lifecycle: backups expire after the retention, old versions and half uploads after a day, all below the prefix", () => {
  expect(backupLifecycleRules("redis-stack/prod", 7)).toEqual([
    {
      id: "expire-backups",
      status: "Enabled",
      filter: { prefix: "redis-stack/prod/backups/" },
      expiration: { days: 7 },
    },
    {
      id: "clean-up-versions-and-uploads",
      status: "Enabled",
      filter: { prefix: "redis-stack/prod/" },
      noncurrentVersionExpiration: { noncurrentDays: 1 },
      expiration: { expiredObjectDeleteMarker: true },
      abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
    },
  ]);
  expect(backupLifecycleRules("shop/dev-cache", 30)[0]).toMatchObject({ expiration: { days: 30 } });
});

describe("backupSchedule", () => {
  test("intervals that divide a day are calendar times; others run every N hours; 0 is off", () => {
    expect(backupSchedule(6)).toEqual({ kind: "calendar", onCalendar: "*-*-* 00/6:00:00 UTC" });
    expect(backupSchedule(1)).toEqual({ kind: "calendar", onCalendar: "*-*-* *:00:00 UTC" });
    expect(backupSchedule(24)).toEqual({ kind: "calendar", onCalendar: "*-*-* 00:00:00 UTC" });
    for (const h of [5, 7, 25, 48, 168]) expect(backupSchedule(h)).toEqual({ kind: "interval", everyHours: h });
    expect(backupSchedule(0)).toEqual({ kind: "off" });
    for (const bad of [-1, 1.5, Number.NaN]) expect(() => backupSchedule(bad)).toThrow(/whole number of hours/);
  });

  const hasSystemd = spawnSync("systemd-analyze", ["--version"]).status === 0;
  (hasSystemd ? test : test.skip)(
    "each calendar fires every N hours on the hour, in UTC (systemd's own parser)",
    () => {
      for (const hours of [1, 2, 3, 4, 6, 8, 12, 24]) {
        const schedule = backupSchedule(hours);
        if (schedule.kind !== "calendar") throw new Error(`${hours} h should be a calendar`);
        const r = spawnSync("systemd-analyze", ["calendar", schedule.onCalendar, "--iterations=3"], {
          encoding: "utf8",
        });
        expect(r.status).toBe(0);
        const times = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d): \w+ (\S+ \S+) UTC/g)].map((m) =>
          Date.parse(`${m[1].replace(" ", "T")}Z`),
        );
        expect(times).toHaveLength(3);
        expect(times.every((t) => (t / 1000) % (hours * 3600) === 0)).toBe(true);
        expect(times[1] - times[0]).toBe(hours * 3600 * 1000);
      }
    },
  );
});

describe("restoreFrom", () => {
  const uri = "s3://old-backups/redis-stack/prod/backups/20261205T060000Z/manifest.json";

  test("a manifest's S3 URI comes apart into bucket, key and folder; anything else is refused", () => {
    expect(parseRestoreFrom(uri)).toEqual({
      bucket: "old-backups",
      key: "redis-stack/prod/backups/20261205T060000Z/manifest.json",
      folder: "redis-stack/prod/backups/20261205T060000Z/",
    });
    for (const bad of [
      "s3://old-backups/manifest.json", // a manifest is always in a backup's folder
      "s3://old-backups/redis-stack/prod/backups/20261205T060000Z/",
      "s3://old-backups/redis-stack/prod/backups/20261205T060000Z/shard-0.rdb",
      "https://old-backups.s3.amazonaws.com/a/manifest.json",
      "s3://Old_Backups/a/manifest.json",
      "s3://old-backups//manifest.json",
    ])
      expect(parseRestoreFrom(bad)).toBeUndefined();
  });

  test("reading another stack's backup: that folder only, and decryption only through S3 in the region", () => {
    const st = restoreSourceStatements("eu-west-1", "123456789012", "new-backups", "redis-stack/prod2", uri);
    expect(st).toEqual([
      {
        Sid: "ReadTheBackupToRestore",
        Effect: "Allow",
        Action: ["s3:GetObject"],
        Resource: "arn:aws:s3:::old-backups/redis-stack/prod/backups/20261205T060000Z/*",
      },
      {
        Sid: "DecryptTheBackupToRestoreViaS3",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: "arn:aws:kms:eu-west-1:123456789012:key/*",
        Condition: { StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com" } },
      },
    ]);
    // A backup below the stack's own prefix needs nothing more than the backup statements.
    expect(restoreSourceStatements("eu-west-1", "123456789012", "old-backups", "redis-stack/prod", uri)).toEqual([]);
    const policy = nodeRolePolicy("eu-west-1", "123456789012", "/p", "/p/status", KEY, {
      bucket: "new-backups",
      prefix: "redis-stack/prod2",
      restoreFrom: uri,
    });
    expect(policy.Statement.map((x) => x.Sid)).toContain("ReadTheBackupToRestore");
    expect(() => restoreSourceStatements("eu-west-1", "1", "b", "p", "s3://x")).toThrow(/not a manifest/);
  });
});
