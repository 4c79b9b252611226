/**
 * The output contract apps deploy against, identical for both targets (docs/architecture.md).
 * `connectionContract` is pure (also used by the local mode); `connectionOutputs` wraps it in
 * Pulumi outputs and marks the URL and the env map secret. Besides the contract, a stack exports where an
 * app must run to reach the database (`ReachabilityOutputs`).
 */
import * as pulumi from "@pulumi/pulumi";
import { ClientSettings, Target } from "../config/settings";

export interface ConnectionFacts {
  target: Target;
  /** `host:port` of every node, masters first, or the single cloud endpoint. */
  nodes: string[];
  username: string;
  password: string;
  tls: boolean;
  clusterMode: boolean;
  /** PEM of the CA that signed the servers' certificates (with TLS): the stack's own (EC2) or Redis Cloud's. */
  caCertificate?: string;
  client: ClientSettings;
  /** The Sentinel topology: the name apps ask for and every Sentinel's `host:port`. */
  sentinel?: { masterName: string; sentinels: string[] };
}

/** The env names apps read. */
export const ENV_NAMES = [
  "REDIS_URL",
  "REDIS_CLUSTER_MODE",
  "REDIS_CLUSTER_NODES",
  "REDIS_TLS",
  "REDIS_MAX_RETRIES",
  "REDIS_CONNECT_TIMEOUT",
  "REDIS_CA_PEM",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
] as const;
export type EnvName = (typeof ENV_NAMES)[number];

/**
 * Names present only sometimes (absent, never empty, otherwise): REDIS_CA_PEM exactly when TLS is on; the
 * REDIS_SENTINEL* pair exactly with the Sentinel topology.
 */
export const CONDITIONAL_ENV_NAMES = [
  "REDIS_CA_PEM",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
] as const satisfies readonly EnvName[];

/** The env map apps get: every name of ENV_NAMES, the conditional ones optional. */
export type ContractEnv = { [K in Exclude<EnvName, (typeof CONDITIONAL_ENV_NAMES)[number]>]: string } & {
  [K in (typeof CONDITIONAL_ENV_NAMES)[number]]?: string;
};

export interface ConnectionContract {
  target: Target;
  redisUrl: string;
  clusterMode: boolean;
  nodes: string[];
  tls: boolean;
  /** The CA's PEM with TLS; "" without. */
  caCertificate: string;
  env: ContractEnv;
}

export function redisUrl(f: Pick<ConnectionFacts, "tls" | "username" | "password" | "nodes">): string {
  if (f.nodes.length === 0) throw new Error("a connection needs at least one node");
  const scheme = f.tls ? "rediss" : "redis";
  return `${scheme}://${encodeURIComponent(f.username)}:${encodeURIComponent(f.password)}@${f.nodes[0]}`;
}

export function connectionContract(f: ConnectionFacts): ConnectionContract {
  if (f.sentinel && f.clusterMode) throw new Error("a Sentinel topology is not a cluster: clusterMode must be false");
  if (f.sentinel && f.sentinel.sentinels.length === 0) throw new Error("a Sentinel topology needs its Sentinels");
  const url = redisUrl(f);
  // The CA only with TLS: a plain-text connection has nothing to verify.
  const ca = f.tls && f.caCertificate ? f.caCertificate : undefined;
  const env: ContractEnv = {
    REDIS_URL: url,
    REDIS_CLUSTER_MODE: String(f.clusterMode),
    REDIS_CLUSTER_NODES: f.nodes.join(","),
    REDIS_TLS: String(f.tls),
    REDIS_MAX_RETRIES: String(f.client.maxRetries),
    REDIS_CONNECT_TIMEOUT: String(f.client.connectTimeoutMs),
    ...(ca !== undefined ? { REDIS_CA_PEM: ca } : {}),
    ...(f.sentinel
      ? { REDIS_SENTINELS: f.sentinel.sentinels.join(","), REDIS_SENTINEL_MASTER: f.sentinel.masterName }
      : {}),
  };
  return {
    target: f.target,
    redisUrl: url,
    clusterMode: f.clusterMode,
    nodes: f.nodes,
    tls: f.tls,
    caCertificate: ca ?? "",
    env,
  };
}

/**
 * Renders the env map as a dotenv file that bash can source (`set -a; . file`): values double-quoted with
 * `\\`, `"`, `$` and backquotes escaped, so a multi-line value (REDIS_CA_PEM) keeps its real newlines.
 * The URL is a secret, so is the file.
 */
export function toDotenv(env: Readonly<Record<string, string | undefined>>): string {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([k, v]) => `${k}="${v.replace(/[\\"$`]/g, "\\$&")}"`)
    .join("\n")
    .concat("\n");
}

export type ConnectionOutputs = { [K in keyof ConnectionContract]: pulumi.Output<ConnectionContract[K]> };

/**
 * Where an app must run to reach the database: top-level stack outputs beside the contract, read by an app's
 * deploy (a StackReference). EC2: the cluster's VPC, its private subnets and the client security group.
 * Redis Cloud: the peered VPC and its subnets when peered; nothing otherwise (the public endpoint).
 */
export interface ReachabilityOutputs {
  vpcId?: pulumi.Output<string>;
  subnetIds?: pulumi.Output<string[]>;
  clientSecurityGroupId?: pulumi.Output<string>;
}

/** TLS and the CA go together: a component with TLS on must say which CA signed its servers. */
export type TlsFacts = { tls: true; caCertificate: pulumi.Input<string> } | { tls: false };

export type ConnectionFactsInput = TlsFacts & {
  target: Target;
  nodes: pulumi.Input<string[]>;
  username: string;
  password: pulumi.Input<string>;
  clusterMode: boolean;
  client: ClientSettings;
  sentinel?: ConnectionFacts["sentinel"];
};

/** Both components call this: one contract, URL and env secret, everything else plain. */
export function connectionOutputs(i: ConnectionFactsInput): ConnectionOutputs {
  const ca = pulumi.output(i.tls ? i.caCertificate : "");
  const contract = pulumi
    .all([pulumi.output(i.nodes), pulumi.output(i.password), ca])
    .apply(([nodes, password, caCertificate]) =>
      connectionContract({ ...i, nodes, password, caCertificate: caCertificate === "" ? undefined : caCertificate }),
    );
  return {
    target: pulumi.output(i.target),
    redisUrl: pulumi.secret(contract.redisUrl),
    clusterMode: pulumi.output(i.clusterMode),
    nodes: pulumi.output(i.nodes),
    tls: pulumi.output(i.tls),
    caCertificate: ca,
    env: pulumi.secret(contract.env),
  };
}
