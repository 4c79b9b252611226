/**
 * The bucket the stack creates for a Redis Cloud database's backups when `cloudBackupPath` is not given.
 * Pure: the policies and the path. What Redis Cloud needs is what its documentation gives ("Back up a
 * database", AWS S3, in redis/docs content/operate/rc/databases/back-up-data.md): its AWS account may put,
 * get and delete objects in the bucket, and use the bucket's KMS key when the bucket is SSE-KMS.
 */
import { backupBucketPolicy, backupsFolder } from "../ec2/backups";
import type { PolicyDocument } from "../ec2/policy";

/** The AWS account Redis Cloud writes backups from (Redis's documented bucket and key policies). */
export const REDIS_CLOUD_BACKUP_PRINCIPAL = "arn:aws:iam::168085023892:root";

/** The bucket policy: TLS only (as the EC2 bucket), and Redis Cloud's documented object access. */
export function cloudBackupBucketPolicy(bucketArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      ...backupBucketPolicy(bucketArn).Statement,
      {
        Sid: "RedisCloudBackupsAccess",
        Effect: "Allow",
        Principal: { AWS: REDIS_CLOUD_BACKUP_PRINCIPAL },
        Action: ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
        Resource: `${bucketArn}/*`,
      },
    ],
  };
}

/**
 * The key policy: the account administers and uses the key (AWS's default key policy), and Redis Cloud may
 * use it for what S3 does with it on its behalf (Redis documents the actions; the ViaService condition keeps
 * them to S3 in the bucket's region).
 */
export function cloudBackupKeyPolicy(accountId: string, region: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AccountAdministersTheKey",
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: ["kms:*"],
        Resource: "*",
      },
      {
        Sid: "RedisCloudBackupsUseTheKeyThroughS3",
        Effect: "Allow",
        Principal: { AWS: REDIS_CLOUD_BACKUP_PRINCIPAL },
        Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
        Resource: "*",
        Condition: { StringEquals: { "kms:ViaService": `s3.${region}.amazonaws.com` } },
      },
    ],
  };
}

/** The database's `remoteBackup.storagePath`: the backups folder below the stack's prefix in that bucket. */
export function cloudBackupPath(bucket: string, prefix: string): string {
  return `s3://${bucket}/${backupsFolder(prefix).replace(/\/$/, "")}`;
}
