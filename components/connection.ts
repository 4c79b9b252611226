/**
 * The output contract apps deploy against, identical for both targets (docs/architecture.md).
 * `connectionContract` is pure (also used by the local mode); `connectionOutputs` wraps it in
 * Pulumi outputs and marks the URL and the env map secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { ClientSettings, Target } from "./config";

export interface ConnectionFacts {
  target: Target;
  /** `host:port` of every node, masters first, or the single cloud endpoint. */
  nodes: string[];
  username: string;
  password: string;
  tls: boolean;
  clusterMode: boolean;
  /** PEM of the CA when the stack made one. */
  caCertificate?: string;
  client: ClientSettings;
}

export interface ConnectionContract {
  target: Target;
  redisUrl: string;
  clusterMode: boolean;
  nodes: string[];
  tls: boolean;
  caCertificate: string;
  env: Record<string, string>;
}

/** The env names apps read. */
export const ENV_NAMES = [
  "REDIS_URL",
  "REDIS_CLUSTER_MODE",
  "REDIS_CLUSTER_NODES",
  "REDIS_TLS",
  "REDIS_MAX_RETRIES",
  "REDIS_CONNECT_TIMEOUT",
] as const;

export function redisUrl(f: Pick<ConnectionFacts, "tls" | "username" | "password" | "nodes">): string {
  if (f.nodes.length === 0) throw new Error("a connection needs at least one node");
  const scheme = f.tls ? "rediss" : "redis";
  return `${scheme}://${encodeURIComponent(f.username)}:${encodeURIComponent(f.password)}@${f.nodes[0]}`;
}

export function connectionContract(f: ConnectionFacts): ConnectionContract {
  const url = redisUrl(f);
  const env: Record<(typeof ENV_NAMES)[number], string> = {
    REDIS_URL: url,
    REDIS_CLUSTER_MODE: String(f.clusterMode),
    REDIS_CLUSTER_NODES: f.nodes.join(","),
    REDIS_TLS: String(f.tls),
    REDIS_MAX_RETRIES: String(f.client.maxRetries),
    REDIS_CONNECT_TIMEOUT: String(f.client.connectTimeoutMs),
  };
  return {
    target: f.target,
    redisUrl: url,
    clusterMode: f.clusterMode,
    nodes: f.nodes,
    tls: f.tls,
    caCertificate: f.caCertificate ?? "",
    env,
  };
}

/** Renders the env map as a dotenv file (values quoted; the URL is a secret, so is the file). */
export function toDotenv(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join("\n")
    .concat("\n");
}

export type ConnectionOutputs = { [K in keyof ConnectionContract]: pulumi.Output<ConnectionContract[K]> };

export interface ConnectionFactsInput {
  target: Target;
  nodes: pulumi.Input<string[]>;
  username: string;
  password: pulumi.Input<string>;
  tls: boolean;
  clusterMode: boolean;
  caCertificate?: pulumi.Input<string>;
  client: ClientSettings;
}

/** Both components call this: one contract, URL and env secret, everything else plain. */
export function connectionOutputs(i: ConnectionFactsInput): ConnectionOutputs {
  const contract = pulumi
    .all([pulumi.output(i.nodes), pulumi.output(i.password), pulumi.output(i.caCertificate ?? "")])
    .apply(([nodes, password, caCertificate]) =>
      connectionContract({ ...i, nodes, password, caCertificate: caCertificate === "" ? undefined : caCertificate }),
    );
  return {
    target: pulumi.output(i.target),
    redisUrl: pulumi.secret(contract.redisUrl),
    clusterMode: pulumi.output(i.clusterMode),
    nodes: pulumi.output(i.nodes),
    tls: pulumi.output(i.tls),
    caCertificate: pulumi.output(i.caCertificate ?? ""),
    env: pulumi.secret(contract.env),
  };
}
