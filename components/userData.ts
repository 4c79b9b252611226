/**
 * One node's EC2 user-data: a bash script that installs Redis if missing, mounts the node's data
 * volume, reads secrets from SSM, writes redis.conf and the systemd unit, starts Redis and forms or
 * joins the cluster. Pure: the component renders it with deploy-time values; the integration tests
 * render it with the test hosts' values and run it unmodified.
 *
 * The logic lives in real shell files (components/scripts/*.sh, shellcheck-clean); this module only
 * prepends the node's variables. No secret is ever passed in: only SSM parameter names.
 */
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { NodeAddress } from "./topology";
import { EvictionPolicy, Persistence } from "./config";
import {
  ADMIN_ACL_RULES,
  ADMIN_USER,
  APP_ACL_RULES,
  APP_USER,
  EC2_PATHS,
  nodeFiles,
  renderRedisConf,
} from "./redisConf";

export const SCRIPTS_DIR = path.join(__dirname, "scripts");

export function readScript(name: "lib-cluster.sh" | "bootstrap.sh"): string {
  return fs.readFileSync(path.join(SCRIPTS_DIR, name), "utf8");
}

/** Names of the SSM parameters a stack writes; the instance role may read only these. */
export interface SsmNames {
  prefix: string;
  appPassword: string;
  adminPassword: string;
  tlsKey(nodeName: string): string;
  tlsCert(nodeName: string): string;
  tlsCa: string;
}

export function ssmNames(project: string, stack: string): SsmNames {
  const prefix = `/${project}/${stack}`;
  return {
    prefix,
    appPassword: `${prefix}/app-password`,
    adminPassword: `${prefix}/admin-password`,
    tlsKey: (nodeName) => `${prefix}/tls/${nodeName}.key`,
    tlsCert: (nodeName) => `${prefix}/tls/${nodeName}.crt`,
    tlsCa: `${prefix}/tls/ca.crt`,
  };
}

/** The plan as the shell reads it: "name ip port role shard slot_start slot_end", masters first. */
export function renderClusterPlan(all: NodeAddress[]): string {
  return [...all]
    .sort((a, b) => a.node.index - b.node.index)
    .map(
      ({ node, ip, port }) =>
        `${node.name} ${ip} ${port} ${node.role} ${node.shard} ${node.slots.start} ${node.slots.end}`,
    )
    .join("\n");
}

/**
 * RestartSec of the node's unit: a crashed Redis comes back only after the cluster had time to fail
 * over (2 x node timeout + 3 s, the fault suite's recovery bound). It then returns in one known state,
 * a replica of the master that took over (fault suite, scenario 8), instead of racing the election
 * while it reloads its AOF.
 */
export function restartDelaySeconds(nodeTimeoutMs: number): number {
  return Math.ceil((2 * nodeTimeoutMs + 3000) / 1000);
}

/** The systemd unit that runs the node (Restart=always after restartDelaySeconds). */
export function renderSystemdUnit(nodeTimeoutMs: number): string {
  const restartSec = restartDelaySeconds(nodeTimeoutMs);
  const f = nodeFiles(EC2_PATHS);
  return [
    "[Unit]",
    "Description=Redis Cluster node (redis-stack)",
    "After=network-online.target local-fs.target",
    "Wants=network-online.target",
    `RequiresMountsFor=${EC2_PATHS.dataDir}`,
    "",
    "[Service]",
    "Type=simple",
    "User=redis",
    "Group=redis",
    `ExecStartPre=/usr/bin/mountpoint -q ${EC2_PATHS.dataDir}`,
    `ExecStart=/usr/bin/redis-server ${f.conf}`,
    "LimitNOFILE=65535",
    "Restart=always",
    `RestartSec=${restartSec}`,
    "TimeoutStopSec=60",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

export interface UserDataInput {
  self: NodeAddress;
  cluster: NodeAddress[];
  region: string;
  dataVolumeId: string;
  ssm: SsmNames;
  redisConf: string;
  nodeTimeoutMs: number;
  /**
   * TLS on: the node reads its key, its certificate and the CA from SSM at boot, so a renewed
   * certificate reaches a node on its next boot (user-data is fixed at launch).
   */
  tls: boolean;
  /** How long a node waits for its peers before giving up (seconds). */
  peerWaitSeconds?: number;
}

/** Single-quotes a value for bash. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function renderUserData(u: UserDataInput): string {
  const f = nodeFiles(EC2_PATHS);
  const { node } = u.self;
  const vars: Array<[string, string]> = [
    ["NODE_NAME", node.name],
    ["NODE_INDEX", String(node.index)],
    ["NODE_ROLE", node.role],
    ["NODE_SHARD", String(node.shard)],
    ["NODE_IP", u.self.ip],
    ["REDIS_PORT", String(u.self.port)],
    ["AWS_REGION", u.region],
    ["DATA_VOLUME_ID", u.dataVolumeId],
    ["SSM_APP_PASSWORD", u.ssm.appPassword],
    ["SSM_ADMIN_PASSWORD", u.ssm.adminPassword],
    ["SSM_TLS_KEY", u.tls ? u.ssm.tlsKey(node.name) : ""],
    ["SSM_TLS_CERT", u.tls ? u.ssm.tlsCert(node.name) : ""],
    ["SSM_TLS_CA", u.tls ? u.ssm.tlsCa : ""],
    ["APP_USER", APP_USER],
    ["ADMIN_USER", ADMIN_USER],
    ["APP_ACL_RULES", APP_ACL_RULES],
    ["ADMIN_ACL_RULES", ADMIN_ACL_RULES],
    ["ADMIN_PASS_FILE", `${EC2_PATHS.confDir}/admin.pass`],
    ["TLS", u.tls ? "yes" : "no"],
    ["TLS_CA", f.caCert],
    ["TLS_CERT", f.cert],
    ["TLS_KEY", f.key],
    ["PEER_WAIT_SECONDS", String(u.peerWaitSeconds ?? 900)],
    ["CLUSTER_PLAN", renderClusterPlan(u.cluster)],
    ["REDIS_CONF", u.redisConf.trimEnd()],
    ["SYSTEMD_UNIT", renderSystemdUnit(u.nodeTimeoutMs)],
  ];
  return [
    "#!/bin/bash",
    `# redis-stack user-data for ${node.name}: ${node.role} of shard ${node.shard} (slots ${node.slots.start}-${node.slots.end}).`,
    "# Rendered by components/userData.ts; holds no secret (passwords and keys are read from SSM at boot).",
    "set -euo pipefail",
    "umask 027",
    'export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    "",
    ...vars.map(([k, v]) => `${k}=${shq(v)}`),
    "",
    readScript("lib-cluster.sh").trimEnd(),
    "",
    readScript("bootstrap.sh").trimEnd(),
    "",
    "bootstrap_main",
    "",
  ].join("\n");
}

/** What every node of one cluster shares. */
export interface ClusterSpec {
  nodeTimeoutMs: number;
  maxmemoryBytes: number;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  region: string;
  ssm: SsmNames;
  peerWaitSeconds?: number;
}

/** One node's user-data from the cluster's spec: the single path used by the component and the tests. */
export function renderNodeUserData(
  spec: ClusterSpec,
  cluster: NodeAddress[],
  self: NodeAddress,
  dataVolumeId: string,
  tls: boolean,
): string {
  const redisConf = renderRedisConf({
    announceIp: self.ip,
    port: self.port,
    nodeTimeoutMs: spec.nodeTimeoutMs,
    maxmemoryBytes: spec.maxmemoryBytes,
    maxmemoryPolicy: spec.maxmemoryPolicy,
    persistence: spec.persistence,
    tls,
    paths: EC2_PATHS,
  });
  return renderUserData({
    self,
    cluster,
    region: spec.region,
    dataVolumeId,
    ssm: spec.ssm,
    redisConf,
    nodeTimeoutMs: spec.nodeTimeoutMs,
    tls,
    peerWaitSeconds: spec.peerWaitSeconds,
  });
}

/** EC2 takes at most 16 KB of user-data; cloud-init unpacks gzip, so the script ships compressed. */
export const USER_DATA_LIMIT_BYTES = 16384;

export function encodeUserData(script: string): string {
  const gz = zlib.gzipSync(Buffer.from(script, "utf8"), { level: 9 });
  if (gz.length > USER_DATA_LIMIT_BYTES)
    throw new Error(`user-data is ${gz.length} bytes gzipped, over EC2's ${USER_DATA_LIMIT_BYTES}`);
  return gz.toString("base64");
}

export function decodeUserData(base64: string): string {
  return zlib.gunzipSync(Buffer.from(base64, "base64")).toString("utf8");
}
