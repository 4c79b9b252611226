/**
 * Instance Metadata Service v2, per instance by source IP. The stack launches instances with HttpTokens=required,
 * so every GET needs a session token obtained with `PUT /latest/api/token` (TTL 1-21600 s), exactly the sequence
 * botocore's InstanceMetadataFetcher and cloud-init follow. Unknown source addresses get 404, like an address that
 * is not an instance would (there is no such thing on EC2; in the lab it flags a host the lead forgot to register).
 */
import { randomBytes } from "crypto";
import type { EndpointConfig, InstanceSpec, IssuedCredentials } from "./state";

export const MAX_TOKEN_TTL_S = 21600;

/** A metadata tree: directories are objects, files are strings or functions (evaluated only when read). */
export type MetadataNode = string | (() => string) | { [name: string]: MetadataNode };

export interface ImdsAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** For the request log. */
  action: string;
  resource: string;
  decision: "allow" | "deny" | "error";
}

export interface ImdsDeps {
  config: EndpointConfig;
  instance(ip: string): InstanceSpec | undefined;
  /** Current credentials of the instance's role, issued (and persisted) by the endpoint when needed. */
  credentials(ip: string): { accessKeyId: string; creds: IssuedCredentials };
  now(): number;
}

/** The default EC2 host names: `ip-10-77-0-11.ec2.internal` in us-east-1, `ip-....<region>.compute.internal` else. */
export function defaultHostname(ip: string, region: string): string {
  const domain = region === "us-east-1" ? "ec2.internal" : `${region}.compute.internal`;
  return `ip-${ip.replace(/\./g, "-")}.${domain}`;
}

/** ISO-8601 without milliseconds, the format IMDS uses for LastUpdated and Expiration. */
export function imdsTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function fakeId(prefix: string, seed: string): string {
  let h = 2166136261;
  for (const ch of seed) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return prefix + h.toString(36).toUpperCase().padStart(17, "0").slice(0, 17);
}

export function metadataTree(ip: string, inst: InstanceSpec, deps: ImdsDeps): MetadataNode {
  const { region, account } = deps.config;
  const hostname = inst.hostname ?? defaultHostname(ip, region);
  const mac = `02:00:${ip
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join(":")}`;
  const role = inst.role;
  const profileArn = `arn:aws:iam::${account}:instance-profile/${role}`;
  const iam: Record<string, MetadataNode> = {
    info: () =>
      JSON.stringify(
        {
          Code: "Success",
          LastUpdated: imdsTime(deps.now()),
          InstanceProfileArn: profileArn,
          InstanceProfileId: fakeId("AIPA", profileArn),
        },
        null,
        2,
      ),
    "security-credentials": {
      [role]: () => {
        const { accessKeyId, creds } = deps.credentials(ip);
        return JSON.stringify(
          {
            Code: "Success",
            LastUpdated: imdsTime(creds.issuedAt),
            Type: "AWS-HMAC",
            AccessKeyId: accessKeyId,
            SecretAccessKey: creds.secretAccessKey,
            Token: creds.sessionToken,
            Expiration: imdsTime(creds.expiresAt),
          },
          null,
          2,
        );
      },
    },
  };
  const document = () =>
    JSON.stringify(
      {
        accountId: account,
        architecture: "x86_64",
        availabilityZone: inst.az,
        billingProducts: null,
        devpayProductCodes: null,
        marketplaceProductCodes: null,
        imageId: "ami-0123456789abcdef0",
        instanceId: inst.instanceId,
        instanceType: inst.instanceType,
        kernelId: null,
        pendingTime: imdsTime(deps.now()),
        privateIp: ip,
        ramdiskId: null,
        region,
        version: "2017-09-30",
      },
      null,
      2,
    );
  const metaData: Record<string, MetadataNode> = {
    "ami-id": "ami-0123456789abcdef0",
    hostname,
    "instance-id": inst.instanceId,
    "instance-type": inst.instanceType,
    "local-hostname": hostname,
    "local-ipv4": ip,
    mac,
    placement: { "availability-zone": inst.az, region },
    services: { domain: "amazonaws.com", partition: "aws" },
  };
  // An instance without a profile has no iam/ directory at all, as on EC2.
  if (role) metaData.iam = iam;
  return {
    "meta-data": metaData,
    dynamic: { "instance-identity": { document } },
  };
}

/** Resolves `meta-data/placement/` in a tree: a file's content, a directory's listing, or undefined (404). */
export function lookup(tree: MetadataNode, relPath: string): string | undefined {
  let node: MetadataNode = tree;
  for (const seg of relPath.split("/").filter((s) => s.length > 0)) {
    if (typeof node !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
    node = node[seg];
  }
  if (typeof node === "string") return node;
  if (typeof node === "function") return node();
  return Object.entries(node)
    .map(([k, v]) => (typeof v === "object" ? `${k}/` : k))
    .join("\n");
}

const TEXT = { "content-type": "text/plain" };

/** IMDSv2 session tokens: opaque, bound to the instance address that asked, expiring after their TTL. */
export class Imds {
  private readonly tokens = new Map<string, { ip: string; expiresAt: number }>();

  constructor(private readonly deps: ImdsDeps) {}

  handle(
    method: string,
    rawUrl: string,
    headers: Record<string, string | string[] | undefined>,
    ip: string,
  ): ImdsAnswer {
    const path = rawUrl.split("?")[0];
    const answer = (status: number, body: string, decision: ImdsAnswer["decision"], action: string, extra = {}) => ({
      status,
      headers: { ...TEXT, ...extra },
      body,
      action,
      resource: path,
      decision,
    });
    const inst = this.deps.instance(ip);
    if (!inst) return answer(404, "Not Found", "deny", method);

    if (path === "/latest/api/token") {
      if (method !== "PUT") return answer(405, "Method Not Allowed", "error", method);
      // A proxied request is how SSRF reaches IMDS; AWS refuses tokens to anything carrying X-Forwarded-For.
      if (headers["x-forwarded-for"] !== undefined) return answer(403, "Forbidden", "deny", "GetToken");
      const ttlRaw = headers["x-aws-ec2-metadata-token-ttl-seconds"];
      const ttl = typeof ttlRaw === "string" && /^\d+$/.test(ttlRaw.trim()) ? Number(ttlRaw) : NaN;
      if (!(ttl >= 1 && ttl <= MAX_TOKEN_TTL_S)) return answer(400, "Bad Request", "error", "GetToken");
      const token = randomBytes(42).toString("base64");
      this.pruneTokens();
      this.tokens.set(token, { ip, expiresAt: this.deps.now() + ttl * 1000 });
      return answer(200, token, "allow", "GetToken", { "x-aws-ec2-metadata-token-ttl-seconds": String(ttl) });
    }

    if (method !== "GET" && method !== "HEAD") return answer(405, "Method Not Allowed", "error", method);
    const token = headers["x-aws-ec2-metadata-token"];
    const session = typeof token === "string" ? this.tokens.get(token) : undefined;
    if (!session || session.ip !== ip || session.expiresAt <= this.deps.now()) {
      return answer(401, "Unauthorized", "deny", "GetMetadata");
    }
    if (path === "/" || path === "") return answer(200, "latest", "allow", "GetMetadata");
    if (!path.startsWith("/latest/") && path !== "/latest") return answer(404, "Not Found", "error", "GetMetadata");
    const content = lookup(metadataTree(ip, inst, this.deps), path.slice("/latest".length));
    if (content === undefined) return answer(404, "Not Found", "error", "GetMetadata");
    return answer(200, content, "allow", "GetMetadata");
  }

  private pruneTokens(): void {
    const now = this.deps.now();
    for (const [t, s] of this.tokens) if (s.expiresAt <= now) this.tokens.delete(t);
  }
}
