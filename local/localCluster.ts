/**
 * The pieces the local mode, the integration tests and the benchmarks share: the prod stack's settings
 * read from Pulumi.prod.yaml through the real validator, secrets in the same shapes as on EC2, and
 * health checks of a running cluster through redis-cli.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { execFile } from "child_process";
import { promisify } from "util";
import { ConfigError, Ec2Settings, parseSettings, Settings } from "../components/config";
import { ADMIN_ACL_RULES, ADMIN_USER, APP_ACL_RULES, APP_USER } from "../components/redisConf";
import type { NodeAddress } from "../components/topology";
import { SENTINEL_PORT, sentinelMasterName } from "../components/sentinel";

export const ROOT = path.resolve(__dirname, "..");
const run = promisify(execFile);

/** Pulumi.<stack>.yaml in Pulumi's flat form: `project:key` -> string (lists and maps as JSON). */
export function stackConfig(stack: string): Record<string, string> {
  const doc = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as {
    config?: Record<string, unknown>;
  };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    out[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

/** A checked-in stack's settings, validated exactly as `pulumi preview` would. */
/**
 * A stack's settings from its checked-in Pulumi.<stack>.yaml, with `overrides` on top (keys as in
 * `pulumi config set`, without the project prefix). Invalid values throw the stack's own problem list.
 */
export function stackSettings(
  stack: string,
  project = "redis-stack",
  overrides: Record<string, string> = {},
): Settings {
  const raw: Record<string, string> = {};
  for (const [key, value] of Object.entries(stackConfig(stack))) {
    raw[key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key] = value;
  }
  Object.assign(raw, overrides);
  const { settings, problems } = parseSettings(raw);
  if (!settings || problems.length > 0) throw new ConfigError(problems, project);
  return settings;
}

/** The stack name of the lab's and the local mode's deployments (SSM names, metrics, the Sentinel master name). */
export const LAB_STACK = "lab";

export interface Passwords {
  app: string;
  admin: string;
  /** The nodes' Prometheus exporter (ACL user `monitor`). */
  monitor: string;
  /** The Sentinel topology's Sentinels (ACL user `sentinel`, on the data nodes and on each other). */
  sentinel: string;
}

export function generatePasswords(): Passwords {
  const pw = () =>
    crypto
      .randomBytes(24)
      .toString("base64url")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(0, 32)
      .padEnd(32, "0");
  return { app: pw(), admin: pw(), monitor: pw(), sentinel: pw() };
}

/**
 * The ACL file a node writes at boot (bootstrap.sh write_secrets), for nodes started without user-data;
 * without the `monitor` user, since no exporter runs beside them.
 */
export function renderAclFile(p: Passwords): string {
  const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");
  return [
    "user default off",
    `user ${APP_USER} on #${sha(p.app)} ${APP_ACL_RULES}`,
    `user ${ADMIN_USER} on #${sha(p.admin)} ${ADMIN_ACL_RULES}`,
    "",
  ].join("\n");
}

export interface CliTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  tls?: { ca: string; cert?: string; key?: string };
}

/** The admin's view of a running local cluster: its first node, as `clusterHealth` and the CLI take it. */
export function adminTarget(running: { nodes: NodeAddress[]; passwords: Passwords; caFile?: string }): CliTarget {
  const first = running.nodes[0];
  return {
    host: first.ip,
    port: first.port,
    user: ADMIN_USER,
    password: running.passwords.admin,
    tls: running.caFile ? { ca: running.caFile } : undefined,
  };
}

/** Runs redis-cli against one node. */
export async function redisCli(t: CliTarget, args: string[], timeoutMs = 5000): Promise<string> {
  const tlsArgs = t.tls
    ? ["--tls", "--cacert", t.tls.ca, ...(t.tls.cert && t.tls.key ? ["--cert", t.tls.cert, "--key", t.tls.key] : [])]
    : [];
  const argv = ["redis-cli", "-h", t.host, "-p", String(t.port), "--user", t.user, ...tlsArgs, ...args];
  const { stdout } = await run(argv[0], argv.slice(1), {
    env: { ...process.env, REDISCLI_AUTH: t.password },
    timeout: timeoutMs,
  });
  return stdout.replace(/\r/g, "");
}

export interface ClusterHealth {
  ok: boolean;
  state: string;
  slotsOk: number;
  masters: number;
  replicasAttached: number;
  detail: string;
}

/** Cluster health as one node sees it: state ok, all slots ok, every master with its replicas linked. */
export async function clusterHealth(
  t: CliTarget,
  expectedMasters: number,
  replicasPerShard: number,
): Promise<ClusterHealth> {
  try {
    const info = await redisCli(t, ["cluster", "info"]);
    const field = (k: string) =>
      /^([^:]+):(.*)$/m.exec(info.split("\n").find((l) => l.startsWith(`${k}:`)) ?? "")?.[2] ?? "";
    const nodes = (await redisCli(t, ["cluster", "nodes"])).trim().split("\n");
    const flags = (l: string) => (l.split(" ")[2] ?? "").split(",");
    const healthy = (l: string) =>
      !flags(l).some((f) => f === "fail" || f === "fail?" || f === "noaddr" || f === "handshake") &&
      l.split(" ")[7] === "connected";
    const masters = nodes.filter((l) => flags(l).includes("master") && healthy(l) && l.split(" ").length > 8);
    const replicas = nodes.filter((l) => flags(l).includes("slave") && healthy(l));
    const state = field("cluster_state");
    const slotsOk = Number(field("cluster_slots_ok") || 0);
    const ok =
      state === "ok" &&
      slotsOk === 16384 &&
      masters.length === expectedMasters &&
      replicas.length === expectedMasters * replicasPerShard;
    return {
      ok,
      state,
      slotsOk,
      masters: masters.length,
      replicasAttached: replicas.length,
      detail: `state=${state} slots_ok=${slotsOk} masters=${masters.length} replicas=${replicas.length}`,
    };
  } catch (e) {
    return {
      ok: false,
      state: "unreachable",
      slotsOk: 0,
      masters: 0,
      replicasAttached: 0,
      detail: (e as Error).message.split("\n")[0],
    };
  }
}

/**
 * Sentinel topology health from outside: every node's Sentinel names the same primary, which answers as
 * primary with `replicas` replicas online.
 */
export async function sentinelHealth(
  running: { nodes: NodeAddress[]; passwords: Passwords; caFile?: string },
  masterName: string,
  replicas: number,
): Promise<ClusterHealth> {
  const admin = adminTarget(running);
  const named = await Promise.all(
    running.nodes.map((n) =>
      redisCli({ ...admin, host: n.ip, port: SENTINEL_PORT }, ["sentinel", "get-master-addr-by-name", masterName])
        .then((out) => out.trim().split("\n").join(":"))
        .catch(() => "unreachable"),
    ),
  );
  const primary = named[0] ?? "";
  const [host, port] = primary.split(":");
  let online = 0;
  let role = "unreachable";
  if (/^\d+$/.test(port ?? "")) {
    const info = await redisCli({ ...admin, host, port: Number(port) }, ["info", "replication"]).catch(() => "");
    role = /^role:(\S+)/m.exec(info)?.[1] ?? "unreachable";
    online = (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
  }
  const agree = named.every((p) => p === primary);
  const ok = agree && role === "master" && online === replicas;
  return {
    ok,
    state: ok ? "ok" : "not ok",
    slotsOk: 0,
    masters: role === "master" ? 1 : 0,
    replicasAttached: online,
    detail: `sentinels name [${named.join(" ")}], primary role=${role}, replicas online=${online}`,
  };
}

/** Health of what runs: the cluster as its first node sees it, or the Sentinels' agreement on a primary. */
export function stackHealth(
  running: { nodes: NodeAddress[]; passwords: Passwords; caFile?: string },
  ec2: Ec2Settings,
): Promise<ClusterHealth> {
  return ec2.topology === "sentinel"
    ? sentinelHealth(running, sentinelMasterName("redis-stack", LAB_STACK), ec2.replicasPerShard)
    : clusterHealth(adminTarget(running), ec2.shards, ec2.replicasPerShard);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
