/**
 * The node role's permissions and the cluster's KMS key policy, as pure policy documents: the component
 * attaches them, and the lab's AWS endpoint enforces the very same node policy, so a test can prove what a
 * node may and may not read.
 *
 * No AWS-managed policy: AmazonSSMManagedInstanceCore grants ssm:GetParameter(s) on "*", so with it any node
 * could read every parameter in the account. And no secret under the account's `aws/ssm` key: that key's
 * policy lets every principal of the account decrypt through SSM, so `ssm:GetParameter` on "*" (which the
 * AWS-managed read-only policies grant) would read the admin password and the nodes' TLS keys. The cluster's
 * own key (clusterKeyPolicy) is used only by whom IAM allows, and the node role only through SSM, for this
 * stack's parameters (ssmSecretsStatement).
 */

import { METRICS_NAMESPACE } from "../monitoring/metrics";
import { backupNodeStatements, restoreSourceStatements } from "./backups";
import type { PolicyDocument, PolicyStatement } from "./policy";

export type { ConditionOperator, PolicyDocument, PolicyStatement } from "./policy";

/** Where a node may write and read its backups (components/ec2/backups.ts): the bucket, the prefix, the key. */
export interface BackupAccess {
  /** The bucket's name (not its ARN). */
  bucket: string;
  /** The cluster's prefix in it (backupObjectPrefix): no leading or trailing slash. */
  prefix: string;
  /** restoreFrom: a backup the new stack's nodes load (read access when it is not below their own prefix). */
  restoreFrom?: string;
}

/**
 * What the SSM agent needs for Session Manager (AWS's "minimal permissions for Session Manager"):
 * registering the instance and opening the session channels. These actions take no resource ARN.
 */
export const SESSION_MANAGER_ACTIONS = [
  "ssm:UpdateInstanceInformation",
  "ssmmessages:CreateControlChannel",
  "ssmmessages:CreateDataChannel",
  "ssmmessages:OpenControlChannel",
  "ssmmessages:OpenDataChannel",
];

/** ARN of every SSM parameter below `prefix` (a name like `/project/stack`, no trailing slash). */
export function parameterArnBelow(region: string, account: string, prefix: string): string {
  // SSM writes `parameter` followed by the name; names starting with "/" give `parameter/a/b`.
  return `arn:aws:ssm:${region}:${account}:parameter${prefix}/*`;
}

/**
 * SSM decrypts a SecureString with the caller's rights (KMS Decrypt, through SSM, with the parameter's ARN as
 * encryption context): this lets the node role decrypt with the cluster's key only that way, and only for
 * parameters below `ssmPrefix`. A direct `kms:Decrypt` of a value read without decryption is refused, and
 * so is any other stack's parameter under the same key.
 */
export function ssmSecretsStatement(
  region: string,
  account: string,
  ssmPrefix: string,
  keyArn: string,
): PolicyStatement {
  return {
    Sid: "DecryptThisStacksSecretsViaSsm",
    Effect: "Allow",
    Action: ["kms:Decrypt"],
    Resource: keyArn,
    Condition: {
      StringEquals: { "kms:ViaService": `ssm.${region}.amazonaws.com` },
      StringLike: {
        [`kms:EncryptionContext:${SSM_ENCRYPTION_CONTEXT_KEY}`]: parameterArnBelow(region, account, ssmPrefix),
      },
    },
  };
}

/** The encryption context key Parameter Store sends to KMS: the parameter's ARN. */
export const SSM_ENCRYPTION_CONTEXT_KEY = "PARAMETER_ARN";

/**
 * The cluster key's policy:
 * - the account administers and uses it through IAM (AWS's default key policy statement: without it nobody
 *   could manage the key, and KMS refuses a policy that locks its caller out). Who may use the key is then
 *   what IAM policies grant: the node role through SSM and S3 (nodeRolePolicy), whoever runs `pulumi up`;
 *   the AWS-managed read-only policies grant no kms:Decrypt;
 * - CloudWatch may encrypt the alarm notifications it publishes to the encrypted alert topic (an encrypted
 *   SNS topic drops a publisher's messages when the key refuses it), for this account's alarms only.
 */
export function clusterKeyPolicy(account: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AccountAdministersThroughIam",
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: ["kms:*"],
        Resource: "*",
      },
      {
        Sid: "CloudWatchAlarmsPublishToTheAlertTopic",
        Effect: "Allow",
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
        Resource: "*",
        Condition: { StringEquals: { "aws:SourceAccount": account } },
      },
    ],
  };
}

/**
 * `ssmPrefix`: this stack's parameters; `statusPrefix`: where nodes publish their state (below it).
 * `keyArn`: the cluster's KMS key, which encrypts the stack's SecureStrings and its backups.
 * PutMetricData takes no resource ARN: the `cloudwatch:namespace` condition keeps the nodes to ours.
 * `backup`: the cluster's backup bucket, whose prefix the nodes may write and read (backupNodeStatements).
 */
export function nodeRolePolicy(
  region: string,
  account: string,
  ssmPrefix: string,
  statusPrefix: string,
  keyArn: string,
  backup?: BackupAccess,
): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "SessionManager", Effect: "Allow", Action: SESSION_MANAGER_ACTIONS, Resource: "*" },
      {
        Sid: "ReadThisStacksParameters",
        Effect: "Allow",
        Action: ["ssm:GetParameter", "ssm:GetParameters"],
        Resource: parameterArnBelow(region, account, ssmPrefix),
      },
      ssmSecretsStatement(region, account, ssmPrefix, keyArn),
      {
        Sid: "PublishNodeStatus",
        Effect: "Allow",
        Action: ["ssm:PutParameter"],
        Resource: parameterArnBelow(region, account, statusPrefix),
      },
      {
        Sid: "PublishNodeMetrics",
        Effect: "Allow",
        Action: ["cloudwatch:PutMetricData"],
        Resource: "*",
        Condition: { StringEquals: { "cloudwatch:namespace": METRICS_NAMESPACE } },
      },
      ...(backup ? backupNodeStatements(region, account, backup.bucket, backup.prefix, keyArn) : []),
      ...(backup?.restoreFrom
        ? restoreSourceStatements(region, account, backup.bucket, backup.prefix, backup.restoreFrom)
        : []),
    ],
  };
}
