/**
 * The node role's permissions, as one pure policy document: the component attaches it, and the lab's AWS
 * endpoint enforces the very same document, so a test can prove what a node may and may not read.
 *
 * No AWS-managed policy: AmazonSSMManagedInstanceCore grants ssm:GetParameter(s) on "*" (and parameters
 * encrypted with the aws/ssm key need no KMS grant), so with it any node could read every stack's
 * passwords and TLS keys in the account.
 */

import { METRICS_NAMESPACE } from "../monitoring/metrics";
import { backupNodeStatements, restoreSourceStatements } from "./backups";
import type { PolicyDocument } from "./policy";

export type { ConditionOperator, PolicyDocument, PolicyStatement } from "./policy";

/** Where a node may write and read its backups (components/ec2/backups.ts): the bucket, the prefix, the key. */
export interface BackupAccess {
  /** The bucket's name (not its ARN). */
  bucket: string;
  /** The cluster's prefix in it (backupObjectPrefix): no leading or trailing slash. */
  prefix: string;
  /** The ARN of the KMS key the bucket encrypts with. */
  kmsKeyArn: string;
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
 * `ssmPrefix`: this stack's parameters; `statusPrefix`: where nodes publish their state (below it).
 * PutMetricData takes no resource ARN: the `cloudwatch:namespace` condition keeps the nodes to ours.
 * `backup`: the cluster's backup bucket, whose prefix the nodes may write and read (backupNodeStatements).
 */
export function nodeRolePolicy(
  region: string,
  account: string,
  ssmPrefix: string,
  statusPrefix: string,
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
      ...(backup ? backupNodeStatements(region, account, backup.bucket, backup.prefix, backup.kmsKeyArn) : []),
      ...(backup?.restoreFrom
        ? restoreSourceStatements(region, account, backup.bucket, backup.prefix, backup.restoreFrom)
        : []),
    ],
  };
}
