/**
 * The local mode as root: the prod topology on real Debian 12 hosts (lab/hosts), each booting the exact
 * EC2 user-data of its node through cloud-init, with the lab's AWS endpoint serving their secrets. This
 * machine sits at 10.78.0.1 on the hosts' bridge, so apps here reach the nodes at 10.78.0.11-16:6379.
 * The hosts outlive the command; `down` removes them.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { Settings } from "../components/config/settings";
import { NodeAddress } from "../components/ec2/topology";
import { canRunLab, destroyPersistentLabs, HostLab } from "../lab/hosts/hostLab";
import { stopAwsEndpoint } from "../lab/aws/control";
import {
  createClusterLab,
  endpointDir,
  LAB_BACKUP,
  openClusterLab,
  shapeOf,
  sweepOrphanEndpoints,
} from "../lab/clusterLab";
import { NODE_SCRIPT } from "../components/ec2/node/userData";
import { ConfigError } from "../components/config/problems";
import { checkDeployedChange } from "../components/ec2/day2";
import { Passwords } from "../lab/passwords";
import { ROOT } from "../lab/stackFiles";
import { stackHealth } from "./localCluster";

export const HOSTS_DIR = path.join(ROOT, ".local", "hosts");
export const LOCAL_SUBNET = "10.78.0";
const STATE = path.join(HOSTS_DIR, "state.json");
const INSTALL_PACKAGES = path.join(ROOT, "lab", "install-packages.sh");

export interface HostsState {
  nodes: NodeAddress[];
  passwords: Passwords;
  caFile?: string;
  /** The lab's dir (its AWS endpoint's state lives below it). */
  labDir: string;
  /** The `--config KEY=VALUE` overrides the cluster runs with (a second run with the same ones changes nothing). */
  config?: Record<string, string>;
}

/** Same overrides, in any order. */
export function sameConfig(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  const norm = (o: Record<string, string>) => JSON.stringify(Object.entries(o).sort(([x], [y]) => x.localeCompare(y)));
  return norm(a) === norm(b);
}

function writeState(state: HostsState): void {
  fs.writeFileSync(STATE, JSON.stringify(state, null, 2), { mode: 0o600 });
}

/**
 * Applies changed settings to the running local hosts the way `pulumi up` does, through the lab's own
 * deploy (the one the day-2 tests run): the same preview checks, new hosts booted from their user-data,
 * the desired-settings parameter rewritten, then the same wait (every node reports the new settings and
 * roll generation, leaving nodes drained), and drained hosts deleted.
 */
export async function applyToHosts(
  state: HostsState,
  running: Settings,
  next: Settings,
  config: Record<string, string>,
  log: (m: string) => void,
): Promise<HostsState> {
  const problems = checkDeployedChange(shapeOf(running), shapeOf(next));
  if (problems.length > 0) throw new ConfigError(problems, "redis-stack");
  const c = await openClusterLab(running, {
    labDir: state.labDir,
    subnet: LOCAL_SUBNET,
    passwords: state.passwords,
    pkiDir: path.join(HOSTS_DIR, "pki"),
    generation: running.ec2?.nodeGeneration ?? 0,
    log,
  });
  const r = await c.deploy(next, { generation: next.ec2?.nodeGeneration ?? 0, log });
  if (r.added.length > 0) log(`added ${r.added.join(", ")}`);
  if (r.removed.length > 0) log(`drained and deleted ${r.removed.join(", ")}`);
  log(`every node runs the new settings (${(r.convergedMs / 1000).toFixed(1)}s after the parameter changed)`);
  const applied: HostsState = { ...state, nodes: c.nodes, caFile: c.pki?.caCertFile ?? state.caFile, config };
  writeState(applied);
  return applied;
}

/** As root, installs what the hosts need (Debian packages) first; otherwise says what is missing. */
export function canRunHosts(): { ok: boolean; reason?: string } {
  const first = canRunLab();
  if (first.ok || process.getuid?.() !== 0) return first;
  if (spawnSync("bash", [INSTALL_PACKAGES], { stdio: "inherit" }).status !== 0)
    return { ok: false, reason: `${INSTALL_PACKAGES} failed` };
  return canRunLab(true);
}

export function readHostsState(): HostsState | undefined {
  return fs.existsSync(STATE) ? (JSON.parse(fs.readFileSync(STATE, "utf8")) as HostsState) : undefined;
}

export async function hostsUp(
  settings: Settings,
  log: (m: string) => void,
  config: Record<string, string> = {},
  running?: Settings,
): Promise<HostsState> {
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("target must be ec2");
  const previous = readHostsState();
  if (previous) {
    // Healthy as the config it runs (a change of shards is applied below, not a reason to start over).
    const now = (running ?? settings).ec2 ?? ec2;
    const h = await stackHealth(previous, now);
    if (h.ok) {
      if (sameConfig(previous.config, config)) {
        log("the local hosts are already running this config and healthy: nothing to change");
        return previous;
      }
      log(
        `applying --config ${
          Object.entries(config)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ") || "(none)"
        } to the running hosts`,
      );
      return applyToHosts(previous, running ?? settings, settings, config, log);
    }
    log(`the local hosts are not healthy (${h.detail}): recreating them`);
  }
  await hostsDown(() => undefined);
  fs.mkdirSync(HOSTS_DIR, { recursive: true, mode: 0o700 });
  log(
    `creating ${ec2.shards * (1 + ec2.replicasPerShard)} Debian 12 hosts on ${LOCAL_SUBNET}.0/24 (this machine: ${LOCAL_SUBNET}.1); ` +
      "the first run builds their root filesystem (a few minutes, cached afterwards)",
  );
  const c = await createClusterLab(settings, {
    subnet: LOCAL_SUBNET,
    persistent: true,
    pkiDir: path.join(HOSTS_DIR, "pki"),
    log,
  });
  const state: HostsState = {
    nodes: c.nodes,
    passwords: c.passwords,
    caFile: c.pki?.caCertFile,
    labDir: c.lab.dir,
    config,
  };
  writeState(state);
  log("booting every host: cloud-init runs its user-data (apt installs Redis and awscli, then the node's units start)");
  const started = Date.now();
  for (const h of c.hosts) await h.start();
  await Promise.all(
    c.nodes.map(async (n, i) => {
      const r = await c.hosts[i].waitCloudInit(900_000);
      if (r.status !== "done")
        throw new Error(
          `cloud-init on ${n.node.name} ended '${r.status}': ${r.output.trim().split("\n").slice(-5).join("\n")}`,
        );
      log(`${n.node.name} (${n.node.role}, ${n.ip}) booted in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    }),
  );
  return state;
}

export async function hostsDown(log: (m: string) => void): Promise<void> {
  const state = readHostsState();
  if (state?.labDir) await stopAwsEndpoint(endpointDir(state.labDir));
  const removed = destroyPersistentLabs();
  sweepOrphanEndpoints();
  if (removed.length > 0) log(`removed the local hosts (lab ${removed.join(", ")})`);
  fs.rmSync(HOSTS_DIR, { recursive: true, force: true });
}

/**
 * `npm run local -- backup`: the same `node.sh backup now` an operator runs on an EC2 node, on the first
 * host; the files go to the lab endpoint's S3 (below .local/hosts/, in its state dir). Prints the manifest's
 * URI, which is what `restoreFrom` takes.
 */
export async function hostsBackup(log: (m: string) => void): Promise<string> {
  const state = readHostsState();
  if (!state) throw new Error("no local hosts (start them with: npm run local)");
  const first = state.nodes[0].node.name;
  log(`backup: node.sh backup now on ${first}, to s3://${LAB_BACKUP.bucket}/${LAB_BACKUP.prefix}/backups/`);
  const r = await HostLab.open(state.labDir).host(first).sh(`${NODE_SCRIPT} backup now`);
  if (r.code !== 0)
    throw new Error(`backup failed on ${first}: ${(r.stdout + r.stderr).trim().split("\n").slice(-3).join(" / ")}`);
  const uri = r.stdout.trim().split("\n").pop() ?? "";
  log(`backup done: ${uri} (the lab's S3 keeps it in ${path.join(endpointDir(state.labDir), "s3")})`);
  return uri;
}
