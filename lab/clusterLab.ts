/**
 * The prod stack's cluster on namespaced hosts, booted from the exact user-data the EC2 component
 * renders, with admin/app access from the lab's client namespace. Used by the integration tests, the
 * root local mode and the benchmarks; plus the acknowledged-write recorder (writer.ts) around it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HostLab, Host, ExecResult, LabNode } from "./hostlab/hostLab";
import { WriterConfig, WriteResult, VerifyResult } from "./writer";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const keySlot = require("cluster-key-slot") as (key: string) => number;
import { Settings } from "../components/config";
import { ADMIN_USER, APP_USER, REDIS_PORT } from "../components/redisConf";
import { planTopology, NodeAddress } from "../components/topology";
import { renderNodeUserData, ssmNames, ClusterSpec } from "../components/userData";
import { generatePasswords, Passwords } from "../local/localCluster";
import { makePki, Pki } from "./pki";

/** The tests' lab subnet (a /24 on a bridge of their own); the local mode uses another. */
export const TEST_SUBNET = "10.77.0";
export const AZS = ["us-east-1a", "us-east-1b", "us-east-1c"];

export interface ClusterLab {
  lab: HostLab;
  settings: Settings;
  nodes: NodeAddress[];
  hosts: Host[];
  passwords: Passwords;
  pki?: Pki;
  userData: string[];
  /** Client-side TLS files inside the client namespace (the lab writes them there). */
  clientCa?: string;
  /** redis-cli against a node from the client namespace, as admin (default) or app. */
  cli(
    node: NodeAddress | string,
    args: string[],
    as?: "admin" | "app" | "none",
    timeoutMs?: number,
  ): Promise<ExecResult>;
  /** Waits until each of `nodes` (the live ones) sees every shard with a healthy master and the other live nodes as linked replicas. */
  waitConverged(timeoutMs?: number, nodes?: NodeAddress[]): Promise<number>;
  /** Runs every host's user-data (in the given order, `staggerMs` apart) and returns the results. */
  boot(order?: number[], staggerMs?: number): Promise<ExecResult[]>;
  destroy(): Promise<void>;
}

export function volumeId(i: number): string {
  return `vol-0${(0xabc000 + i).toString(16)}0000000000`;
}

/** Creates the hosts for the given settings (the prod stack's, possibly with TLS switched). */
export interface ClusterLabOptions {
  peerWaitSeconds?: number;
  /** First three octets of the lab's /24 (default the tests'). */
  subnet?: string;
  /** Keep the lab after this process exits (the local mode), with this machine at <subnet>.1 on it. */
  persistent?: boolean;
  /** Where the CA and node certificates go (default a temp dir). */
  pkiDir?: string;
  passwords?: Passwords;
  /** Size of each node's (sparse) data volume. */
  dataVolumeMiB?: number;
}

export async function createClusterLab(settings: Settings, opts: ClusterLabOptions = {}): Promise<ClusterLab> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("EC2 settings needed");
  const subnet = opts.subnet ?? TEST_SUBNET;
  const nodes: NodeAddress[] = planTopology(ec2.shards, ec2.replicasPerShard, 3).map((node) => ({
    node,
    ip: `${subnet}.${11 + node.index}`,
    port: REDIS_PORT,
  }));
  const ssm = ssmNames("redis-stack", "lab");
  const passwords = opts.passwords ?? generatePasswords();
  const pkiDir = opts.pkiDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "redis-pki-"));
  const pki = settings.tls
    ? makePki(
        pkiDir,
        nodes.map((n) => ({ name: n.node.name, ip: n.ip })),
      )
    : undefined;
  const params: Record<string, string> = { [ssm.appPassword]: passwords.app, [ssm.adminPassword]: passwords.admin };
  if (pki) {
    params[ssm.tlsCa] = pki.caCertPem;
    for (const n of nodes) {
      params[ssm.tlsKey(n.node.name)] = pki.nodes.get(n.node.name)?.keyPem ?? "";
      params[ssm.tlsCert(n.node.name)] = pki.nodes.get(n.node.name)?.certPem ?? "";
    }
  }

  const spec: ClusterSpec = {
    nodeTimeoutMs: ec2.nodeTimeoutMs,
    maxmemoryBytes: ec2.maxmemoryBytes,
    maxmemoryPolicy: settings.maxmemoryPolicy,
    persistence: settings.persistence,
    region: ec2.region,
    ssm,
    peerWaitSeconds: opts.peerWaitSeconds ?? 120,
  };
  const userData = nodes.map((n, i) => renderNodeUserData(spec, nodes, n, volumeId(i), settings.tls));

  const lab = await HostLab.create(
    nodes.map((n, i) => ({ name: n.node.name, ip: n.ip, az: AZS[n.node.azIndex], dataVolumeId: volumeId(i) })),
    {
      cidrPrefix: 24,
      clientIp: `${subnet}.100`,
      ssmParameters: params,
      dataVolumeMiB: opts.dataVolumeMiB ?? 96,
      persistent: opts.persistent,
      gatewayIp: opts.persistent ? `${subnet}.1` : undefined,
    },
  );
  const hosts = nodes.map((n) => lab.host(n.node.name));
  let clientCa: string | undefined;
  if (pki) {
    clientCa = "/root/redis-ca.crt";
    for (const where of [lab.client, ...hosts]) {
      const r = await where.sh(`mkdir -p /root && cat > ${clientCa}`, { input: pki.caCertPem });
      if (r.code !== 0) throw new Error(`could not place the CA in ${where.name}: ${r.stderr}`);
    }
  }

  const byName = (n: NodeAddress | string) =>
    typeof n === "string" ? nodes.find((x) => x.node.name === n || `${x.ip}:${x.port}` === n) : n;
  const cli: ClusterLab["cli"] = (node, args, as = "admin", timeoutMs = 10000) => {
    const target = byName(node);
    if (!target) throw new Error(`unknown node ${typeof node === "string" ? node : node.node.name}`);
    const auth = as === "none" ? [] : ["--user", as === "admin" ? ADMIN_USER : APP_USER];
    const env: Record<string, string> =
      as === "none" ? {} : { REDISCLI_AUTH: as === "admin" ? passwords.admin : passwords.app };
    const tls = clientCa ? ["--tls", "--cacert", clientCa] : [];
    return lab.client.exec(["redis-cli", "-h", target.ip, "-p", String(target.port), ...auth, ...tls, ...args], {
      env,
      timeoutMs,
    });
  };
  const boot: ClusterLab["boot"] = async (order = nodes.map((_, i) => i), staggerMs = 0) => {
    const results: Promise<ExecResult>[] = [];
    for (const i of order) {
      results[i] = hosts[i].runUserData(userData[i], { timeoutMs: 240000 });
      if (staggerMs > 0) await new Promise((r) => setTimeout(r, staggerMs));
    }
    return Promise.all(results);
  };
  const waitConverged: ClusterLab["waitConverged"] = async (timeoutMs = 30000, among = nodes) => {
    const started = Date.now();
    // Every live node is in the view: all shards have a master, the rest are replicas.
    const masters = ec2.shards;
    const replicas = among.length - ec2.shards;
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
  return {
    lab,
    settings,
    nodes,
    hosts,
    passwords,
    pki,
    userData,
    clientCa,
    cli,
    waitConverged,
    boot,
    destroy: () => lab.destroy(),
  };
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
const TS_NODE = require.resolve("ts-node/register/transpile-only");
/** Writers run with cwd / inside a namespace: point ts-node at the project. */
const nodeEnv = (cfg: WriterConfig) => ({
  WRITER_CONFIG: JSON.stringify(cfg),
  PATH: process.env.PATH ?? "",
  TS_NODE_PROJECT: path.resolve(__dirname, "../tsconfig.json"),
});
let writerSeq = 0;

/** A hash tag whose keys all land in `shard`'s planned slot range. */
export function tagForSlots(start: number, end: number, salt = ""): string {
  for (let i = 0; ; i++) {
    const tag = `w${salt}${i}`;
    const slot = keySlot(tag);
    if (slot >= start && slot <= end) return tag;
  }
}

export interface RunningWriter {
  tag: string;
  stop(): Promise<WriteResult>;
}

/** Starts a writer in `where` (the client namespace by default) that runs until stopped. */
export async function startWriter(
  c: ClusterLab,
  tag: string,
  opts: { where?: LabNode; direct?: string; intervalMs?: number } = {},
): Promise<RunningWriter> {
  const where = opts.where ?? c.lab.client;
  const stopFile = `/tmp/stop-writer-${process.pid}-${++writerSeq}`;
  const cfg: WriterConfig = {
    mode: "write",
    nodes: opts.direct ? [opts.direct] : c.nodes.map((n) => `${n.ip}:${n.port}`),
    user: APP_USER,
    password: c.passwords.app,
    ca: c.clientCa,
    tag,
    direct: opts.direct !== undefined,
    stopFile,
    durationMs: 300000,
    intervalMs: opts.intervalMs ?? 2,
  };
  // The stop file's name rides on the command line so a stuck writer can be found and told to stop.
  const running = where.exec(["node", "-r", TS_NODE, WRITER, stopFile], { env: nodeEnv(cfg), timeoutMs: 320000 });
  // Returns once the writer has its first acknowledged write (it touches <stopFile>.ready).
  const deadline = Date.now() + 20000;
  let exited: ExecResult | undefined;
  void running.then((r) => (exited = r));
  while ((await where.sh(`test -e ${stopFile}.ready`)).code !== 0) {
    if (exited)
      throw new Error(
        `writer on ${where.name} exited (${exited.code}) before its first write: ${exited.stderr.trim().slice(-500)}`,
      );
    if (Date.now() > deadline) throw new Error(`writer on ${where.name} did not get a first write through in 20 s`);
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
        await where.sh(`pkill -TERM -f -- '${WRITER} ${stopFile}'`);
        if (!(await exitedWithin(10000))) await where.sh(`pkill -KILL -f -- '${WRITER} ${stopFile}'`);
      }
      const r = await running;
      await where.sh(`rm -f ${stopFile} ${stopFile}.ready`);
      if (r.code !== 0) throw new Error(`writer failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as WriteResult;
    },
  };
}

/** Which of these acknowledged writes the cluster no longer has. */
export async function missingWrites(c: ClusterLab, tag: string, seqs: number[]): Promise<number[]> {
  const cfg: WriterConfig = {
    mode: "verify",
    nodes: c.nodes.map((n) => `${n.ip}:${n.port}`),
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
