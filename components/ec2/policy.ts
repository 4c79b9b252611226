/**
 * The shape of the AWS policy documents the stack renders: the node role's identity policy (iam.ts) and the
 * backup bucket's resource policy (backups.ts). Types only.
 */

/**
 * The condition operators the stack's policies use. The lab's AWS endpoint evaluates exactly these (an
 * operator it does not know fails closed), so the compiler keeps every policy the lab can judge.
 */
export type ConditionOperator = "StringEquals" | "StringNotEquals" | "StringLike" | "StringNotLike" | "Bool";

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  /** Resource policies only (a bucket policy): whom the statement is about. */
  Principal?: "*" | { AWS?: string | string[]; Service?: string | string[] };
  Action: string[];
  Resource: string | string[];
  Condition?: Partial<Record<ConditionOperator, Record<string, string | string[]>>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}
