/**
 * The local mode without root: the prod topology as six redis-server processes on 127.0.0.1:7000-7005,
 * each with the redis.conf the stack renders (paths pointed into .local/) and formed by the very
 * lib-cluster.sh the EC2 user-data runs.
 */
import * as fs from "fs";
import * as path from "path";
import { spawn, execFile } from "child_process";
import { promisify } from "util";
import { Settings } from "../components/config/settings";
import { ADMIN_USER, nodeFiles, renderRedisConf, NodePaths } from "../components/ec2/node/redisConf";
import { planTopology, NodeAddress } from "../components/ec2/topology";
import { renderClusterPlan, SCRIPTS_DIR } from "../components/ec2/node/userData";
import { generatePasswords, Passwords } from "../lab/passwords";
import { renderAclFile } from "./localCluster";
import { ROOT } from "../lab/stackFiles";
import { makePki } from "../lab/pki";

const execFileP = promisify(execFile);
export const LOOPBACK_DIR = path.join(ROOT, ".local", "loopback");
export const BASE_PORT = 7000;
/** Local nodes share one machine: cap each node's memory whatever the prod instance would allow. */
export const LOCAL_MAXMEMORY_BYTES = 256 * 1024 * 1024;

export interface LoopbackState {
  passwords: Passwords;
  pids: Record<string, number>;
  nodes: NodeAddress[];
  tls: boolean;
  caFile?: string;
}

function nodePaths(name: string): NodePaths {
  const dir = path.join(LOOPBACK_DIR, name);
  return {
    confDir: path.join(dir, "etc"),
    dataDir: path.join(dir, "data"),
    logDir: path.join(dir, "log"),
    runDir: path.join(dir, "run"),
  };
}

export function loopbackNodes(settings: Settings): NodeAddress[] {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("the local mode runs the EC2 topology: the stack's target must be ec2");
  return planTopology(ec2.shards, ec2.replicasPerShard, Math.min(3, ec2.replicasPerShard + 2)).map((node) => ({
    node,
    ip: "127.0.0.1",
    port: BASE_PORT + node.index,
  }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readLoopbackState(): LoopbackState | undefined {
  const file = path.join(LOOPBACK_DIR, "state.json");
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as LoopbackState) : undefined;
}

/** Writes configs (once) and starts every node that is not running. Returns the state. */
export async function startLoopback(settings: Settings, log: (m: string) => void): Promise<LoopbackState> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("target must be ec2");
  const previous = readLoopbackState();
  const nodes = loopbackNodes(settings);
  // A deployment recorded before a user existed gets a password for it now.
  const passwords = { ...generatePasswords(), ...previous?.passwords };
  const pki = settings.tls
    ? makePki(
        path.join(LOOPBACK_DIR, "pki"),
        nodes.map((n) => ({ name: n.node.name, ip: n.ip })),
      )
    : undefined;
  const pids: Record<string, number> = { ...(previous?.pids ?? {}) };
  for (const n of nodes) {
    const paths = nodePaths(n.node.name);
    const f = nodeFiles(paths);
    for (const d of [paths.confDir, paths.dataDir, paths.logDir, paths.runDir, path.dirname(f.cert)])
      fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    const conf = renderRedisConf({
      announceIp: n.ip,
      port: n.port,
      nodeTimeoutMs: ec2.nodeTimeoutMs,
      maxmemoryBytes: Math.min(ec2.maxmemoryBytes, LOCAL_MAXMEMORY_BYTES),
      maxmemoryPolicy: settings.maxmemoryPolicy,
      persistence: settings.persistence,
      tls: settings.tls,
      paths,
    });
    fs.writeFileSync(f.conf, conf, { mode: 0o600 });
    fs.writeFileSync(f.acl, renderAclFile(passwords), { mode: 0o600 });
    fs.writeFileSync(f.secrets, `masterauth "${passwords.replication}"\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(paths.confDir, "admin.pass"), passwords.admin, { mode: 0o600 });
    if (pki) {
      const c = pki.nodes.get(n.node.name);
      if (!c) throw new Error(`no certificate for ${n.node.name}`);
      fs.writeFileSync(f.caCert, pki.caCertPem);
      fs.writeFileSync(f.cert, c.certPem);
      fs.writeFileSync(f.key, c.keyPem, { mode: 0o600 });
    }
    const pid = pids[n.node.name];
    if (pid !== undefined && alive(pid)) continue;
    const out = fs.openSync(path.join(paths.logDir, "stdout.log"), "a");
    const child = spawn("redis-server", [f.conf], { detached: true, stdio: ["ignore", out, out] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start redis-server for ${n.node.name}`);
    pids[n.node.name] = child.pid;
    log(`started ${n.node.name} (${n.node.role}, shard ${n.node.shard}) on ${n.ip}:${n.port}, pid ${child.pid}`);
  }
  const state: LoopbackState = { passwords, pids, nodes, tls: settings.tls, caFile: pki?.caCertFile };
  fs.writeFileSync(path.join(LOOPBACK_DIR, "state.json"), JSON.stringify(state, null, 2), { mode: 0o600 });
  return state;
}

/** Runs lib-cluster.sh's cluster_converge for every node at once, as each node's user-data would. */
export async function convergeLoopback(state: LoopbackState, peerWaitSeconds = 120): Promise<void> {
  const plan = renderClusterPlan(state.nodes);
  const lib = path.join(SCRIPTS_DIR, "lib-cluster.sh");
  await Promise.all(
    state.nodes.map(async (n) => {
      const f = nodeFiles(nodePaths(n.node.name));
      const env = {
        ...process.env,
        NODE_NAME: n.node.name,
        NODE_INDEX: String(n.node.index),
        NODE_IP: n.ip,
        REDIS_PORT: String(n.port),
        CLUSTER_PLAN: plan,
        ADMIN_USER,
        ADMIN_PASS_FILE: path.join(nodePaths(n.node.name).confDir, "admin.pass"),
        TLS: state.tls ? "yes" : "no",
        TLS_CA: f.caCert,
        TLS_CERT: f.cert,
        TLS_KEY: f.key,
        PEER_WAIT_SECONDS: String(peerWaitSeconds),
      };
      const logFile = path.join(nodePaths(n.node.name).logDir, "cluster.log");
      try {
        const { stdout, stderr } = await execFileP(
          "bash",
          ["-c", 'set -euo pipefail; source "$1"; cluster_converge', "converge", lib],
          { env, timeout: (peerWaitSeconds + 60) * 1000 },
        );
        fs.appendFileSync(logFile, stdout + stderr);
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; message: string };
        fs.appendFileSync(logFile, `${err.stdout ?? ""}${err.stderr ?? ""}`);
        throw new Error(
          `${n.node.name} could not join the cluster: ${(err.stdout ?? "").trim().split("\n").pop() ?? err.message} (log: ${path.relative(process.cwd(), logFile)})`,
        );
      }
    }),
  );
}

export async function stopLoopback(log: (m: string) => void): Promise<void> {
  const state = readLoopbackState();
  if (state) {
    for (const [name, pid] of Object.entries(state.pids)) {
      if (alive(pid)) {
        process.kill(pid, "SIGTERM");
        log(`stopped ${name} (pid ${pid})`);
      }
    }
    for (let i = 0; i < 50 && Object.values(state.pids).some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    for (const pid of Object.values(state.pids)) if (alive(pid)) process.kill(pid, "SIGKILL");
  }
  fs.rmSync(LOOPBACK_DIR, { recursive: true, force: true });
}
