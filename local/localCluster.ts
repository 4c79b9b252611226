/**
 * The pieces the local mode and the benchmarks share: an ACL file for nodes started without user-data, and
 * health checks of a running cluster (or Sentinel topology) through redis-cli.
 */
import * as crypto from "crypto";
import { execFile } from "child_process";
import { promisify } from "util";
import { Ec2Settings } from "../components/config/settings";
import { Passwords } from "../lab/passwords";
import {
  ADMIN_ACL_RULES,
  ADMIN_USER,
  APP_ACL_RULES,
  APP_USER,
  REPLICATION_ACL_RULES,
  REPLICATION_USER,
} from "../components/ec2/node/redisConf";
import type { NodeAddress } from "../components/ec2/topology";
import { SENTINEL_PORT } from "../components/ec2/sentinel";
import { LAB_SENTINEL_MASTER } from "../lab/clusterLab";

const run = promisify(execFile);

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
    `user ${REPLICATION_USER} on #${sha(p.replication)} ${REPLICATION_ACL_RULES}`,
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
    ? sentinelHealth(running, LAB_SENTINEL_MASTER, ec2.replicasPerShard)
    : clusterHealth(adminTarget(running), ec2.shards, ec2.replicasPerShard);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
