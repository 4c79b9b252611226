/**
 * The repository's own program reads its stack config here and hands it to a component as arguments: the
 * keys of `target`'s component, each converted to the argument's type where it parses (and left as typed
 * otherwise, so the component's validation shows it as the user wrote it), plus `aws:region`. Problems are
 * phrased as config keys (`configNamespace`), the way `pulumi preview` users read them.
 */
import * as pulumi from "@pulumi/pulumi";
import type { RedisEc2ClusterArgs } from "../ec2/args";
import type { RedisCloudDatabaseArgs } from "../cloud/args";
import { CONFIG_TYPES, ConfigKey, KEY_SCOPES, SECRET_KEYS, targetKeys } from "./keys";
import { ConfigError } from "./problems";
import { Target } from "./settings";

/** This project's config as raw strings (namespace stripped), plus `aws:region`. Secrets only as "(secret)". */
export function readRawConfig(project: string): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (fullKey === "aws:region") raw[fullKey] = value;
    const prefix = `${project}:`;
    if (fullKey.startsWith(prefix))
      // A secret is never read into settings, only whether it is set ("" is Pulumi.yaml's default: unset).
      raw[fullKey.slice(prefix.length)] =
        SECRET_KEYS.has(fullKey.slice(prefix.length) as ConfigKey) && value !== "" ? "(secret)" : value;
  }
  return raw;
}

/** Keys Pulumi.yaml declares as strings that hold numbers (their defaults depend on other keys). */
const NUMERIC_STRING_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  "shards",
  "replicasPerShard",
  "dataVolumeGb",
  "alarmLatencyP99Ms",
  "alarmEvictionsPerSecond",
  "cloudMemoryGb",
]);

/** A config string as the argument's type when it is one; otherwise as written. */
function typed(key: ConfigKey, text: string): unknown {
  switch (CONFIG_TYPES[key]) {
    case "integer":
      return /^-?\d+$/.test(text.trim()) ? Number(text) : text;
    case "boolean":
      return text === "true" ? true : text === "false" ? false : text;
    case "array":
      try {
        const parsed: unknown = JSON.parse(text);
        return Array.isArray(parsed) ? parsed : text;
      } catch {
        return text;
      }
    case "string":
      return NUMERIC_STRING_KEYS.has(key) && /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
  }
}

export type StackArguments =
  | { target: "ec2"; args: RedisEc2ClusterArgs }
  | {
      target: "cloud";
      args: RedisCloudDatabaseArgs;
      /** The provider's credentials when both keys are set (Pulumi secrets); otherwise its environment. */
      credentials?: { apiKey: pulumi.Output<string>; secretKey: pulumi.Output<string> };
    };

/**
 * The stack's config as its component's arguments. Keys the stack does not know ride along, so the
 * component lists them with every other problem; a `target` that names no component fails here.
 */
export function stackArguments(project: string): StackArguments {
  const raw = readRawConfig(project);
  const targetText = raw.target === undefined || raw.target === "" ? "ec2" : raw.target;
  if (targetText !== "ec2" && targetText !== "cloud")
    throw new pulumi.RunError(
      new ConfigError(
        [
          {
            key: "target",
            value: targetText,
            problem: "must be 'cloud' (Redis Cloud) or 'ec2' (self-hosted Redis Cluster)",
            fix: "pulumi config set target ec2",
          },
        ],
        project,
      ).message,
    );
  const target: Target = targetText;
  const mine = new Set<string>(targetKeys(target));
  const args: Record<string, unknown> = { configNamespace: project, region: raw["aws:region"] };
  for (const [key, value] of Object.entries(raw)) {
    if (key === "aws:region" || value === "") continue;
    if (mine.has(key)) args[key] = typed(key as ConfigKey, value);
    else if (!(key in KEY_SCOPES)) args[key] = value; // unknown: the component names it
  }
  if (target === "ec2") return { target, args: args };
  const config = new pulumi.Config(project);
  const set = (key: ConfigKey) => (raw[key] ?? "") !== "";
  const credentials =
    set("rediscloudApiKey") && set("rediscloudSecretKey")
      ? { apiKey: config.requireSecret("rediscloudApiKey"), secretKey: config.requireSecret("rediscloudSecretKey") }
      : undefined;
  return { target, args: args, credentials };
}
