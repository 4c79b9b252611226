/**
 * The prod stack's cluster on real Debian 12 hosts (lab/hosts): each host boots the exact gzip'd user-data
 * the EC2 component renders through real cloud-init, installs Redis with real apt from the lab's mirror,
 * and reads its secrets with the real awscli from the lab's AWS endpoint (lab/aws), which enforces the
 * node role policy the stack renders (components/ec2/iam.ts). Clients (redis-cli, ioredis) run on this machine
 * inside the lab's client namespace. Used by the integration tests, the root local mode and the
 * benchmarks; plus the acknowledged-write recorder (writer.ts) around it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CloudInitResult, ExecResult, Host, HostLab, LabNode, onHostNetwork } from "./hosts/hostLab";
import { ensureRootfs } from "./hosts/rootfs";
import { AwsEndpointControl, startAwsEndpoint, stopAwsEndpoint } from "./aws/control";
import { makeEndpointTls } from "./aws/tls";
import { WriterClient, WriterConfig, WriteResult, VerifyKeysResult, VerifyResult } from "./writer";
import { connectionContract } from "../components/contract/connection";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const keySlot = require("cluster-key-slot") as (key: string) => number;
import { ConfigError } from "../components/config/problems";
import { Settings } from "../components/config/settings";
import { checkDeployedChange, DeployedShape, deploymentOf, nodeChange } from "../components/ec2/day2";
import { renderDesiredSettings, versionOf } from "../components/ec2/desired";
import { appAclRules } from "../components/ec2/node/appAcl";
import { ExpectedNode, NodeStatus, ParameterReader, parseStatus, waitForCluster } from "../components/ec2/health";
import { nodeRolePolicy } from "../components/ec2/iam";
import { backupBucketPolicy } from "../components/ec2/backups";
import { DEFAULT_METRICS_INTERVAL, MetricsInterval } from "../components/monitoring/metrics";
import { ADMIN_USER, APP_USER, EC2_PATHS, REDIS_PORT } from "../components/ec2/node/redisConf";
import { planTopology, NodeAddress } from "../components/ec2/topology";
import {
  certificateSha256,
  renderNodeUserData,
  ssmShippedScripts,
  ClusterSpec,
  SsmNames,
  TlsPin,
} from "../components/ec2/node/userData";
import { generatePasswords, LAB_STACK, Passwords } from "./passwords";
import { makePki, Pki } from "./pki";
import { SENTINEL_PORT } from "../components/ec2/sentinel";
import { clusterNames, stackComponentName } from "../components/ec2/args";

/** The tests' lab subnet (a /24 on a bridge of their own); the local mode uses another. */
export const TEST_SUBNET = "10.77.0";
export const AZS = ["us-east-1a", "us-east-1b", "us-east-1c"];
export const LAB_ACCOUNT = "123456789012";
/** Each node's sparse data volume: 3 GiB, so the node's byte arithmetic meets sizes past 2^31 as on EC2. */
export const LAB_DATA_VOLUME_MIB = 3072;
export const LAB_ROLE = "redis-stack-lab-node";
export { LAB_STACK };
/** The lab stack's Sentinel master name, as the stack derives it. */
/** The lab's cluster is the stack's own component (`redis-lab`): its SSM names, metrics dimension and master name. */
export const LAB_COMPONENT = stackComponentName(LAB_STACK);
export const LAB_NAMES = clusterNames("redis-stack", LAB_STACK, LAB_COMPONENT);
export const LAB_SENTINEL_MASTER = LAB_NAMES.sentinelMaster;
/** The lab cluster's KMS key, as `pulumi up` would create it: its SecureStrings and its backups use it. */
export const LAB_KEY_ARN = `arn:aws:kms:us-east-1:${LAB_ACCOUNT}:key/6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f`;
/** The lab stack's backups: the bucket `pulumi up` would create (its name as AWS would give it) and its key. */
export const LAB_BACKUP = {
  bucket: "redis-lab-backups-20261205a1b2c3",
  keyArn: LAB_KEY_ARN,
  prefix: LAB_NAMES.backupPrefix,
};

export interface ClusterLab {
  lab: HostLab;
  settings: Settings;
  nodes: NodeAddress[];
  hosts: Host[];
  passwords: Passwords;
  pki?: Pki;
  /** Where the CA and node certificates are (a new certificate for a node: remove its files, makePki again). */
  pkiDir: string;
  userData: string[];
  ssm: SsmNames;
  /** The lab's AWS endpoint: parameters, instances, the request log, the mirror's reachability. */
  aws: AwsEndpointControl;
  /** The CA file for TLS clients on this machine (the client namespace shares its filesystem). */
  clientCa?: string;
  /** redis-cli against a node from the client namespace, as admin (default) or app. */
  cli(
    node: NodeAddress | string,
    args: string[],
    as?: "admin" | "app" | "none",
    timeoutMs?: number,
  ): Promise<ExecResult>;
  /** redis-cli against a node's Sentinel (Sentinel topology) from the client namespace, as admin. */
  sentinelCli(node: NodeAddress, args: string[], timeoutMs?: number): Promise<ExecResult>;
  /**
   * Sentinel topology: "ip:port" of the primary each of `nodes`' Sentinels names ("" when one does not
   * answer), in the order given.
   */
  sentinelPrimaries(nodes?: NodeAddress[]): Promise<string[]>;
  /**
   * Sentinel topology: waits until every live Sentinel lists every live replica as linked to the primary,
   * i.e. each is a failover candidate again (Sentinels read replicas from the primary's INFO every 10 s; a
   * node's own converge waits for the same before it reports ok). A cluster: waitConverged.
   */
  waitFailoverReady(timeoutMs?: number, nodes?: NodeAddress[]): Promise<number>;
  /** Waits until each of `nodes` (the live ones) sees every shard with a healthy master and the other live nodes as linked replicas. */
  waitConverged(timeoutMs?: number, nodes?: NodeAddress[]): Promise<number>;
  /**
   * First boot of every host (in the given order, `staggerMs` apart): cloud-init runs each user-data.
   * Resolves with each host's cloud-init result once all are done.
   */
  boot(order?: number[], staggerMs?: number): Promise<CloudInitResult[]>;
  /** Terminate host i and launch a new instance in its place (new instance id, registered with AWS). */
  replace(i: number, opts?: { blankVolume?: boolean }): Promise<CloudInitResult>;
  /** What a failed boot left behind on host i: the node's log and its units' journal (the last lines). */
  diagnose(i: number): Promise<string>;
  /** The host's network namespace with this machine's programs (node, redis-cli): a client on that host. */
  onHost(i: number): LabNode;
  /**
   * The lab's `pulumi up` of a changed stack config: the same checks as the stack's preview, new hosts
   * booted from their user-data, the desired-settings parameter rewritten, then the same wait as the
   * stack's (every node ok with the new settings, leaving nodes drained), and leaving hosts deleted.
   */
  deploy(next: Settings, opts?: DeployOptions): Promise<DeployResult>;
  /** A node's published status (SSM), parsed. */
  status(name: string): Promise<NodeStatus | undefined>;
  /** The roll generation of the desired settings now. */
  generation: number;
  /** Stops the endpoint and tears the hosts down; a second call waits for the first. */
  destroy(): Promise<void>;
}

export interface DeployOptions {
  /** A new roll generation (the stack's nodeGeneration). */
  generation?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface DeployResult {
  settingsVersion: string;
  added: string[];
  removed: string[];
  /** From the parameter write until every node reported the new settings (and leaving ones drained). */
  convergedMs: number;
}

/** The desired-settings parameter's text for these settings, as the stack renders it. */
export function desiredText(s: Settings, generation: number, plan: NodeAddress[]): string {
  return renderDesiredSettings({
    maxmemoryBytes: s.ec2?.maxmemoryBytes ?? 0,
    maxmemoryPolicy: s.maxmemoryPolicy,
    nodeTimeoutMs: s.ec2?.nodeTimeoutMs ?? 0,
    persistence: s.persistence,
    generation,
    plan,
    appAclRules: appAclRules(s.ec2?.appAclGrants ?? []),
  });
}

/** Reads parameters from the lab's AWS endpoint (the stand-in for the deployer's SSM reads). */
export function endpointReader(aws: AwsEndpointControl): ParameterReader {
  return async (names) =>
    Object.fromEntries(
      (await aws.parameters()).filter((p) => names.includes(p.name)).map((p) => [p.name, p.value] as const),
    );
}

/** What the lab runs, in the shape the stack exports as `deployment`. */
export function shapeOf(settings: Settings): DeployedShape {
  if (!settings.ec2) throw new Error("EC2 settings needed");
  return deploymentOf(LAB_COMPONENT, settings.ec2, settings.tls);
}

export function volumeId(i: number): string {
  return `vol-0${(0xabc000 + i).toString(16)}0000000000`;
}

/** Creates the hosts for the given settings (the prod stack's, possibly with TLS switched). */
export interface ClusterLabOptions {
  peerWaitSeconds?: number;
  /** How long a first boot retries apt (default the stack's). */
  aptWaitSeconds?: number;
  /** First three octets of the lab's /24 (default the tests'). */
  subnet?: string;
  /** Keep the lab after this process exits (the local mode), with this machine at <subnet>.1 on it. */
  persistent?: boolean;
  /** Where the CA and node certificates go (default a temp dir). */
  pkiDir?: string;
  passwords?: Passwords;
  /**
   * Size of each node's (sparse) data volume; default LAB_DATA_VOLUME_MIB, above 2 GiB as a real one is:
   * Debian's awk (mawk) prints byte counts from 2^31 on as 3.2e+09, which a 128 MiB lab volume never showed.
   */
  dataVolumeMiB?: number;
  /** Progress lines (the one-time root filesystem build, boots). */
  log?: (line: string) => void;
  /** The nodes' metrics period (default the settings'): the metrics tests use 10 s. */
  metricsIntervalSeconds?: MetricsInterval;
}

/** The endpoint's state dir inside a lab dir: `destroyClusterLab` stops the process found there. */
export function endpointDir(labDir: string): string {
  return path.join(labDir, "aws");
}

export function createClusterLab(settings: Settings, opts: ClusterLabOptions = {}): Promise<ClusterLab> {
  return buildClusterLab(settings, opts);
}

/** What another process needs to drive a persistent cluster lab it did not create (the local mode's next run). */
export interface OpenClusterLabOptions extends ClusterLabOptions {
  labDir: string;
  passwords: Passwords;
  pkiDir: string;
  /** The roll generation its desired settings carry now. */
  generation: number;
}

/**
 * A persistent cluster lab made by an earlier process, running `settings`: its hosts, AWS endpoint,
 * secrets and certificates taken over as they are, so `deploy` can change it like `pulumi up`.
 */
export function openClusterLab(settings: Settings, opts: OpenClusterLabOptions): Promise<ClusterLab> {
  return buildClusterLab(settings, opts, opts);
}

async function buildClusterLab(
  settings: Settings,
  opts: ClusterLabOptions,
  existing?: OpenClusterLabOptions,
): Promise<ClusterLab> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("EC2 settings needed");
  const log = opts.log ?? (() => undefined);
  const subnet = opts.subnet ?? TEST_SUBNET;
  // A node's address and volume follow from its place in its shard, so adding shards never moves a node
  // (as in the stack's addressedTopology).
  const place = (n: NodeAddress["node"]) => n.shard * ((settings.ec2?.replicasPerShard ?? 0) + 1) + n.member;
  const planFor = (s: Settings): NodeAddress[] =>
    planTopology(s.ec2?.shards ?? 0, s.ec2?.replicasPerShard ?? 0, 3).map((node) => ({
      node,
      ip: `${subnet}.${11 + place(node)}`,
      port: REDIS_PORT,
    }));
  const nodes: NodeAddress[] = planFor(settings);
  const ssm = LAB_NAMES.ssm;
  // A lab recorded before the monitor user existed has no monitor password (it gets one below).
  const passwords: Passwords = { ...generatePasswords(), ...opts.passwords };
  const pkiDir = opts.pkiDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "redis-pki-"));
  const pki = settings.tls
    ? makePki(
        pkiDir,
        nodes.map((n) => ({ name: n.node.name, ip: n.ip })),
      )
    : undefined;

  const specFor = (s: Settings): ClusterSpec => ({
    nodeTimeoutMs: s.ec2?.nodeTimeoutMs ?? 0,
    maxmemoryBytes: s.ec2?.maxmemoryBytes ?? 0,
    maxmemoryPolicy: s.maxmemoryPolicy,
    persistence: s.persistence,
    region: ec2.region,
    ssm,
    peerWaitSeconds: opts.peerWaitSeconds ?? 180,
    aptWaitSeconds: opts.aptWaitSeconds,
    metrics: {
      stack: LAB_NAMES.metricsStack,
      intervalSeconds: opts.metricsIntervalSeconds ?? s.ec2?.metricsIntervalSeconds ?? DEFAULT_METRICS_INTERVAL,
    },
    sentinel: s.ec2?.topology === "sentinel" ? { masterName: LAB_SENTINEL_MASTER } : undefined,
    backup: {
      bucket: LAB_BACKUP.bucket,
      prefix: LAB_BACKUP.prefix,
      intervalHours: s.ec2?.backupIntervalHours ?? 0,
      restoreFrom: s.ec2?.restoreFrom,
    },
  });
  const desiredFor = desiredText;
  /** TLS on: the lab CA is the one the nodes accept (its SHA-256 in their user-data). */
  const pinOf = (tlsOn: boolean, p: Pki | undefined): TlsPin | false => {
    if (!tlsOn) return false;
    if (!p) throw new Error("TLS on without the lab's PKI");
    return { caSha256: certificateSha256(p.caCertPem) };
  };
  const userData = nodes.map((n) =>
    renderNodeUserData(specFor(settings), nodes, n, volumeId(place(n.node)), pinOf(settings.tls, pki)),
  );

  let lab: HostLab;
  let aws: AwsEndpointControl;
  /** The endpoint process this one started (a persistent lab's is found through its state dir). */
  let pid: number | undefined;
  if (existing) {
    lab = HostLab.open(existing.labDir);
    aws = new AwsEndpointControl(endpointDir(lab.dir));
  } else {
    const rootfs = await ensureRootfs({ log });
    lab = await HostLab.create(
      nodes.map((n, i) => ({ name: n.node.name, ip: n.ip, volumeId: volumeId(place(n.node)), userData: userData[i] })),
      {
        cidrPrefix: 24,
        clientIp: `${subnet}.100`,
        endpointIp: `${subnet}.2`,
        gatewayIp: opts.persistent ? `${subnet}.1` : undefined,
        region: ec2.region,
        // awscli addresses the bucket by its own name (virtual-hosted style; us-east-1's global name).
        extraEndpointNames: [
          `${LAB_BACKUP.bucket}.s3.amazonaws.com`,
          `${LAB_BACKUP.bucket}.s3.${ec2.region}.amazonaws.com`,
          "s3.amazonaws.com",
        ],
        volumeMiB: opts.dataVolumeMiB ?? LAB_DATA_VOLUME_MIB,
        persistent: opts.persistent,
        rootfs,
        start: false,
        log,
      },
    );
    sweepOrphanEndpoints(); // HostLab.create swept the labs of dead runs; their endpoints go too.

    // The one stand-in: AWS's own APIs, in the lab's endpoint namespace, trusted by the hosts' CA store.
    if (!rootfs.caKeyFile) throw new Error("the lab rootfs has no CA key to sign the endpoint's certificate");
    const tls = makeEndpointTls(path.join(endpointDir(lab.dir), "tls"), {
      region: ec2.region,
      ips: [`${subnet}.2`],
      ca: { certFile: rootfs.caCertFile, keyFile: rootfs.caKeyFile },
    });
    const started = await startAwsEndpoint({
      stateDir: endpointDir(lab.dir),
      netns: lab.endpoint.netns,
      config: {
        listen: `${subnet}.2`,
        imdsListen: "169.254.169.254",
        imdsPort: 80,
        httpsPort: 443,
        aptPort: 80,
        region: ec2.region,
        account: LAB_ACCOUNT,
        tls: { certPem: tls.certPem, keyPem: tls.keyPem },
        aptRepoDir: rootfs.mirrorRoot,
      },
    });
    pid = started.pid;
    aws = started.control;
    const endpointPid = pid;
    if (!opts.persistent) process.once("exit", () => killQuietly(endpointPid));
  }
  const awsDir = endpointDir(lab.dir);
  const hosts = nodes.map((n) => lab.host(n.node.name));
  const putTls = async (p: Pki, among: NodeAddress[]) => {
    await aws.putParameter(ssm.tlsCa, "String", p.caCertPem);
    for (const n of among) {
      await aws.putParameter(
        ssm.tlsKey(n.node.name),
        "SecureString",
        p.nodes.get(n.node.name)?.keyPem ?? "",
        LAB_KEY_ARN,
      );
      await aws.putParameter(ssm.tlsCert(n.node.name), "String", p.nodes.get(n.node.name)?.certPem ?? "");
    }
  };
  const register = (i: number) =>
    aws.putInstance(nodes[i].ip, {
      instanceId: hosts[i].instanceId,
      az: AZS[nodes[i].node.azIndex],
      instanceType: ec2.instanceType,
      role: LAB_ROLE,
      hostname: nodes[i].node.name,
    });
  if (!existing) {
    const backup = { bucket: LAB_BACKUP.bucket, prefix: LAB_BACKUP.prefix };
    await aws.putRole(LAB_ROLE, [
      nodeRolePolicy(ec2.region, LAB_ACCOUNT, ssm.prefix, ssm.statusPrefix, LAB_KEY_ARN, backup),
    ]);
    await aws.putBucket(LAB_BACKUP.bucket, {
      policy: backupBucketPolicy(`arn:aws:s3:::${LAB_BACKUP.bucket}`),
      kmsKeyArn: LAB_BACKUP.keyArn,
      versioning: true,
    });
    await aws.putParameter(ssm.appPassword, "SecureString", passwords.app, LAB_KEY_ARN);
    await aws.putParameter(ssm.adminPassword, "SecureString", passwords.admin, LAB_KEY_ARN);
    await aws.putParameter(ssm.replicationPassword, "SecureString", passwords.replication, LAB_KEY_ARN);
    await aws.putParameter(ssm.monitorPassword, "SecureString", passwords.monitor, LAB_KEY_ARN);
    if (ec2.topology === "sentinel")
      await aws.putParameter(ssm.sentinelPassword, "SecureString", passwords.sentinel, LAB_KEY_ARN);
    await aws.putParameter(ssm.settings, "String", desiredFor(settings, 0, nodes));
    if (pki) await putTls(pki, nodes);
    for (let i = 0; i < nodes.length; i++) await register(i);
  } else {
    // Recorded before the monitor or replication user existed: the hosts a deploy adds read them at boot.
    const known = new Set((await aws.parameters()).map((p) => p.name));
    if (!known.has(ssm.monitorPassword))
      await aws.putParameter(ssm.monitorPassword, "SecureString", passwords.monitor, LAB_KEY_ARN);
    if (!known.has(ssm.replicationPassword))
      await aws.putParameter(ssm.replicationPassword, "SecureString", passwords.replication, LAB_KEY_ARN);
  }
  // The scripts the user-data names by checksum, as this code renders them (what `pulumi up` writes).
  const stored = new Map((await aws.parameters()).map((p) => [p.name, p.value]));
  for (const script of ssmShippedScripts(ssm))
    for (const c of script.chunks)
      if (stored.get(c.parameter) !== c.value) await aws.putParameter(c.parameter, "String", c.value);

  const clientCa = pki?.caCertFile;
  const byName = (n: NodeAddress | string) =>
    typeof n === "string" ? nodes.find((x) => x.node.name === n || `${x.ip}:${x.port}` === n) : n;
  const cli: ClusterLab["cli"] = (node, args, as = "admin", timeoutMs = 10000) => {
    const target = byName(node);
    if (!target) throw new Error(`unknown node ${typeof node === "string" ? node : node.node.name}`);
    const auth = as === "none" ? [] : ["--user", as === "admin" ? ADMIN_USER : APP_USER];
    const env: Record<string, string> =
      as === "none" ? {} : { REDISCLI_AUTH: as === "admin" ? passwords.admin : passwords.app };
    const tlsArgs = clientCa ? ["--tls", "--cacert", clientCa] : [];
    return lab.client.exec(["redis-cli", "-h", target.ip, "-p", String(target.port), ...auth, ...tlsArgs, ...args], {
      env,
      timeoutMs,
    });
  };
  const sentinelCli: ClusterLab["sentinelCli"] = (node, args, timeoutMs = 10000) =>
    lab.client.exec(
      [
        "redis-cli",
        "-h",
        node.ip,
        "-p",
        String(SENTINEL_PORT),
        "--user",
        ADMIN_USER,
        ...(clientCa ? ["--tls", "--cacert", clientCa] : []),
        ...args,
      ],
      { env: { REDISCLI_AUTH: passwords.admin }, timeoutMs },
    );
  const sentinelPrimaries: ClusterLab["sentinelPrimaries"] = (among = nodes) =>
    Promise.all(
      among.map(async (n) => {
        const r = await sentinelCli(n, ["sentinel", "get-master-addr-by-name", LAB_SENTINEL_MASTER], 3000);
        const [ip, port] = r.stdout.trim().split("\n");
        return r.code === 0 && /^\d+$/.test(port ?? "") ? `${ip}:${port}` : "";
      }),
    );
  /** Sentinel topology: every live node's Sentinel names one primary among them, the rest replicate it, linked. */
  const waitSentinelConverged = async (timeoutMs: number, among: NodeAddress[]): Promise<number> => {
    const started = Date.now();
    let last = "";
    while (Date.now() - started < timeoutMs) {
      const named = await sentinelPrimaries(among);
      const roles = await Promise.all(
        among.map(async (n) => {
          const r = await cli(n, ["info", "replication"], "admin", 3000);
          if (r.code !== 0) return "unreachable";
          if (infoField(r.stdout, "role") === "master") return `${n.ip}:${n.port}`;
          const linked = infoField(r.stdout, "master_link_status") === "up";
          return linked ? `${infoField(r.stdout, "master_host")}:${infoField(r.stdout, "master_port")}` : "syncing";
        }),
      );
      last = `Sentinels name [${named.join(" ")}], nodes follow [${roles.join(" ")}]`;
      const primary = named[0];
      const live = among.some((n) => `${n.ip}:${n.port}` === primary);
      if (live && named.every((p) => p === primary) && roles.every((r) => r === primary)) return Date.now() - started;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the Sentinel topology did not converge in ${timeoutMs} ms: ${last}`);
  };
  const waitFailoverReady: ClusterLab["waitFailoverReady"] = async (timeoutMs = 60_000, among = nodes) => {
    if (result.settings.ec2?.topology !== "sentinel") return waitConverged(timeoutMs, among);
    const started = Date.now();
    await waitSentinelConverged(timeoutMs, among);
    let last = "";
    while (Date.now() - started < timeoutMs) {
      const [primary] = await sentinelPrimaries(among);
      const replicas = among.filter((n) => `${n.ip}:${n.port}` !== primary).map((n) => n.ip);
      const views = await Promise.all(
        among.map(async (n) => {
          const r = await sentinelCli(n, ["sentinel", "replicas", LAB_SENTINEL_MASTER], 3000);
          const lines = r.stdout.trim().split("\n");
          // One entry per replica: a flat field/value list; entries start at "name".
          const entries = lines
            .map((l, i) => (l === "name" ? i : -1))
            .filter((i) => i >= 0)
            .map((start, k, all) => {
              const part = lines.slice(start, all[k + 1] ?? lines.length);
              return Object.fromEntries(part.flatMap((l, i) => (i % 2 === 0 ? [[l, part[i + 1]]] : [])));
            });
          const linked = entries.filter(
            (e) => !/down|disconnected/.test(e.flags ?? "") && e["master-link-status"] === "ok",
          );
          return replicas.every((ip) => linked.some((e) => e.ip === ip)) ? "ready" : `knows ${linked.length}`;
        }),
      );
      last = views.join(" ");
      if (views.every((v) => v === "ready")) return Date.now() - started;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the Sentinels do not all list every replica as linked after ${timeoutMs} ms: ${last}`);
  };
  const boot: ClusterLab["boot"] = async (order = nodes.map((_, i) => i), staggerMs = 0) => {
    for (const i of order) {
      await hosts[i].start();
      if (staggerMs > 0) await new Promise((r) => setTimeout(r, staggerMs));
    }
    const results = await Promise.all(hosts.map((h) => h.waitCloudInit(600_000)));
    for (const [i, r] of results.entries())
      if (r.status !== "done") console.error(`cloud-init on ${nodes[i].node.name}: ${r.status}\n${await diagnose(i)}`);
    return results;
  };
  const diagnose: ClusterLab["diagnose"] = async (i) =>
    (
      await hosts[i].sh(
        "tail -n 40 /var/log/redis-stack.log; echo '--- journal'; journalctl -u 'redis-node*' -n 40 --no-pager -o short-precise; " +
          `echo '--- redis'; tail -n 30 ${EC2_PATHS.logDir}/redis-node.log; ls -la ${EC2_PATHS.dataDir} ${EC2_PATHS.dataDir}/appendonlydir; ` +
          `cat ${EC2_PATHS.dataDir}/appendonlydir/*.manifest`,
      )
    ).stdout;
  const replace: ClusterLab["replace"] = async (i, replaceOpts = {}) => {
    await hosts[i].powerLoss();
    await hosts[i].replace({ blankVolume: replaceOpts.blankVolume });
    await register(i);
    return hosts[i].waitCloudInit(600_000);
  };
  const onHost: ClusterLab["onHost"] = (i) => onHostNetwork(hosts[i]);
  const waitConverged: ClusterLab["waitConverged"] = async (timeoutMs = 30000, among = nodes) => {
    if (result.settings.ec2?.topology === "sentinel") return waitSentinelConverged(timeoutMs, among);
    const started = Date.now();
    // Every live node is in the view: all shards have a master, the rest are replicas.
    const masters = result.settings.ec2?.shards ?? 0;
    const replicas = among.length - masters;
    let last = "";
    while (Date.now() - started < timeoutMs) {
      const views = await Promise.all(
        among.map(async (n) => {
          const r = await cli(n, ["cluster", "nodes"], "admin", 3000);
          if (r.code !== 0) return "unreachable";
          const lines = parseClusterNodes(r.stdout).filter(
            (l) =>
              l.linkState === "connected" &&
              !l.flags.some((f) => f.startsWith("fail") || f === "noaddr" || f === "handshake"),
          );
          const m = lines.filter((l) => l.flags.includes("master") && l.slots.length > 0).length;
          const s = lines.filter((l) => l.flags.includes("slave")).length;
          return `${m}/${s}`;
        }),
      );
      last = views.join(" ");
      if (views.every((v) => v === `${masters}/${replicas}`)) return Date.now() - started;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`cluster did not converge in ${timeoutMs} ms: views (masters/replicas) ${last}`);
  };
  const status: ClusterLab["status"] = async (name) =>
    parseStatus((await aws.parameters()).find((p) => p.name === ssm.status(name))?.value);
  const readParameters = endpointReader(aws);
  const deploy: ClusterLab["deploy"] = async (next, o = {}) => {
    const say = o.log ?? log;
    const problems = checkDeployedChange(shapeOf(result.settings), shapeOf(next));
    if (problems.length > 0) throw new ConfigError(problems, "redis-stack");
    const { added, leaving } = nodeChange(shapeOf(result.settings), shapeOf(next));
    const plan = planFor(next);
    const fresh = plan.filter((n) => added.includes(n.node.name));
    if (fresh.length > 0 && result.pki) {
      result.pki = makePki(
        pkiDir,
        plan.map((n) => ({ name: n.node.name, ip: n.ip })),
      );
      await putTls(result.pki, fresh);
    }
    for (const n of fresh) {
      const ud = renderNodeUserData(specFor(next), plan, n, volumeId(place(n.node)), pinOf(next.tls, result.pki));
      const host = await lab.addHost({ name: n.node.name, ip: n.ip, volumeId: volumeId(place(n.node)), userData: ud });
      nodes.push(n);
      hosts.push(host);
      userData.push(ud);
      await register(nodes.length - 1);
    }
    const grow = (next.ec2?.dataVolumeGb ?? 0) / (result.settings.ec2?.dataVolumeGb ?? 1);
    if (grow > 1) {
      say(`growing every data volume x${grow.toFixed(2)} (dataVolumeGb)`);
      const mib = Math.round(Math.max(...hosts.map((h) => h.volumeMiB())) * grow);
      for (const h of hosts) await h.growVolume(mib);
    }
    if (o.generation !== undefined) result.generation = o.generation;
    const text = desiredFor(next, result.generation, plan);
    const started = Date.now();
    await aws.putParameter(ssm.settings, "String", text);
    result.settings = next;
    say(`desired settings ${versionOf(text)} written${added.length ? `; booting ${added.join(", ")}` : ""}`);
    for (const n of fresh) await hosts[nodes.indexOf(n)].start();
    const expected: ExpectedNode[] = [
      ...plan.map((n) => ({
        name: n.node.name,
        parameter: ssm.status(n.node.name),
        instanceId: hosts[nodes.findIndex((x) => x.node.name === n.node.name)].instanceId,
        settingsVersion: versionOf(text),
        generation: result.generation,
      })),
      ...leaving.map((name) => ({
        name,
        parameter: ssm.status(name),
        settingsVersion: versionOf(text),
        drained: true,
      })),
    ];
    await waitForCluster(expected, readParameters, { timeoutMs: o.timeoutMs ?? 900_000, pollMs: 1000, log: say });
    const convergedMs = Date.now() - started;
    for (const name of leaving) {
      const i = nodes.findIndex((n) => n.node.name === name);
      say(`deleting ${name} (drained)`);
      await hosts[i].stop();
      lab.removeHost(name);
      await aws.deleteInstance(nodes[i].ip);
      nodes.splice(i, 1);
      hosts.splice(i, 1);
      userData.splice(i, 1);
    }
    return { settingsVersion: versionOf(text), added, removed: leaving, convergedMs };
  };
  /** Once only: a suite's scenario may let the lab go before the suite's own teardown runs. */
  let destroyed: Promise<void> | undefined;
  const result: ClusterLab = {
    lab,
    settings,
    nodes,
    hosts,
    passwords,
    pki,
    pkiDir,
    userData,
    ssm,
    aws,
    clientCa,
    cli,
    sentinelCli,
    sentinelPrimaries,
    waitConverged,
    waitFailoverReady,
    boot,
    replace,
    diagnose,
    onHost,
    deploy,
    status,
    generation: existing?.generation ?? 0,
    destroy: () =>
      (destroyed ??= (async () => {
        await stopAwsEndpoint(awsDir, pid);
        await lab.destroy();
      })()),
  };
  return result;
}

export const LAB_DEPLOYER_ROLE = "redis-stack-lab-deployer";

/**
 * `pulumi up`'s health wait, run with the real AWS SDK from the client namespace (registered with the
 * endpoint as the deployer: it may read the status parameters, nothing else).
 */
export async function waitHealthyFromClient(c: ClusterLab, timeoutSeconds: number): Promise<ExecResult> {
  const ec2 = c.settings.ec2;
  if (!ec2) throw new Error("EC2 settings needed");
  const region = ec2.region;
  await c.aws.putRole(LAB_DEPLOYER_ROLE, [
    {
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "ReadNodeStatus",
          Effect: "Allow",
          Action: ["ssm:GetParameters", "ssm:GetParameter"],
          Resource: `arn:aws:ssm:${region}:${LAB_ACCOUNT}:parameter${c.ssm.statusPrefix}/*`,
        },
      ],
    },
  ]);
  await c.aws.putInstance(c.lab.client.ip, {
    instanceId: "i-0dec0de0000000001",
    az: AZS[0],
    instanceType: "t3.micro",
    role: LAB_DEPLOYER_ROLE,
  });
  await c.lab.client.sh(`ip route replace 169.254.169.254/32 via ${c.lab.endpointIp}`);
  const input = {
    region,
    timeoutSeconds,
    nodes: c.nodes.map((n, i) => ({
      name: n.node.name,
      parameter: c.ssm.status(n.node.name),
      instanceId: c.hosts[i].instanceId,
    })),
  };
  return c.lab.client.exec(["node", "-r", TS_NODE, path.join(__dirname, "waitHealthy.ts")], {
    env: {
      WAIT_HEALTHY: JSON.stringify(input),
      AWS_ENDPOINT_URL_SSM: `https://${c.lab.endpointIp}`,
      NODE_EXTRA_CA_CERTS: c.lab.rootfs.caCertFile,
      TS_NODE_PROJECT: path.resolve(__dirname, "../tsconfig.json"),
    },
    timeoutMs: (timeoutSeconds + 60) * 1000,
  });
}

/**
 * AWS endpoints whose lab is gone (a run that was killed before its clean-up): their state dir was
 * removed with the lab, so nothing else would ever stop them.
 */
export function sweepOrphanEndpoints(): number[] {
  const killed: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const script = argv.findIndex((a) => a.endsWith(path.join("lab", "aws", "endpoint.ts")));
    const dirAt = argv.indexOf("--state-dir");
    if (script < 0 || dirAt < 0) continue;
    if (!fs.existsSync(argv[dirAt + 1] ?? "")) {
      killQuietly(Number(entry));
      killed.push(Number(entry));
    }
  }
  return killed;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

/** `cluster nodes` parsed. */
export interface ClusterNodeLine {
  id: string;
  addr: string;
  flags: string[];
  masterId: string;
  linkState: string;
  slots: string[];
}

export function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const f = l.trim().split(" ");
      return {
        id: f[0],
        addr: f[1].split("@")[0],
        flags: f[2].split(","),
        masterId: f[3],
        linkState: f[7],
        slots: f.slice(8),
      };
    });
}

export function infoField(text: string, key: string): string {
  const line = text.split("\n").find((l) => l.startsWith(`${key}:`));
  return line ? line.slice(key.length + 1).trim() : "";
}

const WRITER = path.join(__dirname, "writer.ts");
/** The same writer for redis-py (mode "write" only): same config, same result. */
const WRITER_PY = path.join(__dirname, "writer.py");
/** Debian's interpreter, the one python3-redis (lab/install-packages.sh) installs for. */
const DEBIAN_PYTHON = "/usr/bin/python3";
const TS_NODE = require.resolve("ts-node/register/transpile-only");
/** Writers run with cwd / inside a namespace: point ts-node at the project. */
const nodeEnv = (cfg: WriterConfig) => ({
  // A file, not the variable itself: a long run's acknowledged seqs outgrow what one variable may hold (E2BIG).
  WRITER_CONFIG_FILE: writeConfigFile(cfg),
  PATH: process.env.PATH ?? "",
  TS_NODE_PROJECT: path.resolve(__dirname, "../tsconfig.json"),
  // WRITER_DEBUG=ioredis:* traces the writers' client (to their stderr) when a scenario needs explaining.
  ...(process.env.WRITER_DEBUG ? { DEBUG: process.env.WRITER_DEBUG } : {}),
});
let writerSeq = 0;
let configSeq = 0;
const configFiles = new Set<string>();
/** The writer's config as a file this machine's namespaces all see (removed when this process exits). */
function writeConfigFile(cfg: WriterConfig): string {
  const file = path.join(os.tmpdir(), `redis-writer-${process.pid}-${++configSeq}.json`);
  fs.writeFileSync(file, JSON.stringify(cfg), { mode: 0o600 });
  // One exit hook for all of them (one per file tripped Node's listener-leak warning).
  if (configFiles.size === 0) process.once("exit", () => configFiles.forEach((f) => fs.rmSync(f, { force: true })));
  configFiles.add(file);
  return file;
}

/** A hash tag whose keys all land in `shard`'s planned slot range. */
export function tagForSlots(start: number, end: number, salt = ""): string {
  for (let i = 0; ; i++) {
    const tag = `w${salt}${i}`;
    const slot = keySlot(tag);
    if (slot >= start && slot <= end) return tag;
  }
}

/** Sentinel topology: what the writer asks for the primary (the stack's contract: REDIS_SENTINELS, REDIS_SENTINEL_MASTER). */
function sentinelTarget(c: ClusterLab): WriterConfig["sentinel"] {
  if (c.settings.ec2?.topology !== "sentinel") return undefined;
  return { name: LAB_SENTINEL_MASTER, sentinels: c.nodes.map((n) => `${n.ip}:${SENTINEL_PORT}`) };
}

/** The env an app deploy of this lab's stack would get (the stack's `env` output), in either topology. */
export function labContractEnv(c: ClusterLab): Record<string, string> {
  const sentinel = sentinelTarget(c);
  return connectionContract({
    target: "ec2",
    nodes: c.nodes.map((n) => `${n.ip}:${n.port}`),
    username: APP_USER,
    password: c.passwords.app,
    tls: c.settings.tls,
    clusterMode: sentinel === undefined,
    caCertificate: c.clientCa ? fs.readFileSync(c.clientCa, "utf8") : undefined,
    client: c.settings.client,
    ...(sentinel ? { sentinel: { masterName: sentinel.name, sentinels: sentinel.sentinels } } : {}),
  }).env;
}

export interface RunningWriter {
  tag: string;
  stop(): Promise<WriteResult>;
}

/** Starts a writer in `where` (the client namespace by default) that runs until stopped. */
/** The longest a writer runs when nobody stops it: longer than any scenario (a 900 s roll, a reshard). */
const WRITER_MAX_MS = 1_800_000;

export async function startWriter(
  c: ClusterLab,
  tag: string,
  opts: { where?: LabNode; direct?: string; intervalMs?: number; client?: WriterClient } = {},
): Promise<RunningWriter> {
  const where = opts.where ?? c.lab.client;
  const client = opts.client ?? "ioredis";
  const stopFile = `/tmp/stop-writer-${process.pid}-${++writerSeq}`;
  const cfg: WriterConfig = {
    mode: "write",
    nodes: opts.direct ? [opts.direct] : c.nodes.map((n) => `${n.ip}:${n.port}`),
    sentinel: opts.direct ? undefined : sentinelTarget(c),
    user: APP_USER,
    password: c.passwords.app,
    ca: c.clientCa,
    tag,
    direct: opts.direct !== undefined,
    stopFile,
    // Writers run until told to stop (their stop file): a rolling restart or a reshard may take 15 minutes.
    durationMs: WRITER_MAX_MS,
    intervalMs: opts.intervalMs ?? 2,
    client,
    ...(client === "redis-stack-client" ? { contractEnv: labContractEnv(c) } : {}),
  };
  const script = client === "redis-py" ? WRITER_PY : WRITER;
  // The stop file's name rides on the command line so a stuck writer can be found and told to stop.
  // redis-py: Debian's python3-redis, so Debian's interpreter (another python3 may come first in PATH).
  const argv = client === "redis-py" ? [DEBIAN_PYTHON, script, stopFile] : ["node", "-r", TS_NODE, script, stopFile];
  const running = where.exec(argv, {
    env: nodeEnv(cfg),
    timeoutMs: WRITER_MAX_MS + 60_000,
  });
  // Returns once the writer has its first acknowledged write (it touches <stopFile>.ready). A harness limit,
  // not a promise: CI saw a writer take over 20 s on a loaded machine just after six nodes booted at once
  // (fault 5 follows a power loss of all). Whether its ts-node start or the cluster was slow is not known yet.
  const firstWriteMs = 60_000;
  const deadline = Date.now() + firstWriteMs;
  let exited: ExecResult | undefined;
  void running.then((r) => (exited = r));
  while ((await where.sh(`test -e ${stopFile}.ready`)).code !== 0) {
    if (exited)
      throw new Error(
        `writer on ${where.name} exited (${exited.code}) before its first write: ${exited.stderr.trim().slice(-500)}`,
      );
    if (Date.now() > deadline)
      throw new Error(`writer on ${where.name} did not get a first write through in ${firstWriteMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    tag,
    stop: async () => {
      await where.sh(`touch ${stopFile}`);
      const exitedWithin = (ms: number) =>
        Promise.race([running.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      // A writer that ignores its stop file gets SIGTERM (it then stops and reports), then SIGKILL.
      if (!(await exitedWithin(15000))) {
        await where.sh(`pkill -TERM -f -- '${script} ${stopFile}'`);
        if (!(await exitedWithin(10000))) await where.sh(`pkill -KILL -f -- '${script} ${stopFile}'`);
      }
      const r = await running;
      await where.sh(`rm -f ${stopFile} ${stopFile}.ready`);
      if (r.code !== 0) throw new Error(`writer failed (${r.code}): ${r.stderr}`);
      if (process.env.WRITER_DEBUG) fs.writeFileSync(path.join(os.tmpdir(), `writer-${tag}.trace`), r.stderr);
      return JSON.parse(r.stdout) as WriteResult;
    },
  };
}

/** Which of these acknowledged writes the cluster no longer has. */
export async function missingWrites(c: ClusterLab, tag: string, seqs: number[]): Promise<number[]> {
  const cfg: WriterConfig = {
    mode: "verify",
    nodes: c.nodes.map((n) => `${n.ip}:${n.port}`),
    sentinel: sentinelTarget(c),
    user: APP_USER,
    password: c.passwords.app,
    ca: c.clientCa,
    tag,
    seqs,
  };
  const r = await c.lab.client.exec(["node", "-r", TS_NODE, WRITER], { env: nodeEnv(cfg), timeoutMs: 120000 });
  if (r.code !== 0) throw new Error(`verify failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as VerifyResult).missing;
}

/** Of these acknowledged writes ([key, value]), the keys that no longer hold their value: read by ioredis. */
export async function missingKeys(c: ClusterLab, pairs: Array<[string, string]>): Promise<string[]> {
  const cfg: WriterConfig = {
    mode: "verify-keys",
    nodes: c.nodes.map((n) => `${n.ip}:${n.port}`),
    sentinel: sentinelTarget(c),
    user: APP_USER,
    password: c.passwords.app,
    ca: c.clientCa,
    tag: "",
    pairs,
  };
  const r = await c.lab.client.exec(["node", "-r", TS_NODE, WRITER], { env: nodeEnv(cfg), timeoutMs: 300000 });
  if (r.code !== 0) throw new Error(`verify-keys failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as VerifyKeysResult).missing;
}

/**
 * Writes `count` keys `<tag>:<i>` spread over every slot ("load"), or reports which of them the cluster
 * no longer has ("check"), through ioredis from the client namespace.
 */
export async function keySet(c: ClusterLab, mode: "load" | "check", tag: string, count: number): Promise<number[]> {
  const cfg: WriterConfig = {
    mode,
    nodes: c.nodes.map((n) => `${n.ip}:${n.port}`),
    sentinel: sentinelTarget(c),
    user: APP_USER,
    password: c.passwords.app,
    ca: c.clientCa,
    tag,
    count,
  };
  const r = await c.lab.client.exec(["node", "-r", TS_NODE, WRITER], { env: nodeEnv(cfg), timeoutMs: 600000 });
  if (r.code !== 0) throw new Error(`${mode} failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as VerifyResult).missing;
}

/** The node currently serving `slot` as master, as seen from `from`. */
export async function masterOfSlot(c: ClusterLab, slot: number, from: NodeAddress[] = c.nodes): Promise<NodeAddress> {
  for (const n of from) {
    const r = await c.cli(n, ["cluster", "nodes"], "admin", 3000);
    if (r.code !== 0) continue;
    for (const l of parseClusterNodes(r.stdout)) {
      if (!l.flags.includes("master") || l.flags.some((f) => f.startsWith("fail"))) continue;
      for (const range of l.slots) {
        const [lo, hi] = range.split("-").map(Number);
        if (slot >= lo && slot <= (hi ?? lo)) {
          const found = c.nodes.find((x) => `${x.ip}:${x.port}` === l.addr);
          if (found) return found;
        }
      }
    }
  }
  throw new Error(`no node serves slot ${slot}`);
}

export async function role(c: ClusterLab, n: NodeAddress): Promise<string> {
  const r = await c.cli(n, ["role"], "admin", 3000);
  return r.stdout.split("\n")[0] ?? "";
}
