/**
 * One node's redis.conf, rendered from typed settings. Pure: the EC2 user-data, the local mode and
 * the integration tests all write exactly this text. Secrets never appear here: passwords live in
 * the ACL file and `secrets.conf`, which the node writes at boot from SSM Parameter Store.
 */
import { EvictionPolicy, Persistence } from "./config";

export const REDIS_PORT = 6379;
/** The cluster bus always listens on the data port + 10000. */
export const CLUSTER_BUS_OFFSET = 10000;

/** Users the node defines: `default` is switched off, apps use `app`, tooling and replication use `admin`. */
export const APP_USER = "app";
export const ADMIN_USER = "admin";
/** App may run any data command, none of the admin ones (CONFIG, DEBUG, SHUTDOWN, REPLICAOF, ACL, cluster admin). */
export const APP_ACL_RULES = "~* &* +@all -@admin";
export const ADMIN_ACL_RULES = "~* &* +@all";

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
}

export function nodeFiles(paths: NodePaths) {
  return {
    conf: `${paths.confDir}/redis-node.conf`,
    acl: `${paths.confDir}/users.acl`,
    secrets: `${paths.confDir}/secrets.conf`,
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
  const aof = c.persistence === "aof+rdb" || c.persistence === "aof";
  const rdb = c.persistence === "aof+rdb" || c.persistence === "rdb";
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
    "# cluster",
    "cluster-enabled yes",
    `cluster-config-file ${f.nodesConf}`,
    `cluster-node-timeout ${c.nodeTimeoutMs}`,
    `cluster-announce-ip ${c.announceIp}`,
    "cluster-require-full-coverage no",
    "cluster-allow-reads-when-down no",
    "cluster-replica-validity-factor 10",
    "cluster-migration-barrier 1",
    "replica-read-only yes",
    "repl-backlog-size 64mb",
    "repl-diskless-sync yes",
    // One replica per master joins at a time: no reason to wait 5 s for company before a sync.
    "repl-diskless-sync-delay 0",
    "",
    "# persistence",
    `dir ${c.paths.dataDir}`,
    "dbfilename dump.rdb",
    `appendonly ${aof ? "yes" : "no"}`,
    "appendfilename appendonly.aof",
    "appenddirname appendonlydir",
    "appendfsync everysec",
    "aof-use-rdb-preamble yes",
    "no-appendfsync-on-rewrite no",
    "auto-aof-rewrite-percentage 100",
    "auto-aof-rewrite-min-size 64mb",
    rdb ? "save 900 1 300 10 60 10000" : 'save ""',
    "stop-writes-on-bgsave-error yes",
    "rdbcompression yes",
    "rdbchecksum yes",
    "",
    "# memory",
    `maxmemory ${c.maxmemoryBytes}`,
    `maxmemory-policy ${c.maxmemoryPolicy}`,
    "maxmemory-samples 5",
    "lazyfree-lazy-eviction yes",
    "lazyfree-lazy-expire yes",
    "",
    "# auth: ACL users (default off, app, admin) with hashed passwords; replication authenticates as admin",
    `aclfile ${f.acl}`,
    `masteruser ${ADMIN_USER}`,
    `include ${f.secrets}`,
    "",
  ];
  return lines.join("\n");
}
