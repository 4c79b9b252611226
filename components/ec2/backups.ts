/**
 * Backups of an EC2 cluster (docs/runbook.md, "Backups"): where they go in the cluster's S3 bucket, who may
 * touch them, how long the bucket keeps them and when a node takes one. Pure: the component creates the
 * bucket and its key from these (cluster.ts), and `node.sh backup` (lib-backup.sh) writes the objects:
 *
 *   <prefix>/backups/<backupId>/manifest.json
 *   <prefix>/backups/<backupId>/shard-<i>.rdb
 */
import type * as aws from "@pulumi/aws";
import type { ConfigProblem, Topology } from "../config/settings";
import type { PolicyDocument, PolicyStatement } from "./policy";
import { TOTAL_SLOTS } from "./topology";

/** The folder below a cluster's prefix that holds its backups (and that the retention rule expires). */
export const BACKUPS_FOLDER = "backups";

/**
 * A cluster's prefix in its bucket: `<project>/<stack>`, no leading or trailing slash. `stack` is the scope
 * the cluster's other names use (args.ts clusterNames): the stack for the repository's own cluster,
 * `<stack>-<name>` for a library cluster.
 */
export function backupObjectPrefix(project: string, stack: string): string {
  const prefix = `${project}/${stack}`;
  if (prefix.startsWith("/") || prefix.endsWith("/") || prefix.includes("//"))
    throw new Error(`backup prefix ${prefix}: project and stack must be non-empty names without slashes`);
  return prefix;
}

/** Where a cluster's backups live in its bucket: `<prefix>/backups/`. */
export function backupsFolder(prefix: string): string {
  return `${prefix}/${BACKUPS_FOLDER}/`;
}

/** The alias of a cluster's backup key: `alias/<prefix>/backups`, in the characters KMS accepts. */
export function backupKeyAlias(prefix: string): string {
  return `alias/${prefix}/${BACKUPS_FOLDER}`.replace(/[^A-Za-z0-9/_-]/g, "-");
}

/**
 * The bucket's resource policy: nothing reaches it over plain HTTP, whoever asks.
 *
 * No statement denies uploads without an `x-amz-server-side-encryption` header: the bucket's default
 * encryption (SSE-KMS with the cluster's key) encrypts every object whatever the request says, and such a
 * Deny would refuse the plain `aws s3 cp` uploads that rely on that default.
 */
export function backupBucketPolicy(bucketArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: ["s3:*"],
        Resource: [bucketArn, `${bucketArn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  };
}

/**
 * What the node role may do with backups: write and read objects below the cluster's prefix, list only
 * that prefix, and have S3 (only S3, in the stack's region) use the bucket's key on its behalf. Nothing
 * deletes: the bucket's lifecycle expires old backups. `account` is the stack's; S3 ARNs carry none.
 */
export function backupNodeStatements(
  region: string,
  account: string,
  bucketName: string,
  prefix: string,
  kmsKeyArn: string,
): PolicyStatement[] {
  return [
    {
      Sid: "BackupObjects",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:GetObject"],
      Resource: `arn:aws:s3:::${bucketName}/${prefix}/*`,
    },
    {
      Sid: "ListBackups",
      Effect: "Allow",
      Action: ["s3:ListBucket"],
      Resource: `arn:aws:s3:::${bucketName}`,
      Condition: { StringLike: { "s3:prefix": [`${prefix}/*`] } },
    },
    {
      Sid: "BackupKeyViaS3",
      Effect: "Allow",
      Action: ["kms:GenerateDataKey", "kms:Decrypt"],
      Resource: kmsKeyArn,
      Condition: { StringEquals: { "kms:ViaService": `s3.${region}.amazonaws.com` } },
    },
  ];
}

/** A restoreFrom value taken apart: the manifest's bucket and key, and the folder its shard files are in. */
export interface RestoreSource {
  bucket: string;
  key: string;
  /** The manifest's folder, with its trailing slash (the shard files sit beside the manifest). */
  folder: string;
}

/** `s3://<bucket>/<folder>/manifest.json` (what `node.sh backup` prints), or undefined when it is not one. */
export function parseRestoreFrom(uri: string): RestoreSource | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/((?:[^/]+\/)+)manifest\.json$/.exec(uri);
  return m ? { bucket: m[1], key: `${m[2]}manifest.json`, folder: m[2] } : undefined;
}

/** The manifest format `node.sh backup` writes and a restore reads (lib-backup.sh, manifest_check). */
export const MANIFEST_FORMAT = 1;

/**
 * The RDB version Redis 7.0 writes and reads: Debian 12's redis-server, what nodes on the default AMI run. A
 * newer RDB (Redis 7.2 writes 11) does not load into it.
 */
export const DEBIAN12_REDIS_RDB_VERSION = 10;

/** What a restore must match: the stack's topology and shard count (a cluster's slots may lie in any layout). */
export interface RestoreTarget {
  topology: Topology;
  shards: number;
  /** The newest RDB version the nodes load; undefined when unknown (a pinned AMI: the nodes check at boot). */
  maxRdbVersion?: number;
}

/**
 * Why a cluster backup's slot layout cannot be restored (undefined when it can): each shard's slots as
 * CLUSTER NODES lists a master's (`0-5460`, or `0-100,250,300-5460` after a reshard), every slot of
 * 0..16383 in exactly one shard. A restored stack's masters serve the backup's layout, whatever the plan's
 * even split says (lib-backup.sh manifest_check, with the same wording).
 */
export function slotLayoutProblem(shards: Array<{ index: unknown; slots: unknown }>): string | undefined {
  const owner = new Map<number, unknown>();
  for (const e of shards) {
    const ranges: Array<[number, number]> = [];
    for (const token of typeof e.slots === "string" ? e.slots.split(",") : []) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(token);
      const lo = Number(m?.[1]);
      const hi = Number(m?.[2] ?? m?.[1]);
      if (!m || hi < lo || hi >= TOTAL_SLOTS) {
        ranges.length = 0;
        break;
      }
      ranges.push([lo, hi]);
    }
    if (ranges.length === 0)
      return `shard ${String(e.index)}'s slots ${JSON.stringify(e.slots ?? null)} are not ranges of 0-16383 such as 0-5460 or 0-100,250`;
    for (const [lo, hi] of ranges)
      for (let slot = lo; slot <= hi; slot++) {
        if (owner.has(slot))
          return `slot ${slot} is in shard ${String(owner.get(slot))} and in shard ${String(e.index)}`;
        owner.set(slot, e.index);
      }
  }
  if (owner.size < TOTAL_SLOTS) {
    let first = 0;
    while (owner.has(first)) first++;
    return `${TOTAL_SLOTS - owner.size} slot(s) are in no shard (the first: ${first})`;
  }
  return undefined;
}

/**
 * Why a backup's manifest (its text) cannot be restored into a stack planned as `target`: the checks each
 * planned master makes at boot before its Redis starts (lib-backup.sh manifest_check, with the same
 * wording), and the RDB version, so `pulumi preview` refuses what the nodes would. Empty when it fits.
 * The files' checksums are only checked at boot, on the downloaded files.
 */
export function restoreManifestProblems(uri: string, text: string, target: RestoreTarget): ConfigProblem[] {
  const problem = (reason: string, fix: string): ConfigProblem => ({
    key: "restoreFrom",
    value: uri,
    problem: `does not fit this stack: ${reason}`,
    fix,
  });
  const another = `restore from another backup (aws s3 ls ${uri.replace(/[^/]+\/manifest\.json$/, "")} lists them)`;
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    return [problem(`the manifest is not JSON (${(e as Error).message})`, another)];
  }
  const manifest = (m && typeof m === "object" ? m : {}) as {
    format?: unknown;
    topology?: unknown;
    shards?: unknown;
  };
  if (manifest.format !== MANIFEST_FORMAT)
    return [problem(`manifest format ${JSON.stringify(manifest.format)} is not one this stack reads (1)`, another)];
  if (manifest.topology !== target.topology)
    return [
      problem(
        `the backup is of a ${String(manifest.topology)} stack and this one is a ${target.topology} stack`,
        `pulumi config set topology ${String(manifest.topology)}, or ${another}`,
      ),
    ];
  const entries = (Array.isArray(manifest.shards) ? manifest.shards : []) as Array<Record<string, unknown>>;
  if (entries.length !== target.shards)
    return [
      problem(
        `the backup has ${entries.length} shard(s) and this stack plans ${target.shards}`,
        `create it with shards=${entries.length} (pulumi config set shards ${entries.length}), then change shards once it runs`,
      ),
    ];
  const problems: ConfigProblem[] = [];
  if (target.topology === "cluster") {
    const layout = slotLayoutProblem(entries.map((e) => ({ index: e.index, slots: e.slots })));
    if (layout)
      problems.push(
        problem(
          layout,
          "a manifest lists each shard's slots as CLUSTER NODES shows them, every slot 0-16383 in exactly one shard (docs/runbook.md, Migrating in)",
        ),
      );
  }
  for (let shard = 0; shard < target.shards; shard++) {
    const e = entries.find((x) => x.index === shard);
    if (!e) {
      problems.push(problem(`the manifest has no shard ${shard}`, another));
      continue;
    }
    if (typeof e.file !== "string" || typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256))
      problems.push(
        problem(`shard ${shard}'s entry names no file with its SHA-256`, "each entry needs file, size and sha256"),
      );
    const rdb = e.rdbVersion;
    if (target.maxRdbVersion !== undefined && typeof rdb === "number" && rdb > target.maxRdbVersion)
      problems.push(
        problem(
          `shard ${shard} is RDB version ${rdb}, newer than the nodes' Redis reads (${target.maxRdbVersion})`,
          "restore from a backup taken by Redis 7.0, or pin an amiId whose Redis reads it",
        ),
      );
  }
  return problems;
}

/**
 * What a new stack's nodes need to read the backup they restore (restoreFrom) when it is not in their own
 * bucket and prefix (another stack's, a migration's): that backup's folder only, and any key of this account
 * through S3 in this region to decrypt it (the backup's key is not known at preview; a key of another account
 * must grant this role in its key policy too, docs/runbook.md).
 */
export function restoreSourceStatements(
  region: string,
  account: string,
  ownBucket: string,
  ownPrefix: string,
  restoreFrom: string,
): PolicyStatement[] {
  const src = parseRestoreFrom(restoreFrom);
  if (!src) throw new Error(`restoreFrom ${restoreFrom} is not a manifest's S3 URI`);
  if (src.bucket === ownBucket && src.folder.startsWith(`${ownPrefix}/`)) return [];
  return [
    {
      Sid: "ReadTheBackupToRestore",
      Effect: "Allow",
      Action: ["s3:GetObject"],
      Resource: `arn:aws:s3:::${src.bucket}/${src.folder}*`,
    },
    {
      Sid: "DecryptTheBackupToRestoreViaS3",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: `arn:aws:kms:${region}:${account}:key/*`,
      Condition: { StringEquals: { "kms:ViaService": `s3.${region}.amazonaws.com` } },
    },
  ];
}

/**
 * The bucket's lifecycle, below the cluster's prefix: a backup expires `retentionDays` after it was
 * written; an object's old versions (an overwrite, a delete, an expiry) go 1 day later, and with them the
 * delete markers left alone; uploads interrupted halfway are aborted after 1 day.
 */
export function backupLifecycleRules(
  prefix: string,
  retentionDays: number,
): aws.types.input.s3.BucketLifecycleConfigurationRule[] {
  return [
    {
      id: "expire-backups",
      status: "Enabled",
      filter: { prefix: backupsFolder(prefix) },
      expiration: { days: retentionDays },
    },
    {
      id: "clean-up-versions-and-uploads",
      status: "Enabled",
      filter: { prefix: `${prefix}/` },
      noncurrentVersionExpiration: { noncurrentDays: 1 },
      expiration: { expiredObjectDeleteMarker: true },
      abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
    },
  ];
}

/**
 * When a node's backup timer fires (redis-node-backup.timer):
 * - `calendar`: intervals that divide a day (1, 2, 3, 4, 6, 8, 12, 24 h) run at the same UTC times on every
 *   node (6: 00:00, 06:00, 12:00, 18:00), and a node that was down then catches up when it boots
 *   (`Persistent=true`);
 * - `interval`: any other interval runs every N hours from the timer's start (the node's boot), on each
 *   node's own clock: a calendar cannot repeat them evenly across midnight;
 * - `off`: 0, no scheduled backups.
 */
export type BackupSchedule =
  { kind: "calendar"; onCalendar: string } | { kind: "interval"; everyHours: number } | { kind: "off" };

export function backupSchedule(intervalHours: number): BackupSchedule {
  if (!Number.isInteger(intervalHours) || intervalHours < 0)
    throw new Error(`backup interval must be a whole number of hours, 0 or more (got ${intervalHours})`);
  if (intervalHours === 0) return { kind: "off" };
  if (24 % intervalHours !== 0) return { kind: "interval", everyHours: intervalHours };
  const hours = intervalHours === 1 ? "*" : intervalHours === 24 ? "00" : `00/${intervalHours}`;
  return { kind: "calendar", onCalendar: `*-*-* ${hours}:00:00 UTC` };
}

/** Tag keys of a node's data volume, which Pulumi leaves behind (retainOnDelete) when it deletes the node. */
export const RETAINED_VOLUME_TAGS = { stack: "redis-stack:stack", node: "redis-stack:node" } as const;

/**
 * The tags that find a cluster's data volumes after their nodes, a shard or the whole stack are gone: the
 * Pulumi project and stack (`<project>/<stack>`) and the node's name.
 */
export function retainedVolumeTags(projectStack: string, node: string): Record<string, string> {
  return { [RETAINED_VOLUME_TAGS.stack]: projectStack, [RETAINED_VOLUME_TAGS.node]: node };
}
