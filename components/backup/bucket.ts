/**
 * A bucket for Redis backups, as both targets create it: a KMS key of its own (rotated yearly) or the
 * caller's, and a bucket encrypted with it by default (S3 Bucket Keys on), versioned, owner-enforced (no ACLs), every public access
 * blocked, with the caller's bucket policy and lifecycle. The key and the bucket outlive the stack
 * (retainOnDelete, forceDestroy off): `pulumi destroy` never takes backups with it.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { PolicyDocument } from "../ec2/policy";

export interface BackupBucketArgs {
  parent: pulumi.Resource;
  tags: Record<string, string>;
  /** A key the caller made (the EC2 cluster's key, which encrypts its secrets and volumes too). */
  key?: aws.kms.Key;
  /** The key's description, when this creates the key. */
  keyDescription?: string;
  /** The key's policy; AWS's default key policy (the account administers and uses it) when not given. */
  keyPolicy?: pulumi.Input<string>;
  bucketPolicy: (bucketArn: string) => PolicyDocument;
  lifecycleRules: aws.types.input.s3.BucketLifecycleConfigurationRule[];
}

export interface BackupBucket {
  key: aws.kms.Key;
  bucket: aws.s3.Bucket;
  /** The bucket policy and the default encryption: what a writer from outside needs before it writes. */
  ready: pulumi.Resource[];
}

/** A KMS key rotated yearly that outlives the stack (what it encrypted may outlive it: backups, volumes). */
export function createRetainedKey(
  name: string,
  a: { parent: pulumi.Resource; tags: Record<string, string>; description: string; policy?: pulumi.Input<string> },
): aws.kms.Key {
  return new aws.kms.Key(
    name,
    {
      description: a.description,
      enableKeyRotation: true,
      ...(a.policy !== undefined ? { policy: a.policy } : {}),
      tags: a.tags,
    },
    { parent: a.parent, retainOnDelete: true },
  );
}

export function createBackupBucket(name: string, a: BackupBucketArgs): BackupBucket {
  const kept = { parent: a.parent, retainOnDelete: true };
  const key =
    a.key ??
    createRetainedKey(name, {
      parent: a.parent,
      tags: a.tags,
      description: a.keyDescription ?? `Redis backups (${name})`,
      policy: a.keyPolicy,
    });
  const bucket = new aws.s3.Bucket(name, { forceDestroy: false, tags: a.tags }, kept);
  new aws.s3.BucketOwnershipControls(
    name,
    { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } },
    kept,
  );
  new aws.s3.BucketPublicAccessBlock(
    name,
    {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    },
    kept,
  );
  const versioning = new aws.s3.BucketVersioning(
    name,
    { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } },
    kept,
  );
  const encryption = new aws.s3.BucketServerSideEncryptionConfiguration(
    name,
    {
      bucket: bucket.id,
      rules: [
        {
          applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: key.arn },
          bucketKeyEnabled: true,
        },
      ],
    },
    kept,
  );
  const policy = new aws.s3.BucketPolicy(
    name,
    { bucket: bucket.id, policy: bucket.arn.apply((arn) => JSON.stringify(a.bucketPolicy(arn))) },
    kept,
  );
  // Rules on noncurrent versions need versioning on first. The lifecycle goes with the stack (not kept), so
  // a destroyed stack's last backups are not expired behind its back.
  new aws.s3.BucketLifecycleConfiguration(
    name,
    { bucket: bucket.id, rules: a.lifecycleRules },
    { parent: a.parent, dependsOn: [versioning] },
  );
  return { key, bucket, ready: [policy, encryption] };
}
