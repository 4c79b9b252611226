/**
 * The AWS services the endpoint stands in for, in one registry: each entry names its signing name, its IAM
 * action prefix, the protocol(s) it speaks and its actions. Adding a service or an action is adding an entry here;
 * the endpoint does authentication, routing, IAM, logging and the wire format for all of them.
 */
import { randomBytes } from "crypto";
import { ssmParameterArn } from "./iam";
import { accessDenied, AwsError } from "./protocols";
import type { EndpointConfig, EndpointState, MetricDatum, ParameterType, StoredParameter } from "./state";
import { MAX_METRICS } from "./state";

/** Who is calling: resolved from the access key the request was signed with. */
export interface Caller {
  accessKeyId: string;
  instanceId: string;
  instanceIp: string;
  role: string;
}

export interface ActionContext {
  config: EndpointConfig;
  state: EndpointState;
  caller: Caller;
  now: number;
  /** Authorizes `action` (full `service:Action`) on every resource, throwing AWS's AccessDenied on refusal. */
  authorize(action: string, resources: string[], conditionContext?: Record<string, string>): void;
  /** Persists state after a mutation. */
  changed(): void;
}

export type ActionHandler = (input: Record<string, unknown>, ctx: ActionContext) => unknown;

export interface ServiceDef {
  /** Service name in the SigV4 credential scope and the first label of the host name. */
  signingName: string;
  /** Prefix of IAM action names (CloudWatch signs as `monitoring` but authorizes `cloudwatch:*`). */
  iamPrefix: string;
  json?: { targetPrefix: string; version: "1.0" | "1.1" };
  query?: { xmlns: string };
  actions: Record<string, ActionHandler>;
}

// ------------------------------------------------------------------ input helpers

function str(input: Record<string, unknown>, field: string, required: true): string;
function str(input: Record<string, unknown>, field: string, required?: false): string | undefined;
function str(input: Record<string, unknown>, field: string, required = false): string | undefined {
  const v = input[field];
  if (v === undefined || v === null) {
    if (required) throw new AwsError("ValidationException", `1 validation error detected: ${field} must not be null`);
    return undefined;
  }
  if (typeof v !== "string") throw new AwsError("ValidationException", `${field} must be a string`);
  return v;
}

/** Query-protocol booleans arrive as "true"/"false" strings; JSON ones as booleans. */
function bool(input: Record<string, unknown>, field: string): boolean {
  const v = input[field];
  return v === true || v === "true";
}

function num(v: unknown): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n)) throw new AwsError("InvalidParameterValue", `not a number: ${JSON.stringify(v)}`);
  return n;
}

function list(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v.filter((x) => x !== undefined) : [v];
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

// ------------------------------------------------------------------ SSM Parameter Store

const PARAMETER_NAME = /^[a-zA-Z0-9_.\-/]{1,2048}$/;
const PARAMETER_TYPES: ParameterType[] = ["String", "SecureString", "StringList"];

function checkName(name: string): void {
  const bare = name.replace(/^\//, "");
  if (!PARAMETER_NAME.test(name) || /^(aws|ssm)/i.test(bare) || name.includes("//")) {
    throw new AwsError(
      "ValidationException",
      `Parameter name: can't be prefixed with "aws" or "ssm" (case-insensitive). If formed as a path, it can ` +
        `consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers ` +
        `and the following 3 symbols .-_`,
    );
  }
}

/** What a SecureString looks like without decryption: the base64 of a KMS ciphertext blob, never the value. */
export function fakeCiphertext(): string {
  // KMS symmetric ciphertext blobs start 01 02 02 00 78 ("AQICAHg" in base64); the rest is opaque.
  return Buffer.concat([Buffer.from([1, 2, 2, 0, 0x78]), randomBytes(150)]).toString("base64");
}

/** A KMS key's ARN (not an alias, a bare id or another account's key: the lab knows keys only by ARN). */
export function isKmsKeyArn(s: string): boolean {
  return /^arn:aws:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/.test(s);
}

/** The encryption context Parameter Store gives KMS for a parameter: its ARN under `PARAMETER_ARN`. */
function ssmEncryptionContext(ctx: ActionContext, name: string): Record<string, string> {
  return { PARAMETER_ARN: arn(ctx, name) };
}

/**
 * The condition keys KMS sees: the service that calls it for the caller (none when the caller calls KMS
 * itself), the caller's account and the encryption context.
 */
function kmsContext(ctx: ActionContext, encryptionContext: Record<string, string>, viaService?: string) {
  return {
    ...(viaService ? { "kms:ViaService": `${viaService}.${ctx.config.region}.amazonaws.com` } : {}),
    "kms:CallerAccount": ctx.config.account,
    ...Object.fromEntries(Object.entries(encryptionContext).map(([k, v]) => [`kms:EncryptionContext:${k}`, v])),
  };
}

function parameterOutput(ctx: ActionContext, name: string, p: StoredParameter, decrypt: boolean) {
  const hidden = p.type === "SecureString" && !decrypt;
  // SSM decrypts with the caller's rights: a customer key needs kms:Decrypt allowed through SSM, for this
  // parameter's ARN as encryption context (the aws/ssm key's own policy allows every principal of the account).
  if (p.type === "SecureString" && decrypt && p.keyId)
    ctx.authorize("kms:Decrypt", [p.keyId], kmsContext(ctx, ssmEncryptionContext(ctx, name), "ssm"));
  return {
    Name: name,
    Type: p.type,
    Value: hidden ? (p.ciphertext ?? fakeCiphertext()) : p.value,
    Version: p.version,
    LastModifiedDate: p.lastModified / 1000,
    ARN: ssmParameterArn(ctx.config.region, ctx.config.account, name),
    DataType: "text",
  };
}

function arn(ctx: ActionContext, name: string): string {
  return ssmParameterArn(ctx.config.region, ctx.config.account, name);
}

function notFound(name: string): AwsError {
  return new AwsError("ParameterNotFound", `Parameter ${name} not found.`);
}

const ssm: ServiceDef = {
  signingName: "ssm",
  iamPrefix: "ssm",
  json: { targetPrefix: "AmazonSSM", version: "1.1" },
  actions: {
    GetParameter(input, ctx) {
      const name = str(input, "Name", true);
      ctx.authorize("ssm:GetParameter", [arn(ctx, name)]);
      const p = ctx.state.parameters[name];
      if (!p) throw notFound(name);
      return { Parameter: parameterOutput(ctx, name, p, bool(input, "WithDecryption")) };
    },

    GetParameters(input, ctx) {
      const names = list(input.Names).map((n) => {
        if (typeof n !== "string") throw new AwsError("ValidationException", "Names must be strings");
        return n;
      });
      if (names.length < 1 || names.length > 10) {
        throw new AwsError(
          "ValidationException",
          `1 validation error detected: Value '[${names.join(", ")}]' at 'names' failed to satisfy constraint: ` +
            `Member must have length less than or equal to 10 and greater than or equal to 1`,
        );
      }
      // Every name is authorized on its own; one refusal refuses the whole call, as AWS does.
      ctx.authorize(
        "ssm:GetParameters",
        names.map((n) => arn(ctx, n)),
      );
      const decrypt = bool(input, "WithDecryption");
      const unique = [...new Set(names)];
      return {
        Parameters: unique
          .filter((n) => ctx.state.parameters[n])
          .map((n) => parameterOutput(ctx, n, ctx.state.parameters[n], decrypt)),
        InvalidParameters: unique.filter((n) => !ctx.state.parameters[n]),
      };
    },

    GetParametersByPath(input, ctx) {
      const path = str(input, "Path", true);
      if (!path.startsWith("/"))
        throw new AwsError(
          "ValidationException",
          'The parameter doesn\'t meet the parameter name requirements. The parameter name must begin with a forward slash "/".',
        );
      ctx.authorize("ssm:GetParametersByPath", [arn(ctx, path)]);
      const prefix = path.endsWith("/") ? path : `${path}/`;
      const recursive = bool(input, "Recursive");
      const decrypt = bool(input, "WithDecryption");
      const names = Object.keys(ctx.state.parameters)
        .filter((n) => n.startsWith(prefix) && (recursive || !n.slice(prefix.length).includes("/")))
        .sort();
      return { Parameters: names.map((n) => parameterOutput(ctx, n, ctx.state.parameters[n], decrypt)) };
    },

    PutParameter(input, ctx) {
      const name = str(input, "Name", true);
      const value = str(input, "Value", true);
      const type = str(input, "Type") as ParameterType | undefined;
      checkName(name);
      ctx.authorize("ssm:PutParameter", [arn(ctx, name)]);
      if (type !== undefined && !PARAMETER_TYPES.includes(type)) {
        throw new AwsError(
          "ValidationException",
          `1 validation error detected: Value '${type}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]`,
        );
      }
      if (value.length === 0 || value.length > 4096) {
        throw new AwsError(
          "ValidationException",
          "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length between 1 and 4096",
        );
      }
      const existing = ctx.state.parameters[name] as StoredParameter | undefined;
      if (existing && !bool(input, "Overwrite")) {
        throw new AwsError(
          "ParameterAlreadyExists",
          "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
        );
      }
      const finalType = type ?? existing?.type ?? "String";
      // Without a KeyId a SecureString goes under the account's aws/ssm key; with one, SSM encrypts with the
      // caller's rights (kms:Encrypt through SSM). The lab knows keys by ARN only and refuses anything else.
      const keyId = finalType === "SecureString" ? str(input, "KeyId") : undefined;
      if (keyId !== undefined) {
        if (!isKmsKeyArn(keyId))
          throw new AwsError("ValidationException", `KeyId ${keyId}: the lab's endpoint takes KMS key ARNs only`);
        ctx.authorize("kms:Encrypt", [keyId], kmsContext(ctx, ssmEncryptionContext(ctx, name), "ssm"));
      }
      const next: StoredParameter = {
        type: finalType,
        value,
        version: (existing?.version ?? 0) + 1,
        lastModified: ctx.now,
        description: str(input, "Description") ?? existing?.description,
        ciphertext: finalType === "SecureString" ? fakeCiphertext() : undefined,
        keyId,
      };
      ctx.state.parameters[name] = next;
      ctx.changed();
      return { Version: next.version, Tier: "Standard" };
    },

    DeleteParameter(input, ctx) {
      const name = str(input, "Name", true);
      ctx.authorize("ssm:DeleteParameter", [arn(ctx, name)]);
      if (!ctx.state.parameters[name]) throw notFound(name);
      delete ctx.state.parameters[name];
      ctx.changed();
      return {};
    },
  },
};

// ------------------------------------------------------------------ KMS

/**
 * KMS Decrypt of a SecureString's ciphertext (what GetParameter without decryption returns), as a principal
 * would try it outside SSM: authorized on the parameter's key with the request's own encryption context and
 * no kms:ViaService. A ciphertext under aws/ssm is refused to everyone: that key's policy allows its use only
 * through SSM. The lab's ciphertexts are opaque, so the key and plaintext come from the parameter that holds
 * the blob; a wrong encryption context fails as KMS fails it (InvalidCiphertextException).
 */
const kms: ServiceDef = {
  signingName: "kms",
  iamPrefix: "kms",
  json: { targetPrefix: "TrentService", version: "1.1" },
  actions: {
    Decrypt(input, ctx) {
      const blob = str(input, "CiphertextBlob", true);
      const context = Object.fromEntries(
        Object.entries(record(input.EncryptionContext)).map(([k, v]) => [k, typeof v === "string" ? v : ""]),
      );
      const found = Object.entries(ctx.state.parameters).find(
        ([, p]) => p.ciphertext !== undefined && p.ciphertext === blob,
      );
      if (!found) throw new AwsError("InvalidCiphertextException", "");
      const [name, p] = found;
      const keyArn = p.keyId ?? `arn:aws:kms:${ctx.config.region}:${ctx.config.account}:alias/aws/ssm`;
      if (!p.keyId)
        throw accessDenied(
          "json",
          `User: ${callerArn(ctx.config.account, ctx.caller)} is not authorized to perform: kms:Decrypt on resource: ${keyArn} because the AWS managed key aws/ssm allows its use only through SSM`,
        );
      ctx.authorize("kms:Decrypt", [keyArn], kmsContext(ctx, context));
      const wanted = ssmEncryptionContext(ctx, name);
      const same =
        Object.keys(context).length === Object.keys(wanted).length &&
        Object.entries(wanted).every(([k, v]) => context[k] === v);
      if (!same) throw new AwsError("InvalidCiphertextException", "");
      return {
        KeyId: keyArn,
        Plaintext: Buffer.from(p.value, "utf8").toString("base64"),
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
  },
};

// ------------------------------------------------------------------ CloudWatch metrics

function metricDatum(raw: unknown, namespace: string, ctx: ActionContext): MetricDatum {
  const d = record(raw);
  const metricName = str(d, "MetricName", true);
  const stats = record(d.StatisticValues);
  const sampleCount = num(stats.SampleCount);
  return {
    receivedAt: ctx.now,
    sourceIp: ctx.caller.instanceIp,
    instanceId: ctx.caller.instanceId,
    namespace,
    metricName,
    dimensions: list(d.Dimensions).map((x) => {
      const dim = record(x);
      return { name: str(dim, "Name", true), value: str(dim, "Value", true) };
    }),
    value: num(d.Value),
    values: d.Values === undefined ? undefined : list(d.Values).map((v) => num(v) ?? 0),
    counts: d.Counts === undefined ? undefined : list(d.Counts).map((v) => num(v) ?? 0),
    statisticValues:
      sampleCount === undefined
        ? undefined
        : { sampleCount, sum: num(stats.Sum) ?? 0, minimum: num(stats.Minimum) ?? 0, maximum: num(stats.Maximum) ?? 0 },
    unit: str(d, "Unit"),
    timestamp:
      d.Timestamp === undefined
        ? undefined
        : typeof d.Timestamp === "string"
          ? d.Timestamp
          : JSON.stringify(d.Timestamp),
    storageResolution: num(d.StorageResolution),
  };
}

const cloudwatch: ServiceDef = {
  signingName: "monitoring",
  iamPrefix: "cloudwatch",
  query: { xmlns: "http://monitoring.amazonaws.com/doc/2010-08-01/" },
  // Newer SDKs speak JSON 1.0 to CloudWatch; accepting it costs nothing.
  json: { targetPrefix: "GraniteServiceVersion20100801", version: "1.0" },
  actions: {
    PutMetricData(input, ctx) {
      const namespace = str(input, "Namespace", true);
      if (namespace.startsWith("AWS/")) {
        throw new AwsError("InvalidParameterValue", "The value AWS/ for parameter Namespace is invalid.");
      }
      ctx.authorize("cloudwatch:PutMetricData", ["*"], { "cloudwatch:namespace": namespace });
      const data = list(input.MetricData).map((d) => metricDatum(d, namespace, ctx));
      if (data.length === 0) throw new AwsError("MissingParameter", "The parameter MetricData is required.");
      ctx.state.metrics.push(...data);
      if (ctx.state.metrics.length > MAX_METRICS) ctx.state.metrics.splice(0, ctx.state.metrics.length - MAX_METRICS);
      ctx.changed();
      return undefined;
    },
  },
};

// ------------------------------------------------------------------ STS

const sts: ServiceDef = {
  signingName: "sts",
  iamPrefix: "sts",
  query: { xmlns: "https://sts.amazonaws.com/doc/2011-06-15/" },
  actions: {
    // AWS answers GetCallerIdentity for any valid credentials, whatever the policies say.
    GetCallerIdentity(_input, ctx) {
      const { role, instanceId } = ctx.caller;
      return {
        UserId: `AROA${roleIdSuffix(role)}:${instanceId}`,
        Account: ctx.config.account,
        Arn: `arn:aws:sts::${ctx.config.account}:assumed-role/${role}/${instanceId}`,
      };
    },
  },
};

/** A stable, role-derived unique-id suffix in AWS's shape (upper-case alphanumerics). */
function roleIdSuffix(role: string): string {
  let h = 0;
  for (const ch of role) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h.toString(36).toUpperCase().padStart(17, "X").slice(0, 17);
}

/** S3 speaks REST, not JSON or query: the endpoint hands its requests to s3.ts, so it has no actions here. */
const s3: ServiceDef = { signingName: "s3", iamPrefix: "s3", actions: {} };

export const SERVICES: ServiceDef[] = [ssm, cloudwatch, sts, s3, kms];

export function serviceBySigningName(name: string): ServiceDef | undefined {
  return SERVICES.find((s) => s.signingName === name);
}

export function serviceByTarget(prefix: string): ServiceDef | undefined {
  return SERVICES.find((s) => s.json?.targetPrefix === prefix);
}

/** The principal ARN AWS names in AccessDenied messages for an instance-profile session. */
export function callerArn(account: string, caller: Caller): string {
  return `arn:aws:sts::${account}:assumed-role/${caller.role}/${caller.instanceId}`;
}
