/**
 * One node's EC2 user-data and the units it installs. cloud-init runs user-data once per instance, so
 * the user-data only writes the node's facts (node.env), its scripts and three systemd units, then runs
 * `node.sh first-boot` (packages, then start). The units hold at every boot: prepare (volume, secrets and
 * TLS from SSM), the server, and the cluster step (form or join, publish status). Pure: the component
 * renders it with deploy-time values; the lab boots it unmodified through real cloud-init.
 *
 * The logic lives in real shell files (components/ec2/node/*.sh, shellcheck-clean). No secret is ever
 * passed in: only SSM parameter names.
 */
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { createHash } from "crypto";
import { NodeAddress } from "../topology";
import { EvictionPolicy, Persistence } from "../../config/settings";
import {
  ADMIN_ACL_RULES,
  ADMIN_USER,
  APP_ACL_RULES,
  APP_USER,
  EC2_PATHS,
  EXPORTER_PORT,
  MONITOR_ACL_RULES,
  MONITOR_USER,
  nodeFiles,
  renderRedisConf,
  REPLICATION_ACL_RULES,
  REPLICATION_USER,
} from "./redisConf";

import { METRICS_NAMESPACE } from "../../monitoring/metrics";
import { refusedGrants } from "./appAcl";
import { LIVE_DIRECTIVES } from "../desired";
import { backupSchedule } from "../backups";
import {
  renderSentinelConf,
  SENTINEL_ACL_RULES,
  SENTINEL_APP_ACL_RULES,
  SENTINEL_DIR,
  SENTINEL_PEER_ACL_RULES,
  SENTINEL_PORT,
  SENTINEL_USER,
  sentinelReplication,
} from "../sentinel";

export const SCRIPTS_DIR = __dirname;

export type ScriptName =
  "lib-cluster.sh" | "lib-sentinel.sh" | "lib-backup.sh" | "lib-live.sh" | "node.sh" | "metrics.py";

export function readScript(name: ScriptName): string {
  return fs.readFileSync(path.join(SCRIPTS_DIR, name), "utf8");
}

/**
 * A script as a node gets it (in the user-data, or through SSM: ssmShippedScripts): without its full-line
 * comments (EC2 takes 16 KB of user-data and the scripts' comments are a third of it), the shebang kept.
 * The repository's copy is the documented one.
 */
export function shippedScript(name: ScriptName): string {
  return readScript(name)
    .split("\n")
    .filter((line, i) => (i === 0 && line.startsWith("#!")) || !/^\s*#/.test(line))
    .join("\n");
}

/**
 * Scripts that reach the node through SSM instead of the user-data, which EC2 caps at 16 KB: each is the
 * shipped text, gzipped, base64'd and cut into Standard-tier parameters (4 KB each, no charge). node.sh
 * (prepare, at every boot) installs one whenever the file on the node does not have the SHA-256 that
 * the user-data names. Only what runs after the packages are in may live here (node.sh needs awscli): the
 * metrics collector, and the functions node.sh sources once prepare has installed them (load_shipped_libs):
 * the backups' (lib-backup.sh), the live checks, app ACL and TLS renewal (lib-live.sh) and the Sentinel
 * topology's (lib-sentinel.sh; a cluster node never sources it).
 */
export const SSM_SHIPPED_SCRIPTS = [
  { name: "metrics.py", mode: "0755" },
  { name: "lib-backup.sh", mode: "0644" },
  { name: "lib-live.sh", mode: "0644" },
  { name: "lib-sentinel.sh", mode: "0644" },
] as const satisfies ReadonlyArray<{
  name: ScriptName;
  mode: string;
}>;

/** The largest value of a Standard-tier SSM parameter (characters). */
export const SSM_STANDARD_VALUE_MAX = 4096;

export interface SsmShippedScript {
  name: ScriptName;
  /** Where the node installs it. */
  path: string;
  mode: string;
  /** SHA-256 of the installed text (hex). */
  sha256: string;
  /** Parameter names and values, in order: their values concatenated are base64(gzip(text)). */
  chunks: Array<{ parameter: string; value: string }>;
}

export function ssmShippedScripts(ssm: SsmNames): SsmShippedScript[] {
  return SSM_SHIPPED_SCRIPTS.map(({ name, mode }) => {
    const text = shippedScript(name);
    const packed = zlib.gzipSync(Buffer.from(text, "utf8"), { level: 9 }).toString("base64");
    const chunks: SsmShippedScript["chunks"] = [];
    for (let i = 0; i * SSM_STANDARD_VALUE_MAX < packed.length; i++)
      chunks.push({
        parameter: ssm.script(name, i),
        value: packed.slice(i * SSM_STANDARD_VALUE_MAX, (i + 1) * SSM_STANDARD_VALUE_MAX),
      });
    return {
      name,
      path: `${NODE_LIB_DIR}/${name}`,
      mode,
      sha256: createHash("sha256").update(text, "utf8").digest("hex"),
      chunks,
    };
  });
}

/** node.env's SHIPPED_SCRIPTS: one line per script, "path mode sha256 parameter...". */
export function renderShippedScriptsList(scripts: SsmShippedScript[]): string {
  return scripts.map((s) => [s.path, s.mode, s.sha256, ...s.chunks.map((c) => c.parameter)].join(" ")).join("\n");
}

/** Names of the SSM parameters a stack writes; the instance role may read only these. */
export interface SsmNames {
  prefix: string;
  appPassword: string;
  adminPassword: string;
  /** The password replicas log in to their master with (ACL user `replication`). */
  replicationPassword: string;
  /** The password of the nodes' Prometheus exporter (ACL user `monitor`). */
  monitorPassword: string;
  /** Sentinel topology: the password of the Sentinels' user, on the data nodes and on each other. */
  sentinelPassword: string;
  tlsKey(nodeName: string): string;
  tlsCert(nodeName: string): string;
  tlsCa: string;
  /** The desired settings every node converges to (components/ec2/desired.ts); rewritten by each `pulumi up`. */
  settings: string;
  /** Where each node publishes its state (`ok`, `starting`, `failed` and why); nodes may write only here. */
  statusPrefix: string;
  status(nodeName: string): string;
  /** Chunk `index` of a script shipped through SSM (ssmShippedScripts). */
  script(name: ScriptName, index: number): string;
}

export function ssmNames(project: string, stack: string): SsmNames {
  const prefix = `/${project}/${stack}`;
  return {
    prefix,
    appPassword: `${prefix}/app-password`,
    adminPassword: `${prefix}/admin-password`,
    replicationPassword: `${prefix}/replication-password`,
    monitorPassword: `${prefix}/monitor-password`,
    sentinelPassword: `${prefix}/sentinel-password`,
    tlsKey: (nodeName) => `${prefix}/tls/${nodeName}.key`,
    tlsCert: (nodeName) => `${prefix}/tls/${nodeName}.crt`,
    tlsCa: `${prefix}/tls/ca.crt`,
    settings: `${prefix}/settings`,
    statusPrefix: `${prefix}/status`,
    status: (nodeName) => `${prefix}/status/${nodeName}`,
    script: (name, index) => `${prefix}/scripts/${name}/${index}`,
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

/** Where the node's own scripts and facts live on the instance (no package owns these paths). */
export const NODE_LIB_DIR = "/usr/local/lib/redis-stack";
export const NODE_ENV_FILE = "/etc/redis-stack/node.env";
export const NODE_SCRIPT = `${NODE_LIB_DIR}/node.sh`;
/** The metrics collector on the instance (run by Debian's python3, which cloud-init itself needs). */
export const METRICS_SCRIPT = `${NODE_LIB_DIR}/metrics.py`;
/**
 * The units that hold at every boot: prepare (volume, secrets), the server, the cluster step; the
 * settings timer that keeps a running node at the stack's desired settings (day 2); the metrics and the
 * backup timers.
 */
export const UNITS = {
  prepare: "redis-node-prepare.service",
  server: "redis-node.service",
  cluster: "redis-node-cluster.service",
  settings: "redis-node-settings.service",
  settingsTimer: "redis-node-settings.timer",
  metrics: "redis-node-metrics.service",
  metricsTimer: "redis-node-metrics.timer",
  backup: "redis-node-backup.service",
  /** Written on every node; node.sh enables it only when BACKUP_INTERVAL_HOURS is above 0. */
  backupTimer: "redis-node-backup.timer",
  /** Sentinel topology only: the node's Sentinel. */
  sentinel: "redis-node-sentinel.service",
  /** Redis Cluster only: a replica takes over as soon as the cluster flags its master failed. */
  watch: "redis-node-watch.service",
} as const;

/** How often a running node checks the desired settings (the bound on a live change is about twice this). */
export const SETTINGS_INTERVAL_SECONDS = 20;

/** The systemd unit that runs the server (Restart=always after restartDelaySeconds). */
export function renderSystemdUnit(nodeTimeoutMs: number): string {
  const restartSec = restartDelaySeconds(nodeTimeoutMs);
  const f = nodeFiles(EC2_PATHS);
  return [
    "[Unit]",
    "Description=Redis Cluster node (redis-stack)",
    `Requires=${UNITS.prepare}`,
    `After=${UNITS.prepare} network-online.target`,
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    "User=redis",
    "Group=redis",
    // The pidfile's directory: Debian's /run/redis belongs to its own (disabled) unit.
    `RuntimeDirectory=${EC2_PATHS.runDir.replace(/^\/run\//, "")}`,
    `ExecStartPre=/usr/bin/mountpoint -q ${EC2_PATHS.dataDir}`,
    // A crash can leave the last AOF file's end damaged, which Redis refuses: cut it back (as root, "+").
    `ExecStartPre=+${NODE_SCRIPT} check-aof`,
    `ExecStart=/usr/bin/redis-server ${f.conf}`,
    // A planned stop (reboot, stop/start, replacement, rolling restart) first hands a master's slots to
    // its replica (CLUSTER FAILOVER): no failover timeout. As root ("+"), never failing the stop ("-").
    `ExecStop=-+${NODE_SCRIPT} handoff`,
    // A crash (systemd skips ExecStop when the process failed): the replica takes over at once.
    `ExecStopPost=-+${NODE_SCRIPT} handoff`,
    "LimitNOFILE=65535",
    "Restart=always",
    `RestartSec=${restartSec}`,
    "TimeoutStopSec=60",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/**
 * The node's Sentinel (Sentinel topology). Its config file is node.sh's (prepare regenerates it at each
 * boot, with the primary the other Sentinels name), and Sentinel rewrites it as it learns; restarted
 * quickly, since the other Sentinels keep the quorum meanwhile.
 */
export function renderSentinelUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: Sentinel (redis-stack)",
    `Requires=${UNITS.prepare}`,
    `After=${UNITS.prepare} network-online.target`,
    // Stopped after the server (the reverse order): a primary's handoff asks this Sentinel to fail over.
    `Before=${UNITS.server}`,
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    "User=redis",
    "Group=redis",
    "UMask=0077",
    `ExecStart=/usr/bin/redis-server ${SENTINEL_DIR}/sentinel.conf --sentinel`,
    "LimitNOFILE=65535",
    "Restart=always",
    "RestartSec=2",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/**
 * watch (Redis Cluster): while Redis runs, a replica watches the cluster's view of its master and takes over
 * as soon as the master is flagged FAIL, without Redis's 500-1000 ms election delay (lib-live.sh
 * failover_watch). Restarted whenever it ends: Redis down just makes it wait.
 */
export function renderWatchUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: a replica takes over at once when its master fails (redis-stack)",
    `After=${UNITS.cluster}`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${NODE_SCRIPT} watch`,
    "Restart=always",
    "RestartSec=2",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/log",
    "PrivateTmp=yes",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/** prepare: every boot, before the server: host tuning, the data volume, secrets and TLS from SSM. */
export function renderPrepareUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: host tuning, data volume, secrets and TLS material from SSM (redis-stack)",
    "Wants=network-online.target",
    "After=network-online.target local-fs.target",
    `Before=${UNITS.server}`,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${NODE_SCRIPT} prepare`,
    "TimeoutStartSec=1200",
    "StandardOutput=journal+console",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/** cluster: every boot, after the server: form or join the cluster, then publish the node's status. */
export function renderClusterUnit(peerWaitSeconds: number): string {
  return [
    "[Unit]",
    "Description=Redis node: form or join the cluster, publish status to SSM (redis-stack)",
    `Wants=${UNITS.server}`,
    `After=${UNITS.server}`,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${NODE_SCRIPT} converge`,
    `TimeoutStartSec=${peerWaitSeconds + 600}`,
    "StandardOutput=journal+console",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
}

/** settings: a running node applies the stack's desired settings (live), reshards, rolls (node.sh settings). */
export function renderSettingsUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: apply the stack's desired settings, reshard, roll (redis-stack)",
    // Only a node that has finished its cluster step acts (node.sh checks; no Requisite=, which would stop
    // this run when a rolling restart restarts the cluster step).
    `After=${UNITS.cluster}`,
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${NODE_SCRIPT} settings`,
    // A reshard moves data: hours for large shards. The timer does not start a second run meanwhile.
    "TimeoutStartSec=12h",
  ].join("\n");
}

export function renderSettingsTimer(): string {
  return [
    "[Unit]",
    "Description=Redis node: check the stack's desired settings (redis-stack)",
    "",
    "[Timer]",
    `OnActiveSec=${SETTINGS_INTERVAL_SECONDS}`,
    `OnUnitInactiveSec=${SETTINGS_INTERVAL_SECONDS}`,
    "AccuracySec=1s",
    "",
    "[Install]",
    "WantedBy=timers.target",
  ].join("\n");
}

/** metrics: one collection of the node's metrics, published to CloudWatch (metrics.py). */
export function renderMetricsUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: publish its metrics to CloudWatch (redis-stack)",
    `After=${UNITS.prepare}`,
    // Installed from SSM by prepare (ssmShippedScripts): until then a trigger is skipped, not failed.
    `ConditionPathExists=${METRICS_SCRIPT}`,
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=/usr/bin/python3 ${METRICS_SCRIPT}`,
    "TimeoutStartSec=120",
    "Nice=5",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    // systemd creates the state dir (metrics.py STATE_FILE); the rest of the system is read-only to it.
    "StateDirectory=redis-stack",
    "ReadWritePaths=/var/log",
    "PrivateTmp=yes",
  ].join("\n");
}

/**
 * On the wall clock's period boundaries (every 10 s, 30 s or minute), not "N s after the last run": each
 * CloudWatch period then gets exactly one collection per node, however long a run takes (a relative timer
 * drifted to one run per 12.6 s at 10 s on a loaded lab).
 */
export function renderMetricsTimer(intervalSeconds: number): string {
  if (60 % intervalSeconds !== 0) throw new Error(`the metrics interval must divide a minute (got ${intervalSeconds})`);
  return [
    "[Unit]",
    "Description=Redis node: collect metrics every period (redis-stack)",
    "",
    "[Timer]",
    `OnCalendar=*-*-* *:*:${intervalSeconds >= 60 ? "00" : `00/${intervalSeconds}`}`,
    "AccuracySec=1s",
    "",
    "[Install]",
    "WantedBy=timers.target",
  ].join("\n");
}

/**
 * backup: one backup of the cluster to its bucket (node.sh backup scheduled, lib-backup.sh). Sandboxed like
 * the metrics collector; it may write its log, its state (/var/lib/redis-stack) and the data volume (where
 * an RDB has room; /tmp is private and on the small root volume).
 */
export function renderBackupUnit(): string {
  return [
    "[Unit]",
    "Description=Redis node: back up the cluster's data to its S3 bucket (redis-stack)",
    `After=${UNITS.cluster}`,
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${NODE_SCRIPT} backup scheduled`,
    // An RDB of a large shard takes a while to save and upload; the timer starts no second run meanwhile.
    "TimeoutStartSec=6h",
    // Below Redis, for the CPU and (best-effort class, priority from the nice level) for the disk.
    "Nice=10",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "StateDirectory=redis-stack",
    `ReadWritePaths=/var/log ${EC2_PATHS.dataDir}`,
    "PrivateTmp=yes",
  ].join("\n");
}

/**
 * The backup timer (components/ec2/backups.ts backupSchedule). Every node has it and fires at the same
 * times; node.sh backup decides which node takes the backup. With no schedule (backupIntervalHours 0) it
 * has no trigger and no [Install] section: `systemctl enable` links nothing (and succeeds), and systemd
 * refuses to start it ("Timer unit lacks value setting"), so no backup runs by mistake. node.sh enables
 * and starts it only when BACKUP_INTERVAL_HOURS is above 0.
 */
export function renderBackupTimer(intervalHours: number): string {
  const schedule = backupSchedule(intervalHours);
  if (schedule.kind === "off")
    return [
      "[Unit]",
      "Description=Redis node: scheduled backups are off (backupIntervalHours 0) (redis-stack)",
      "",
      "[Timer]",
    ].join("\n");
  const trigger =
    schedule.kind === "calendar"
      ? [`OnCalendar=${schedule.onCalendar}`, "Persistent=true"]
      : // Persistent= applies to calendar timers only.
        [`OnActiveSec=${schedule.everyHours}h`, `OnUnitActiveSec=${schedule.everyHours}h`];
  return [
    "[Unit]",
    `Description=Redis node: back up the cluster every ${intervalHours} h (redis-stack)`,
    "",
    "[Timer]",
    ...trigger,
    "RandomizedDelaySec=0",
    "AccuracySec=1s",
    "",
    "[Install]",
    "WantedBy=timers.target",
  ].join("\n");
}

/** What the collector publishes as: the Stack dimension and the period. */
export interface MetricsSpec {
  stack: string;
  intervalSeconds: number;
}

/** Where a node's backups go and how often it takes one (components/ec2/backups.ts). */
export interface BackupSpec {
  /** The cluster's backup bucket (its name). */
  bucket: string;
  /** The cluster's prefix in it (backupObjectPrefix). */
  prefix: string;
  /** backupIntervalHours: hours between scheduled backups; 0: none. */
  intervalHours: number;
  /** restoreFrom: the backup a new stack's masters load before their Redis first starts (lib-backup.sh). */
  restoreFrom?: string;
}

export interface UserDataInput {
  self: NodeAddress;
  cluster: NodeAddress[];
  region: string;
  dataVolumeId: string;
  ssm: SsmNames;
  redisConf: string;
  nodeTimeoutMs: number;
  /** TLS on: the node reads its key, its certificate and the CA from SSM at every boot. */
  tls: boolean;
  /**
   * With TLS: the SHA-256 of the CA's DER (certificateSha256), the only CA the node accepts from SSM, at boot
   * and live: whoever else can write the CA parameter cannot make the node trust another CA (the cluster
   * bus authenticates peers by certificate alone).
   */
  tlsCaSha256?: string;
  /** How long a node waits for its peers before giving up (seconds). */
  peerWaitSeconds?: number;
  /** How long the first boot retries apt (the NAT may still be coming up), seconds. */
  aptWaitSeconds?: number;
  metrics: MetricsSpec;
  /** The Sentinel topology (absent: a Redis Cluster node). */
  sentinel?: SentinelSpec;
  /** The cluster's backups (absent: no bucket, no scheduled backups). */
  backup?: BackupSpec;
}

/** What a node of the Sentinel topology needs beyond a cluster node's facts. */
export interface SentinelSpec {
  /** REDIS_SENTINEL_MASTER (sentinel.ts sentinelMasterName). */
  masterName: string;
}

/**
 * How awscli on a node reaches IMDS for its role credentials. Its defaults (one attempt, 1 s) fail a call
 * whenever IMDS answers late on a busy instance (a CI run lost a metrics period to it). 2 s an attempt still
 * failed runs in CI when IMDS took 1.5 s on a loaded host; 3 s leaves it the same margin again, and 3 x 3 s
 * stays inside the shortest metrics period. node.sh and metrics.py pass them on.
 */
export const AWS_CLI_IMDS = { AWS_METADATA_SERVICE_TIMEOUT: "3", AWS_METADATA_SERVICE_NUM_ATTEMPTS: "3" } as const;

/** Single-quotes a value for bash. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * SHA-256 of a certificate's DER (the base64 body of its first PEM block), lower-case hex: what
 * `openssl x509 -outform DER | sha256sum` prints on the node for the same certificate.
 */
export function certificateSha256(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error("not a PEM certificate");
  return createHash("sha256")
    .update(Buffer.from(m[1].replace(/\s+/g, ""), "base64"))
    .digest("hex");
}

/** The node's facts as sourced by node.sh: non-secret values only (SSM names, never values). */
export function renderNodeEnv(u: UserDataInput): string {
  const f = nodeFiles(EC2_PATHS);
  if (u.tls && !/^[0-9a-f]{64}$/.test(u.tlsCaSha256 ?? ""))
    throw new Error(`${u.self.node.name}: TLS needs the CA's SHA-256 to pin (tlsCaSha256), got ${u.tlsCaSha256}`);
  const { node } = u.self;
  const peerWait = u.peerWaitSeconds ?? 900;
  const vars: Array<[string, string]> = [
    ["NODE_NAME", node.name],
    ["NODE_INDEX", String(node.index)],
    ["NODE_ROLE", node.role],
    ["NODE_SHARD", String(node.shard)],
    ["NODE_IP", u.self.ip],
    ["REDIS_PORT", String(u.self.port)],
    ["AWS_REGION", u.region],
    ...Object.entries(AWS_CLI_IMDS),
    ["DATA_VOLUME_ID", u.dataVolumeId],
    ["SSM_APP_PASSWORD", u.ssm.appPassword],
    ["SSM_ADMIN_PASSWORD", u.ssm.adminPassword],
    ["SSM_REPLICATION_PASSWORD", u.ssm.replicationPassword],
    ["SSM_MONITOR_PASSWORD", u.ssm.monitorPassword],
    ["SSM_TLS_KEY", u.tls ? u.ssm.tlsKey(node.name) : ""],
    ["SSM_TLS_CERT", u.tls ? u.ssm.tlsCert(node.name) : ""],
    ["SSM_TLS_CA", u.tls ? u.ssm.tlsCa : ""],
    ["SSM_STATUS", u.ssm.status(node.name)],
    ["SSM_STATUS_PREFIX", u.ssm.statusPrefix],
    ["SSM_SETTINGS", u.ssm.settings],
    ["SECRETS_WAIT_SECONDS", "300"],
    ["APT_WAIT_SECONDS", String(u.aptWaitSeconds ?? 900)],
    ["APP_USER", APP_USER],
    ["ADMIN_USER", ADMIN_USER],
    ["APP_ACL_RULES", APP_ACL_RULES],
    ["APP_ACL_REFUSED", refusedGrants().join(" ")],
    ["LIVE_DIRECTIVES", LIVE_DIRECTIVES.join(" ")],
    ["ADMIN_ACL_RULES", ADMIN_ACL_RULES],
    ["REPLICATION_USER", REPLICATION_USER],
    ["REPLICATION_ACL_RULES", REPLICATION_ACL_RULES],
    ["MONITOR_USER", MONITOR_USER],
    ["MONITOR_ACL_RULES", MONITOR_ACL_RULES],
    ["EXPORTER_PORT", String(EXPORTER_PORT)],
    ["ADMIN_PASS_FILE", `${EC2_PATHS.confDir}/admin.pass`],
    ["TLS", u.tls ? "yes" : "no"],
    ["TLS_CA", f.caCert],
    ["TLS_CERT", f.cert],
    ["TLS_KEY", f.key],
    ["TLS_CA_SHA256", u.tls ? (u.tlsCaSha256 ?? "") : ""],
    ["PEER_WAIT_SECONDS", String(peerWait)],
    ["DATA_DIR", EC2_PATHS.dataDir],
    ["METRICS_NAMESPACE", METRICS_NAMESPACE],
    ["METRICS_STACK", u.metrics.stack],
    ["METRICS_INTERVAL_SECONDS", String(u.metrics.intervalSeconds)],
    ["BACKUP_BUCKET", u.backup?.bucket ?? ""],
    ["BACKUP_PREFIX", u.backup?.prefix ?? ""],
    ["BACKUP_INTERVAL_HOURS", String(u.backup?.intervalHours ?? 0)],
    // Only when set: every byte of the user-data counts (EC2's 16 KB).
    ...(u.backup?.restoreFrom ? ([["RESTORE_FROM", u.backup.restoreFrom]] as Array<[string, string]>) : []),
    ["SHIPPED_SCRIPTS", renderShippedScriptsList(ssmShippedScripts(u.ssm))],
    ["CLUSTER_PLAN", renderClusterPlan(u.cluster)],
    ["REDIS_CONF", u.redisConf.trimEnd()],
    ...sentinelEnv(u),
  ];
  return vars.map(([k, v]) => `${k}=${shq(v)}`).join("\n");
}

/**
 * node.env's Sentinel facts: TOPOLOGY, the users and rules, and the non-secret sentinel.conf as rendered for
 * the planned primary (node.sh points its monitor line at the current one, and appends the secret lines).
 */
function sentinelEnv(u: UserDataInput): Array<[string, string]> {
  if (!u.sentinel) return [["TOPOLOGY", "cluster"]];
  const f = nodeFiles(EC2_PATHS);
  const primary = u.cluster.find((n) => n.node.role === "master");
  if (!primary) throw new Error("a Sentinel topology needs its planned primary");
  return [
    ["TOPOLOGY", "sentinel"],
    ["SENTINEL_MASTER", u.sentinel.masterName],
    ["SENTINEL_PORT", String(SENTINEL_PORT)],
    ["SENTINEL_DIR", SENTINEL_DIR],
    ["SENTINEL_USER", SENTINEL_USER],
    ["SENTINEL_ACL_RULES", SENTINEL_ACL_RULES],
    ["SENTINEL_PEER_ACL_RULES", SENTINEL_PEER_ACL_RULES],
    ["SENTINEL_APP_ACL_RULES", SENTINEL_APP_ACL_RULES],
    ["SSM_SENTINEL_PASSWORD", u.ssm.sentinelPassword],
    ["SENTINEL_PASS_FILE", `${EC2_PATHS.confDir}/sentinel.pass`],
    ["ROLE_CONF", f.role],
    [
      "SENTINEL_CONF",
      renderSentinelConf({
        masterName: u.sentinel.masterName,
        announceIp: u.self.ip,
        primaryIp: primary.ip,
        redisPort: primary.port,
        sentinels: u.cluster.length,
        nodeTimeoutMs: u.nodeTimeoutMs,
        tls: u.tls ? { caCert: f.caCert, cert: f.cert, key: f.key } : false,
        dir: SENTINEL_DIR,
      }).trimEnd(),
    ],
  ];
}

const HEREDOC_END = "REDIS_STACK_FILE_END";

/** A bash step that writes `content` to `path` verbatim (a quoted heredoc: no expansion) with a mode. */
function writeFileStep(path: string, mode: string, content: string): string {
  if (content.split("\n").includes(HEREDOC_END)) throw new Error(`${path} contains the heredoc terminator`);
  return [`cat >${path} <<'${HEREDOC_END}'`, content.trimEnd(), HEREDOC_END, `chmod ${mode} ${path}`].join("\n");
}

/**
 * The user-data: cloud-init runs it once per instance. It only installs the node's files (facts,
 * scripts, units) and hands over to `node.sh first-boot`; whatever must hold at every boot lives in
 * the units it installs, since a reboot, a stop/start or an auto-recovery does not run it again.
 */
export function renderUserData(u: UserDataInput): string {
  const { node } = u.self;
  const peerWait = u.peerWaitSeconds ?? 900;
  return [
    "#!/bin/bash",
    `# redis-stack user-data for ${node.name}: ${node.role} of shard ${node.shard} (slots ${node.slots.start}-${node.slots.end}).`,
    // The rendered files name their renderers by the paths they had when the deployed stacks were created:
    // the text is part of every instance's user-data, which the graph fixtures hold unchanged.
    "# Rendered by components/userData.ts; holds no secret (passwords and keys are read from SSM at every boot).",
    "set -euo pipefail",
    "umask 022",
    'export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    `install -d -m 0755 ${NODE_LIB_DIR} /etc/redis-stack`,
    writeFileStep(NODE_ENV_FILE, "0644", renderNodeEnv(u)),
    writeFileStep(`${NODE_LIB_DIR}/lib-cluster.sh`, "0644", shippedScript("lib-cluster.sh")),
    u.sentinel
      ? writeFileStep(`/etc/systemd/system/${UNITS.sentinel}`, "0644", renderSentinelUnit())
      : writeFileStep(`/etc/systemd/system/${UNITS.watch}`, "0644", renderWatchUnit()),
    writeFileStep(NODE_SCRIPT, "0755", shippedScript("node.sh")),
    writeFileStep(`/etc/systemd/system/${UNITS.prepare}`, "0644", renderPrepareUnit()),
    writeFileStep(`/etc/systemd/system/${UNITS.server}`, "0644", renderSystemdUnit(u.nodeTimeoutMs)),
    writeFileStep(`/etc/systemd/system/${UNITS.cluster}`, "0644", renderClusterUnit(peerWait)),
    writeFileStep(`/etc/systemd/system/${UNITS.settings}`, "0644", renderSettingsUnit()),
    writeFileStep(`/etc/systemd/system/${UNITS.settingsTimer}`, "0644", renderSettingsTimer()),
    writeFileStep(`/etc/systemd/system/${UNITS.metrics}`, "0644", renderMetricsUnit()),
    writeFileStep(`/etc/systemd/system/${UNITS.metricsTimer}`, "0644", renderMetricsTimer(u.metrics.intervalSeconds)),
    writeFileStep(`/etc/systemd/system/${UNITS.backup}`, "0644", renderBackupUnit()),
    writeFileStep(`/etc/systemd/system/${UNITS.backupTimer}`, "0644", renderBackupTimer(u.backup?.intervalHours ?? 0)),
    `exec ${NODE_SCRIPT} first-boot`,
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
  aptWaitSeconds?: number;
  metrics: MetricsSpec;
  sentinel?: SentinelSpec;
  backup?: BackupSpec;
}

/** TLS on, with the one CA a node accepts: the SHA-256 of its DER (certificateSha256). */
export interface TlsPin {
  caSha256: string;
}

/** One node's user-data from the cluster's spec: the single path used by the component and the tests. */
export function renderNodeUserData(
  spec: ClusterSpec,
  cluster: NodeAddress[],
  self: NodeAddress,
  dataVolumeId: string,
  pin: TlsPin | false,
): string {
  const tls = pin !== false;
  const redisConf = renderRedisConf({
    announceIp: self.ip,
    port: self.port,
    nodeTimeoutMs: spec.nodeTimeoutMs,
    maxmemoryBytes: spec.maxmemoryBytes,
    maxmemoryPolicy: spec.maxmemoryPolicy,
    persistence: spec.persistence,
    tls,
    paths: EC2_PATHS,
    settingsFile: nodeFiles(EC2_PATHS).settings,
    sentinel: spec.sentinel ? sentinelReplication(cluster.length - 1, spec.nodeTimeoutMs) : undefined,
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
    tlsCaSha256: pin ? pin.caSha256 : undefined,
    peerWaitSeconds: spec.peerWaitSeconds,
    aptWaitSeconds: spec.aptWaitSeconds,
    metrics: spec.metrics,
    sentinel: spec.sentinel,
    backup: spec.backup,
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
