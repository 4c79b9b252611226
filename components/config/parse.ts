/**
 * Stack configuration into typed settings, every problem at once.
 *
 * `parseSettings` is pure: it takes the values of this project's namespace (strings from Pulumi's config, or
 * typed values from a component's arguments) and returns either a fully typed `Settings` or the complete
 * list of problems, each naming the key, the bad value and the fix. Nothing is registered before it passes,
 * so bad configuration fails at `pulumi preview`.
 */
import type { InstanceTypeInfo } from "../ec2/instanceTypes";
import { parseCloud } from "./cloud";
import { parseEc2 } from "./ec2";
import { closestKey, CONFIG_KEYS } from "./keys";
import { ConfigInput, Reader } from "./reader";
import { ClientSettings, ConfigProblem, EVICTION_POLICIES, PERSISTENCE_MODES, Settings, Target } from "./settings";
import { isCidr } from "./values";

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * Validates config (keys without the project namespace, plus `aws:region`) into Settings. Returns every
 * problem at once; Settings only when there are none.
 *
 * `instanceFacts`: what AWS says about the configured instance type (memory and architecture, from
 * `aws.ec2.getInstanceType` at preview). Without it (the local mode and the lab, which have no AWS), the
 * family table in instanceTypes.ts stands in.
 */
export function parseSettings(
  raw: ConfigInput,
  instanceFacts?: InstanceTypeInfo,
): {
  settings?: Settings;
  problems: ConfigProblem[];
} {
  const r = new Reader(raw);

  for (const key of Object.keys(raw)) {
    if (key.includes(":") || key in CONFIG_KEYS) continue;
    const guess = closestKey(key);
    r.fail(
      key,
      r.text(key),
      "is not a setting of this stack",
      guess
        ? `did you mean '${guess}'? (pulumi config rm ${key}; pulumi config set ${guess} ...)`
        : `pulumi config rm ${key}`,
    );
  }

  const targetRaw = r.get("target");
  let target: Target = "ec2";
  if (targetRaw !== undefined) {
    if (targetRaw === "cloud" || targetRaw === "ec2") target = targetRaw;
    else
      r.fail(
        "target",
        targetRaw,
        "must be 'cloud' (Redis Cloud) or 'ec2' (self-hosted Redis Cluster)",
        "pulumi config set target ec2",
      );
  }

  const persistence = r.oneOf("persistence", PERSISTENCE_MODES, "aof+rdb");
  const maxmemoryPolicy = r.oneOf("maxmemoryPolicy", EVICTION_POLICIES, "allkeys-lru");
  const tls = r.bool("tls", true);

  const allowedCidrs = r.list("allowedCidrs") ?? [];
  for (const cidr of allowedCidrs) {
    if (!isCidr(cidr)) {
      r.fail(
        "allowedCidrs",
        cidr,
        "is not an IPv4 CIDR block like 10.0.0.0/16 (no host bits set)",
        `pulumi config set --path 'allowedCidrs[0]' 10.0.0.0/16`,
      );
    } else if (cidr.endsWith("/0")) {
      r.fail(
        "allowedCidrs",
        cidr,
        "opens Redis to the whole internet",
        "list only the networks your apps run in, e.g. 10.0.0.0/16",
      );
    }
  }

  const alertEmail = r.get("alertEmail");
  if (alertEmail !== undefined && !EMAIL.test(alertEmail)) {
    r.fail("alertEmail", alertEmail, "is not an email address", "pulumi config set alertEmail oncall@example.com");
  }

  const client: ClientSettings = {
    maxRetries: r.int("clientMaxRetries", 10, 0, 1000, "retries per command while a failover completes"),
    connectTimeoutMs: r.int("clientConnectTimeoutMs", 5000, 100, 120000, "milliseconds"),
  };

  const settings: Settings = { target, persistence, maxmemoryPolicy, tls, allowedCidrs, alertEmail, client };
  const awsRegion = r.text("aws:region");
  if (target === "ec2") settings.ec2 = parseEc2(r, awsRegion, instanceFacts);
  else settings.cloud = parseCloud(r, persistence, tls, allowedCidrs, awsRegion);

  return r.problems.length > 0 ? { problems: r.problems } : { settings, problems: [] };
}
