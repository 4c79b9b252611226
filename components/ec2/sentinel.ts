/**
 * The Sentinel topology, its pure parts: one primary and its replicas, one per availability
 * zone, a Sentinel beside each, and the numbers Sentinel runs on, derived from the stack's node timeout.
 * Placement reuses the cluster's planner (one shard), so names, addresses and AZ spread derive the same
 * way; what differs from the cluster lives here.
 */
import { planTopology, PlannedNode } from "./topology";

/** Sentinel's own port (Redis's default for sentinel mode). */
export const SENTINEL_PORT = 26379;
/** A Sentinel majority needs three voters: two could not tell a dead primary from a partition. */
export const MIN_SENTINELS = 3;
/** The default number of replicas in the Sentinel topology: three nodes, so a majority survives one loss. */
export const SENTINEL_DEFAULT_REPLICAS = 2;
/**
 * The ACL user Sentinels log in as on the data nodes: only the commands Sentinel sends (Redis's
 * "Redis Access Control List authentication" section of the Sentinel docs, for Redis 7.0).
 */
export const SENTINEL_USER = "sentinel";
export const SENTINEL_ACL_RULES =
  "-@all +multi +slaveof +replicaof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill &*";

/**
 * Sentinel's own users (sentinel.conf; Sentinel's default user is off). Sentinels log in to each other as
 * SENTINEL_USER with only what Sentinel sends a peer; apps (the app user, its password) only discover the
 * primary and follow its changes: what node-redis's Sentinel client sends (redis@6 sentinel/index.js:
 * SENTINEL MASTER/REPLICAS/SENTINELS and a PSUBSCRIBE to the failover events), what ioredis sends
 * (GET-MASTER-ADDR-BY-NAME), and redis-py's SENTINEL MASTERS (its `discover_master`; the same facts as
 * SENTINEL MASTER, for the one name these Sentinels monitor). No CLIENT SETINFO: Redis 7.0 does not know
 * it, and one unknown command in a user's rules refuses the whole file.
 */
export const SENTINEL_PEER_ACL_RULES =
  "-@all +auth +hello +ping +role +command +client|getname +client|id +client|setname +sentinel|get-master-addr-by-name +sentinel|master +sentinel|myid +sentinel|replicas +sentinel|sentinels +sentinel|is-master-down-by-addr +subscribe +psubscribe +publish &*";
export const SENTINEL_APP_ACL_RULES =
  "-@all +auth +hello +ping +client|setname +sentinel|get-master-addr-by-name +sentinel|master +sentinel|masters +sentinel|replicas +sentinel|sentinels +subscribe +psubscribe +unsubscribe +punsubscribe &*";

/** Where a node's Sentinel keeps its config file (it rewrites it) on the root volume; node.sh regenerates it at each boot. */
export const SENTINEL_DIR = "/var/lib/redis-stack-sentinel";

/** The master name of a stack's Sentinels (REDIS_SENTINEL_MASTER): `<project>-<stack>`, in Sentinel's alphabet. */
export function sentinelMasterName(project: string, stack: string): string {
  const name = `${project}-${stack}`.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
  if (!MASTER_NAME_PATTERN.test(name)) throw new Error(`no Sentinel master name can be made from ${project}/${stack}`);
  return name;
}

/** What a data node's redis.conf carries in the Sentinel topology (components/ec2/node/redisConf.ts). */
export interface SentinelReplication {
  /** min-replicas-to-write: 1 whenever there are at least 2 replicas (always, in this topology). */
  minReplicasToWrite: number;
  minReplicasMaxLagSeconds: number;
}

/**
 * The split-brain bound: a primary refuses writes once no replica has acknowledged for max-lag seconds.
 * On with at least 2 replicas (a primary with one replica would refuse writes whenever that one restarts).
 */
export function sentinelReplication(replicas: number, nodeTimeoutMs: number): SentinelReplication {
  return {
    minReplicasToWrite: replicas >= 2 ? 1 : 0,
    minReplicasMaxLagSeconds: sentinelTimings(nodeTimeoutMs).minReplicasMaxLagSeconds,
  };
}

/** Majority of the Sentinels: the quorum for "the primary is down", and what a failover needs anyway. */
export function sentinelQuorum(sentinels: number): number {
  if (!Number.isInteger(sentinels) || sentinels < MIN_SENTINELS)
    throw new Error(`Sentinel needs at least ${MIN_SENTINELS} Sentinels, got ${sentinels}`);
  return Math.floor(sentinels / 2) + 1;
}

export interface SentinelTimings {
  /** A primary silent this long is subjectively down (the cluster's node timeout: the same detection). */
  downAfterMs: number;
  /**
   * failover-timeout. Sentinel also waits twice this before it starts a failover after one it voted in or
   * tried: at 10 s (the old value) a primary that died within 20 s of a failover stayed down 12-14 s
   * (bench:failover --topology sentinel, 2 of 9 runs, "Next failover delay" in the Sentinels' logs).
   */
  failoverTimeoutMs: number;
  /**
   * min-replicas-max-lag: a primary that has heard from no replica for this long refuses writes, which
   * bounds what a primary cut off from the majority can accept (and lose). Redis counts the lag in whole
   * seconds and re-counts its good replicas once a second (replicationCron), and the last acknowledgement
   * came up to a second before the cut: the primary refuses at most this + 2 s after it.
   */
  minReplicasMaxLagSeconds: number;
}

export function sentinelTimings(nodeTimeoutMs: number): SentinelTimings {
  const downAfterMs = nodeTimeoutMs;
  return {
    downAfterMs,
    // Promotion (REPLICAOF NO ONE, seen in the next INFO) takes about a second: 2 x detection leaves room.
    failoverTimeoutMs: Math.max(3_000, 2 * downAfterMs),
    // Replicas acknowledge every second: one missed ack past the detection time. The isolated primary
    // then refuses within 5 s of a cut at the default (3 + 2 s; with + 2 the lab measured 5.5 s).
    minReplicasMaxLagSeconds: Math.ceil(downAfterMs / 1000) + 1,
  };
}

/** One primary (`shard0-0`, AZ 0) and its replicas (`shard0-1`...), each in its own AZ. */
export function planSentinelTopology(replicas: number, azCount: number): PlannedNode[] {
  if (replicas + 1 < MIN_SENTINELS)
    throw new Error(`the Sentinel topology needs at least ${MIN_SENTINELS - 1} replicas, got ${replicas}`);
  if (replicas + 1 > azCount)
    throw new Error(`${replicas + 1} Sentinel nodes need ${replicas + 1} availability zones, got ${azCount}`);
  return planTopology(1, replicas, azCount);
}

export interface SentinelConfInput {
  /** The name apps ask Sentinel for (REDIS_SENTINEL_MASTER). */
  masterName: string;
  /** This node's fixed private address, announced to the other Sentinels and to clients. */
  announceIp: string;
  /** The primary at the time of the first boot; Sentinel rewrites it after a failover. */
  primaryIp: string;
  redisPort: number;
  sentinels: number;
  nodeTimeoutMs: number;
  tls: false | { caCert: string; cert: string; key: string };
  /** Where Sentinel keeps its state (it rewrites its config file there). */
  dir: string;
}

/** A name Sentinel and every client accept: letters, digits, `-`, `_`, `.`. */
export const MASTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The non-secret part of a node's sentinel.conf. The node appends the secret lines at boot (from SSM):
 * `sentinel auth-pass` (its login on the data nodes), `sentinel sentinel-pass` (on the other Sentinels)
 * and the ACL users of Sentinel itself.
 */
export function renderSentinelConf(c: SentinelConfInput): string {
  if (!MASTER_NAME_PATTERN.test(c.masterName)) throw new Error(`not a Sentinel master name: ${c.masterName}`);
  const t = sentinelTimings(c.nodeTimeoutMs);
  const m = c.masterName;
  const lines = [
    `# Rendered by components/sentinel.ts (${MIN_SENTINELS}+ Sentinels, quorum = majority). Sentinel rewrites this file.`,
    `bind ${c.announceIp}`,
    "protected-mode no",
    ...(c.tls
      ? [
          "port 0",
          `tls-port ${SENTINEL_PORT}`,
          `tls-cert-file ${c.tls.cert}`,
          `tls-key-file ${c.tls.key}`,
          `tls-ca-cert-file ${c.tls.caCert}`,
          "tls-auth-clients optional",
          "tls-replication yes",
        ]
      : [`port ${SENTINEL_PORT}`]),
    `dir ${c.dir}`,
    "sentinel resolve-hostnames no",
    `sentinel announce-ip ${c.announceIp}`,
    `sentinel announce-port ${SENTINEL_PORT}`,
    `sentinel monitor ${m} ${c.primaryIp} ${c.redisPort} ${sentinelQuorum(c.sentinels)}`,
    `sentinel down-after-milliseconds ${m} ${t.downAfterMs}`,
    `sentinel failover-timeout ${m} ${t.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${m} 1`,
    `sentinel auth-user ${m} ${SENTINEL_USER}`,
    `sentinel sentinel-user ${SENTINEL_USER}`,
    // Only Sentinels and the node's own scripts reconfigure; clients cannot rename or move the primary.
    "sentinel deny-scripts-reconfig yes",
  ];
  return `${lines.join("\n")}\n`;
}
