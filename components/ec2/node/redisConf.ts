/**
 * One node's redis.conf, rendered from typed settings. Pure: the EC2 user-data, the local mode and
 * the integration tests all write exactly this text. Secrets never appear here: passwords live in
 * the ACL file and `secrets.conf`, which the node writes at boot from SSM Parameter Store.
 */
import { EvictionPolicy, Persistence } from "../../config/settings";
import { SentinelReplication } from "../sentinel";
import { liveSettings, renderSettingsConf } from "../desired";

export const REDIS_PORT = 6379;
/** The cluster bus always listens on the data port + 10000. */
export const CLUSTER_BUS_OFFSET = 10000;
/**
 * The replication backlog: room for a replica that reconnects within it to catch up without a full sync.
 * Redis 7 counts it in used_memory, so maxmemory must leave room for it (config.ts MIN_MAXMEMORY_BYTES).
 */
export const REPL_BACKLOG_BYTES = 64 * 1024 * 1024;
/** Every node's Prometheus exporter (Debian's prometheus-redis-exporter; its own default port). */
export const EXPORTER_PORT = 9121;

/**
 * Users the node defines: `default` is switched off, apps use `app`, the node's own tooling uses `admin`,
 * replicas log in to their master as `replication`, the node's Prometheus exporter uses `monitor`.
 */
export const APP_USER = "app";
export const ADMIN_USER = "admin";
export const MONITOR_USER = "monitor";
export const REPLICATION_USER = "replication";
/**
 * What a replica sends its master (redis.io, "ACL rules for replication"): PING, REPLCONF and PSYNC after
 * AUTH; nothing else, no key, no channel. Its password is the one in each node's redis.conf (masterauth),
 * readable by the `redis` group, so the admin password is in no file Redis itself reads.
 */
export const REPLICATION_ACL_RULES = "resetkeys resetchannels -@all +psync +replconf +ping";
/** The app user's default rules (appAcl.ts: least privilege; `appAclGrants` adds to them). */
export { APP_ACL_RULES } from "./appAcl";
/** Each node's TLS certificate lasts this long ... */
export const TLS_CERT_VALIDITY_DAYS = 2 * 365;
/**
 * ... and the first pulumi up within this many days of its end issues a new one (the tls provider's
 * earlyRenewalHours), which every node loads live (node.sh refresh_tls_live); the expiry alarm fires at it.
 */
export const TLS_RENEWAL_DAYS = 30;

export const ADMIN_ACL_RULES = "~* &* +@all";
/**
 * Exactly what prometheus-redis-exporter 1.45 sends with the node's flags (node.sh write_exporter_config;
 * exporter/exporter.go scrapeRedisHost at v1.45.0): INFO ALL, CLUSTER INFO, LATENCY LATEST, SLOWLOG LEN and
 * SLOWLOG GET 1. No key, no channel. Not CONFIG GET: `CONFIG GET *` returns masterauth, the replication password
 * (the exporter is pointed at INFO instead, `--config-command=INFO`); not CLIENT SETNAME
 * (`--set-client-name=false`). A refused command would add an ACL LOG entry at every scrape and push real
 * events out of its 128 entries, so what the exporter sends is allowed and the rest is not sent at all.
 */
export const MONITOR_ACL_RULES = "-@all +info +cluster|info +latency|latest +slowlog|len +slowlog|get";

/** Where things live on a node. EC2 uses the defaults; the non-root local mode points them into a work dir. */
export interface NodePaths {
  confDir: string;
  dataDir: string;
  logDir: string;
  runDir: string;
}

export const EC2_PATHS: NodePaths = {
  confDir: "/etc/redis-stack",
  dataDir: "/var/lib/redis",
  logDir: "/var/log/redis",
  runDir: "/run/redis-node",
};

export interface RedisConfInput {
  /** Address announced to the cluster and to clients (the node's fixed private IP). */
  announceIp: string;
  port: number;
  nodeTimeoutMs: number;
  maxmemoryBytes: number;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  tls: boolean;
  paths: NodePaths;
  /**
   * Where the live directives (components/ec2/desired.ts) come from instead of this file: EC2 nodes include
   * their settings.conf, which node.sh rewrites from the stack's desired settings at each boot and change.
   */
  settingsFile?: string;
  /**
   * The Sentinel topology (components/ec2/sentinel.ts): no cluster; the node announces its own address to its
   * primary, a primary refuses writes without a replica in reach, and whom it replicates is decided at each
   * boot (node.sh writes the role file, included here).
   */
  sentinel?: SentinelReplication;
}

export function nodeFiles(paths: NodePaths) {
  return {
    conf: `${paths.confDir}/redis-node.conf`,
    acl: `${paths.confDir}/users.acl`,
    settings: `${paths.confDir}/settings.conf`,
    secrets: `${paths.confDir}/secrets.conf`,
    /** Sentinel topology: `replicaof <primary>` or nothing, written by node.sh before Redis starts. */
    role: `${paths.confDir}/role.conf`,
    caCert: `${paths.confDir}/tls/ca.crt`,
    cert: `${paths.confDir}/tls/node.crt`,
    key: `${paths.confDir}/tls/node.key`,
    nodesConf: `${paths.dataDir}/nodes.conf`,
    log: `${paths.logDir}/redis-node.log`,
    pid: `${paths.runDir}/redis-node.pid`,
  };
}

export function renderRedisConf(c: RedisConfInput): string {
  const f = nodeFiles(c.paths);
  const live = liveSettings(c);
  const value = (k: string) => live.find(([d]) => d === k)?.[1] ?? "";
  // The values the node is created with, in this file (the design card's "cluster + maxmemory in
  // user-data"): a node that boots without its settings.conf still runs with the stack's memory limit,
  // policy and persistence. EC2 nodes include their settings.conf last, so the stack's later changes decide.
  const inline = (k: string): string[] => {
    if (k === "save") return [renderSettingsConf(live.filter(([d]) => d === "save"))];
    return [`${k} ${value(k)}`];
  };
  const lines: string[] = [
    "# redis.conf rendered by redis-stack (components/redisConf.ts). Rewritten on every boot: change the stack config, not this file.",
    "",
    "# network",
    "bind * -::*",
    "protected-mode no",
    ...(c.tls
      ? [
          "port 0",
          `tls-port ${c.port}`,
          `tls-cert-file ${f.cert}`,
          `tls-key-file ${f.key}`,
          `tls-ca-cert-file ${f.caCert}`,
          "tls-auth-clients optional",
          "tls-replication yes",
          "tls-cluster yes",
          'tls-protocols "TLSv1.2 TLSv1.3"',
        ]
      : [`port ${c.port}`]),
    "tcp-backlog 511",
    "tcp-keepalive 60",
    "timeout 0",
    "",
    "# process",
    "daemonize no",
    "supervised no",
    `pidfile ${f.pid}`,
    `logfile ${f.log}`,
    "loglevel notice",
    "",
    ...(c.sentinel
      ? [
          "# replication (Sentinel topology): a primary cut off from every replica stops taking writes",
          `replica-announce-ip ${c.announceIp}`,
          `min-replicas-to-write ${c.sentinel.minReplicasToWrite}`,
          `min-replicas-max-lag ${c.sentinel.minReplicasMaxLagSeconds}`,
          "replica-priority 100",
          `include ${f.role}`,
        ]
      : [
          "# cluster",
          "cluster-enabled yes",
          `cluster-config-file ${f.nodesConf}`,
          ...inline("cluster-node-timeout"),
          `cluster-announce-ip ${c.announceIp}`,
          "cluster-require-full-coverage no",
          "cluster-allow-reads-when-down no",
          "cluster-replica-validity-factor 10",
          "cluster-migration-barrier 1",
        ]),
    "replica-read-only yes",
    `repl-backlog-size ${REPL_BACKLOG_BYTES / (1024 * 1024)}mb`,
    "repl-diskless-sync yes",
    // One replica per master joins at a time: no reason to wait 5 s for company before a sync.
    "repl-diskless-sync-delay 0",
    "",
    "# persistence",
    `dir ${c.paths.dataDir}`,
    "dbfilename dump.rdb",
    ...inline("appendonly"),
    "appendfilename appendonly.aof",
    "appenddirname appendonlydir",
    "appendfsync everysec",
    "aof-use-rdb-preamble yes",
    "no-appendfsync-on-rewrite no",
    "auto-aof-rewrite-percentage 100",
    "auto-aof-rewrite-min-size 64mb",
    ...inline("save"),
    "stop-writes-on-bgsave-error yes",
    "rdbcompression yes",
    "rdbchecksum yes",
    "",
    "# memory",
    ...inline("maxmemory"),
    ...inline("maxmemory-policy"),
    "maxmemory-samples 5",
    "lazyfree-lazy-eviction yes",
    "lazyfree-lazy-expire yes",
    "",
    "# latency: INFO latencystats with p95 (the metrics collector windows LATENCY HISTOGRAM itself)",
    'latency-tracking-info-percentiles "50 95 99 99.9"',
    "",
    `# auth: ACL users (default off) with hashed passwords; replicas authenticate as ${REPLICATION_USER}`,
    `aclfile ${f.acl}`,
    `masteruser ${REPLICATION_USER}`,
    `include ${f.secrets}`,
    // A RESTORE payload from a client (a granted RESTORE, MIGRATE's) is checked whole before it is loaded;
    // the RDB from disk or from the master is the cluster's own and loads unchecked, as fast as before.
    "sanitize-dump-payload clients",
    ...(c.settingsFile
      ? [
          "",
          "# live settings (maxmemory, policy, node timeout, persistence): the stack's desired settings",
          `include ${c.settingsFile}`,
        ]
      : []),
    "",
  ];
  return lines.join("\n");
}
