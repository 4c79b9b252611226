/**
 * IAM identity-policy evaluation, as AWS does it for a single principal with no resource policies, permission
 * boundaries or SCPs: an explicit Deny in any statement wins, then any Allow, otherwise the call is implicitly denied.
 *
 * Pure: no I/O. It fails closed on what it cannot judge: an Allow whose Condition it cannot evaluate does not
 * match (the lab never grants what the policy grants only conditionally), and a Deny whose Condition it cannot
 * evaluate denies (AWS might well deny, so the lab does); both are reported through `onUnsupported`.
 */

export type Effect = "Allow" | "Deny";

/** One statement, as found in a policy document (every field is optional or loosely typed in the wild). */
export interface PolicyStatement {
  Sid?: string;
  Effect?: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
  /** Resource policies only (an S3 bucket policy): who the statement is about. */
  Principal?: "*" | { AWS?: string | string[]; Service?: string | string[] };
}

export interface PolicyDocument {
  Version?: string;
  Statement?: PolicyStatement | PolicyStatement[];
}

/** What is being asked: `service:Action`, one resource ARN, and condition keys (lower-cased names). */
export interface AuthzRequest {
  action: string;
  resource: string;
  context?: Record<string, string>;
}

export type Decision = "allow" | "explicitDeny" | "implicitDeny";

export interface AuthzResult {
  decision: Decision;
  /** Sid (or index) of the statement that decided, for logs and tests. */
  statement?: string;
}

/** The condition operators this evaluator understands; any other operator makes its statement not match. */
const SUPPORTED_OPERATORS = new Set(["StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "Bool"]);

function asList(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v : [v];
}

/** Compiles an IAM wildcard pattern (`*` any run, `?` one character) to an anchored regular expression. */
export function wildcardToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  let src = "";
  for (const ch of pattern) {
    if (ch === "*") src += "[\\s\\S]*";
    else if (ch === "?") src += "[\\s\\S]";
    else src += ch.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  }
  return new RegExp(`^${src}$`, caseInsensitive ? "i" : "");
}

/** Action names are case-insensitive in IAM (`ssm:getparameter` matches `ssm:GetParameter`). */
export function actionMatches(pattern: string, action: string): boolean {
  return wildcardToRegExp(pattern, true).test(action);
}

/** Resource ARNs are case-sensitive, wildcards included. */
export function resourceMatches(pattern: string, resource: string): boolean {
  return wildcardToRegExp(pattern, false).test(resource);
}

/** Parses policies given either as JSON text (as the stack renders them) or as objects. */
export function parsePolicies(policies: (string | PolicyDocument)[]): PolicyDocument[] {
  return policies.map((p) => (typeof p === "string" ? (JSON.parse(p) as PolicyDocument) : p));
}

function statementsOf(doc: PolicyDocument): PolicyStatement[] {
  if (doc.Statement === undefined) return [];
  return Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
}

function actionApplies(st: PolicyStatement, action: string): boolean {
  const actions = asList(st.Action);
  const notActions = asList(st.NotAction);
  if (actions) return actions.some((p) => actionMatches(p, action));
  if (notActions) return !notActions.some((p) => actionMatches(p, action));
  return false; // a statement with neither is invalid and IAM would have refused it; never let it match
}

function resourceApplies(st: PolicyStatement, resource: string): boolean {
  const resources = asList(st.Resource);
  const notResources = asList(st.NotResource);
  if (resources) return resources.some((p) => resourceMatches(p, resource));
  if (notResources) return !notResources.some((p) => resourceMatches(p, resource));
  return false; // identity policies require Resource or NotResource
}

/**
 * Evaluates a Condition block. Returns undefined when it uses an operator this module does not implement, so
 * the caller can treat the statement as not matching rather than guess. Keys compare case-insensitively, values
 * case-sensitively, as AWS does for the String operators; a key missing from the context fails positive operators
 * and satisfies negated ones (AWS's behaviour without ...IfExists).
 */
export function conditionHolds(
  condition: Record<string, Record<string, string | string[]>>,
  context: Record<string, string>,
): boolean | undefined {
  const ctx = new Map(Object.entries(context).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [operator, block] of Object.entries(condition)) {
    if (!SUPPORTED_OPERATORS.has(operator)) return undefined;
    for (const [key, raw] of Object.entries(block)) {
      const wanted = asList(raw) ?? [];
      const actual = ctx.get(key.toLowerCase());
      const like = operator === "StringLike" || operator === "StringNotLike";
      // Bool compares "true"/"false" without regard to case; a key the request lacks matches nothing.
      const same = (w: string) => (operator === "Bool" ? w.toLowerCase() === actual?.toLowerCase() : w === actual);
      const anyMatch =
        actual !== undefined && wanted.some((w) => (like ? wildcardToRegExp(w, false).test(actual) : same(w)));
      const negated = operator === "StringNotEquals" || operator === "StringNotLike";
      if (negated ? anyMatch : !anyMatch) return false;
    }
  }
  return true;
}

/** Describes a statement's unsupported Condition once per distinct text, for the caller's warning log. */
function describeUnsupported(st: PolicyStatement): string {
  const treated = st.Effect === "Deny" ? "denies (fails closed)" : "treated as not matching";
  return `statement ${st.Sid ?? "(no Sid)"} (${st.Effect}) has an unsupported Condition ${JSON.stringify(st.Condition)}; ${treated}`;
}

/**
 * Evaluates identity policies for one action on one resource.
 * `onUnsupported` is told about statements skipped because of their Condition (the caller dedupes warnings).
 */
export function authorize(
  policies: PolicyDocument[],
  req: AuthzRequest,
  onUnsupported?: (message: string) => void,
): AuthzResult {
  let allowedBy: string | undefined;
  for (const doc of policies) {
    for (const [i, st] of statementsOf(doc).entries()) {
      if (st.Effect !== "Allow" && st.Effect !== "Deny") continue;
      if (!actionApplies(st, req.action) || !resourceApplies(st, req.resource)) continue;
      const id = st.Sid ?? `#${i}`;
      if (st.Condition !== undefined) {
        const holds = conditionHolds(st.Condition, req.context ?? {});
        if (holds === undefined) {
          onUnsupported?.(describeUnsupported(st));
          // A Deny that might apply is a Deny: the evaluator never lets through what AWS could refuse.
          if (st.Effect === "Deny") return { decision: "explicitDeny", statement: `${id} (condition not evaluated)` };
          continue;
        }
        if (!holds) continue;
      }
      // The first explicit Deny ends evaluation: nothing can override it.
      if (st.Effect === "Deny") return { decision: "explicitDeny", statement: id };
      allowedBy ??= id;
    }
  }
  return allowedBy === undefined ? { decision: "implicitDeny" } : { decision: "allow", statement: allowedBy };
}

/** Authorizes several resources for one action: AWS refuses the whole call when any one of them is refused. */
export function authorizeAll(
  policies: PolicyDocument[],
  action: string,
  resources: string[],
  context?: Record<string, string>,
  onUnsupported?: (message: string) => void,
): { ok: true } | { ok: false; resource: string; result: AuthzResult } {
  for (const resource of resources) {
    const result = authorize(policies, { action, resource, context }, onUnsupported);
    if (result.decision !== "allow") return { ok: false, resource, result };
  }
  return { ok: true };
}

/** The ARN AWS authorizes SSM parameter calls against: `parameter` + the name, with a `/` added when missing. */
export function ssmParameterArn(region: string, account: string, name: string): string {
  return `arn:aws:ssm:${region}:${account}:parameter${name.startsWith("/") ? "" : "/"}${name}`;
}

/**
 * A resource policy's statements that name this caller: `"*"`, or `AWS` listing `*` or one of `principals` (the
 * role's ARN, its session's ARN). An account principal (`arn:aws:iam::ACCOUNT:root`) in an Allow only delegates to
 * the account's identity policies, so it grants nothing by itself; in a Deny it applies to everyone in the account.
 */
export function statementsForPrincipal(policy: PolicyDocument, principals: string[], account: string): PolicyDocument {
  const named = (st: PolicyStatement): boolean => {
    if (st.Principal === "*") return true;
    const aws = asList(st.Principal?.AWS) ?? [];
    if (aws.includes("*") || aws.some((p) => principals.includes(p))) return true;
    const accountWide = aws.includes(account) || aws.includes(`arn:aws:iam::${account}:root`);
    return accountWide && st.Effect === "Deny";
  };
  return { Version: policy.Version, Statement: statementsOf(policy).filter(named) };
}

/**
 * Identity policies and one resource policy (an S3 bucket policy) in the same account, as AWS combines them:
 * an explicit Deny in either refuses, an Allow in either grants, otherwise the call is implicitly denied.
 */
export function authorizeWithResourcePolicy(
  identity: PolicyDocument[],
  resourcePolicy: PolicyDocument | undefined,
  req: AuthzRequest,
  onUnsupported?: (message: string) => void,
): AuthzResult {
  const id = authorize(identity, req, onUnsupported);
  const res = resourcePolicy ? authorize([resourcePolicy], req, onUnsupported) : { decision: "implicitDeny" as const };
  if (id.decision === "explicitDeny") return id;
  if (res.decision === "explicitDeny") return { ...res, statement: `bucket policy ${res.statement ?? ""}`.trim() };
  if (id.decision === "allow") return id;
  if (res.decision === "allow") return { ...res, statement: `bucket policy ${res.statement ?? ""}`.trim() };
  return { decision: "implicitDeny" };
}
