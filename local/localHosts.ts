/**
 * The local mode as root: six simulated hosts (network + mount namespaces) on a bridge of their own,
 * each running the exact EC2 user-data of its node. This machine sits at 10.78.0.1 on that bridge, so
 * apps here reach the nodes at 10.78.0.11-16:6379. The lab outlives the command; `down` removes it.
 */
import * as fs from "fs";
import * as path from "path";
import { Settings } from "../components/config";
import { ADMIN_USER } from "../components/redisConf";
import { NodeAddress } from "../components/topology";
import { canRunLab, destroyPersistentLabs } from "../lab/hostlab/hostLab";
import { createClusterLab } from "../lab/clusterLab";
import { clusterHealth, Passwords, ROOT } from "./localCluster";

export const HOSTS_DIR = path.join(ROOT, ".local", "hosts");
export const LOCAL_SUBNET = "10.78.0";
const STATE = path.join(HOSTS_DIR, "state.json");

export interface HostsState {
  nodes: NodeAddress[];
  passwords: Passwords;
  caFile?: string;
}

export function canRunHosts(): { ok: boolean; reason?: string } {
  return canRunLab();
}

export function readHostsState(): HostsState | undefined {
  return fs.existsSync(STATE) ? (JSON.parse(fs.readFileSync(STATE, "utf8")) as HostsState) : undefined;
}

export async function hostsUp(settings: Settings, log: (m: string) => void): Promise<HostsState> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("target must be ec2");
  const previous = readHostsState();
  if (previous) {
    const first = previous.nodes[0];
    const h = await clusterHealth(
      {
        host: first.ip,
        port: first.port,
        user: ADMIN_USER,
        password: previous.passwords.admin,
        tls: previous.caFile ? { ca: previous.caFile } : undefined,
      },
      ec2.shards,
      ec2.replicasPerShard,
    );
    if (h.ok) {
      log("the local hosts are already running and healthy");
      return previous;
    }
    log(`the local hosts are not healthy (${h.detail}): recreating them`);
  }
  await hostsDown(() => undefined);
  fs.mkdirSync(HOSTS_DIR, { recursive: true, mode: 0o700 });
  log(
    `creating ${ec2.shards * (1 + ec2.replicasPerShard)} hosts on ${LOCAL_SUBNET}.0/24 (this machine: ${LOCAL_SUBNET}.1)`,
  );
  const c = await createClusterLab(settings, {
    subnet: LOCAL_SUBNET,
    persistent: true,
    pkiDir: path.join(HOSTS_DIR, "pki"),
    dataVolumeMiB: 512,
  });
  log(
    "running each node's user-data (install check, format + mount the data volume, secrets from SSM, redis.conf, start, form/join)",
  );
  const started = Date.now();
  await Promise.all(
    c.nodes.map(async (n, i) => {
      const r = await c.hosts[i].runUserData(c.userData[i], { timeoutMs: 300000 });
      const last = r.stdout.trim().split("\n").pop() ?? "";
      if (r.code !== 0)
        throw new Error(
          `user-data of ${n.node.name} failed (exit ${r.code}): ${last}\n${r.stderr.trim().split("\n").slice(-5).join("\n")}`,
        );
      log(
        `${n.node.name} (${n.node.role}, ${c.hosts[i].az}, ${n.ip}) done in ${((Date.now() - started) / 1000).toFixed(1)}s`,
      );
    }),
  );
  const state: HostsState = { nodes: c.nodes, passwords: c.passwords, caFile: c.pki?.caCertFile };
  fs.writeFileSync(STATE, JSON.stringify(state, null, 2), { mode: 0o600 });
  return state;
}

export async function hostsDown(log: (m: string) => void): Promise<void> {
  const removed = destroyPersistentLabs();
  if (removed.length > 0) log(`removed the local hosts (lab ${removed.join(", ")})`);
  fs.rmSync(HOSTS_DIR, { recursive: true, force: true });
}
