/**
 * The endpoint's configuration (read once) and mutable state (instances, roles, parameters, issued credentials,
 * metrics, apt reachability), persisted to DIR/state.json with write-to-temp-then-rename so a crash or a kill
 * never leaves a half-written file and a restarted endpoint keeps what the nodes wrote.
 */
import * as fs from "fs";
import * as path from "path";
import type { PolicyDocument } from "./iam";

export interface EndpointConfig {
  /** Address of the HTTPS API and the apt mirror stand-in (the lab's `<subnet>.2`). */
  listen: string;
  /** Address of the instance metadata service (169.254.169.254 in a lab namespace). */
  imdsListen: string;
  imdsPort: number;
  httpsPort: number;
  /** Plain-HTTP API port (S3 only, as AWS serves S3 over HTTP too; bucket policies see aws:SecureTransport false). */
  httpPort?: number;
  aptPort: number;
  region: string;
  account: string;
  /** Server certificate for the service host names, signed by the lab CA the hosts trust. */
  tls: { certPem: string; keyPem: string };
  /** Static files served over plain HTTP on listen:aptPort; null disables the apt server. */
  aptRepoDir: string | null;
}

export interface InstanceSpec {
  instanceId: string;
  az: string;
  instanceType: string;
  /** Role of the instance profile; empty when the instance has none. */
  role: string;
  hostname?: string;
}

export type ParameterType = "String" | "SecureString" | "StringList";

export interface StoredParameter {
  type: ParameterType;
  value: string;
  version: number;
  /** Epoch ms. */
  lastModified: number;
  description?: string;
  /** What a SecureString reads as without decryption (opaque, generated per version; never the value). */
  ciphertext?: string;
  /**
   * A SecureString's customer-managed KMS key (its ARN): reading it decrypted needs the caller allowed
   * kms:Decrypt on it through SSM. Undefined: the account's aws/ssm key, whose policy lets every principal of
   * the account decrypt through SSM.
   */
  keyId?: string;
}

/** Temporary credentials the endpoint issued to one instance through IMDS. */
export interface IssuedCredentials {
  secretAccessKey: string;
  sessionToken: string;
  /** Epoch ms. */
  issuedAt: number;
  expiresAt: number;
  instanceIp: string;
  instanceId: string;
  role: string;
}

export interface MetricDatum {
  receivedAt: number;
  sourceIp: string;
  instanceId?: string;
  namespace: string;
  metricName: string;
  dimensions: { name: string; value: string }[];
  value?: number;
  values?: number[];
  counts?: number[];
  statisticValues?: { sampleCount: number; sum: number; minimum: number; maximum: number };
  unit?: string;
  timestamp?: string;
  storageResolution?: number;
}

/** One object version's bytes live in DIR/s3/<file>; the state keeps what S3 would answer about it. */
export interface StoredObject {
  file: string;
  size: number;
  /** As S3 quotes it: the MD5 hex of a single PUT, `md5-of-part-md5s-N` of a multipart upload. */
  etag: string;
  lastModified: number;
  versionId: string;
  contentType: string;
  /** The KMS key the object was encrypted with (the bucket's default encryption at upload time). */
  kmsKeyArn?: string;
}

export interface BucketState {
  /** The bucket policy, enforced with the caller's identity policies. */
  policy?: PolicyDocument;
  /** Default encryption: SSE-KMS with this key, whose use the caller must be allowed (through S3). */
  kmsKeyArn?: string;
  versioning: boolean;
  /** Current version of each key. */
  objects: Record<string, StoredObject>;
  /** Versions replaced while versioning was on, newest last (kept as S3 keeps them). */
  noncurrent: Record<string, StoredObject[]>;
}

export interface MultipartUpload {
  bucket: string;
  key: string;
  initiated: number;
  kmsKeyArn?: string;
  contentType: string;
  parts: Record<string, { file: string; size: number; md5: string }>;
}

export interface EndpointState {
  instances: Record<string, InstanceSpec>;
  roles: Record<string, { policies: PolicyDocument[] }>;
  parameters: Record<string, StoredParameter>;
  credentials: Record<string, IssuedCredentials>;
  metrics: MetricDatum[];
  apt: { reachable: boolean };
  buckets: Record<string, BucketState>;
  uploads: Record<string, MultipartUpload>;
}

/** Metrics are kept for tests to inspect, not forever: the oldest go once this many are stored. */
export const MAX_METRICS = 10_000;

export function emptyState(): EndpointState {
  return {
    instances: {},
    roles: {},
    parameters: {},
    credentials: {},
    metrics: [],
    apt: { reachable: true },
    buckets: {},
    uploads: {},
  };
}

export const statePath = (dir: string): string => path.join(dir, "state.json");
export const configPath = (dir: string): string => path.join(dir, "config.json");
export const controlSocketPath = (dir: string): string => path.join(dir, "control.sock");
export const requestLogPath = (dir: string): string => path.join(dir, "requests.log");
export const pidPath = (dir: string): string => path.join(dir, "endpoint.pid");
export const endpointLogPath = (dir: string): string => path.join(dir, "endpoint.log");
/** Where object and part bytes are kept (state.json only describes them). */
export const objectDir = (dir: string): string => path.join(dir, "s3");

/** Loads state.json, filling in sections an older file lacks; a missing file is an empty state. */
export function loadState(dir: string): EndpointState {
  const file = statePath(dir);
  if (!fs.existsSync(file)) return emptyState();
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<EndpointState>;
  return { ...emptyState(), ...raw };
}

/** Writes atomically: a reader (or a restart) sees the old file or the new one, never a torn one. */
export function saveState(dir: string, state: EndpointState): void {
  writeFileAtomic(statePath(dir), JSON.stringify(state, null, 1), 0o600);
}

export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w", mode);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function need<T>(cond: T, what: string): asserts cond {
  if (!cond) throw new Error(`config.json: ${what}`);
}

/** Reads and checks DIR/config.json; errors name the offending field so a broken lab fails at start-up. */
export function loadConfig(dir: string): EndpointConfig {
  const c = JSON.parse(fs.readFileSync(configPath(dir), "utf8")) as Partial<EndpointConfig>;
  need(typeof c.listen === "string" && c.listen, "listen (address) is required");
  need(typeof c.imdsListen === "string" && c.imdsListen, "imdsListen (address) is required");
  need(c.httpPort === undefined || (Number.isInteger(c.httpPort) && c.httpPort > 0), "httpPort must be a port number");
  for (const p of ["imdsPort", "httpsPort", "aptPort"] as const) {
    const v = c[p];
    need(typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 65536, `${p} must be a port number`);
  }
  need(typeof c.region === "string" && /^[a-z]{2}(-[a-z]+)+-\d$/.test(c.region), "region must be like us-east-1");
  need(typeof c.account === "string" && /^\d{12}$/.test(c.account), "account must be 12 digits");
  need(c.tls && typeof c.tls.certPem === "string" && typeof c.tls.keyPem === "string", "tls.certPem/keyPem required");
  need(c.aptRepoDir === null || c.aptRepoDir === undefined || typeof c.aptRepoDir === "string", "aptRepoDir");
  return { ...(c as EndpointConfig), aptRepoDir: c.aptRepoDir ?? null };
}
