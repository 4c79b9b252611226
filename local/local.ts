/**
 * `npm run local`: the prod stack's topology on this machine, from the same renderers and scripts as EC2.
 *   npm run local            bring it up (safe to repeat), wait until healthy, print the output contract
 *   npm run local -- --config KEY=VALUE [--config ...]
 *                            the same with stack config changed (keys of `pulumi config set`): a running
 *                            cluster takes the change the way `pulumi up` applies it; the same config
 *                            again changes nothing
 *   npm run local -- down    stop it and remove everything it made
 *   npm run local -- status  health of a running local cluster
 *   npm run local -- top     live per-node view (role, memory %, ops/s, hit rate, p99, replication lag);
 *                            `top --once` prints one table and exits
 * As root on Linux: six real Debian 12 hosts (systemd-nspawn) booting their EC2 user-data through cloud-init.
 * Otherwise (or with REDIS_LOCAL_MODE=loopback): six processes on 127.0.0.1:7000-7005.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { connectionContract, ConnectionContract, toDotenv } from "../components/contract/connection";
import { APP_USER } from "../components/ec2/node/redisConf";
import { NodeAddress } from "../components/ec2/topology";
import { Passwords } from "../lab/passwords";
import { ROOT, stackSettings } from "../lab/stackFiles";
import { sleep, stackHealth } from "./localCluster";
import { Ec2Settings } from "../components/config/settings";
import { SENTINEL_PORT } from "../components/ec2/sentinel";
import { LAB_SENTINEL_MASTER } from "../lab/clusterLab";
import { convergeLoopback, readLoopbackState, startLoopback, stopLoopback } from "./loopback";
import { hostsBackup, hostsDown, hostsUp, canRunHosts, readHostsState } from "./localHosts";
import { top } from "./top";

export const ENV_FILE = path.join(ROOT, ".local", "redis.env");
const log = (m: string) => console.log(`[local] ${m}`);

function requireRedis(): void {
  if (spawnSync("redis-server", ["--version"]).status !== 0 || spawnSync("redis-cli", ["--version"]).status !== 0) {
    console.error(
      "redis-server/redis-cli not found: run `sudo bash lab/install-packages.sh` first (Debian/Ubuntu; it installs everything the local mode and the tests use), or `brew install redis` for the loopback mode.",
    );
    process.exit(2);
  }
}

type Mode = "hosts" | "loopback";
function chooseMode(): Mode {
  const forced = process.env.REDIS_LOCAL_MODE;
  if (forced === "hosts" || forced === "loopback") return forced;
  return canRunHosts().ok ? "hosts" : "loopback";
}

type Running = { nodes: NodeAddress[]; passwords: Passwords; caFile?: string };

/** Polls health with a progress line until healthy or the deadline. */
async function waitHealthy(running: Running, ec2: Ec2Settings, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let lastDetail = "";
  while (Date.now() - started < timeoutMs) {
    const h = await stackHealth(running, ec2);
    if (h.ok) return Date.now() - started;
    if (h.detail !== lastDetail) {
      log(`waiting for the cluster: ${h.detail} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
      lastDetail = h.detail;
    }
    await sleep(250);
  }
  throw new Error(`cluster not healthy after ${timeoutMs / 1000}s: ${lastDetail}`);
}

function publish(contract: ConnectionContract): void {
  fs.mkdirSync(path.dirname(ENV_FILE), { recursive: true });
  fs.writeFileSync(ENV_FILE, toDotenv(contract.env), { mode: 0o600 });
  let caFile = "";
  if (contract.caCertificate) {
    caFile = path.join(path.dirname(ENV_FILE), "ca.crt");
    fs.writeFileSync(caFile, contract.caCertificate);
  }
  // The password stays in the env file: the console (and CI logs) only see it masked.
  const mask = (s: string) => s.replace(/:\/\/([^:]+):[^@]+@/, "://$1:****@");
  const shown = {
    ...contract,
    redisUrl: mask(contract.redisUrl),
    // The CA's PEM goes to the env file and ca.crt: the console names the file instead.
    env: {
      ...contract.env,
      REDIS_URL: mask(contract.env.REDIS_URL),
      ...(contract.env.REDIS_CA_PEM !== undefined ? { REDIS_CA_PEM: `(${path.relative(process.cwd(), caFile)})` } : {}),
    },
    caCertificate: caFile ? path.relative(process.cwd(), caFile) : "",
  };
  console.log(JSON.stringify(shown, null, 2));
  log(
    `env (with the password) written to ${path.relative(process.cwd(), ENV_FILE)}, mode 600: set -a; . ${path.relative(process.cwd(), ENV_FILE)}; set +a`,
  );
}

/** `--config KEY=VALUE` pairs (repeatable); `redis-stack:` prefixes are accepted as in `pulumi config set`. */
export function parseConfigArgs(args: string[]): { command: string; config: Record<string, string> } {
  const config: Record<string, string> = {};
  let command = "up";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const pair = a === "--config" ? args[++i] : a.startsWith("--config=") ? a.slice("--config=".length) : undefined;
    if (pair === undefined) {
      // `top --once` is top's own flag.
      if (a !== "--once") command = a;
      continue;
    }
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--config takes KEY=VALUE (got ${JSON.stringify(pair)})`);
    config[pair.slice(0, eq).replace(/^redis-stack:/, "")] = pair.slice(eq + 1);
  }
  return { command, config };
}

async function up(mode: Mode, config: Record<string, string>): Promise<void> {
  const settings = stackSettings("prod", "redis-stack", config);
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("Pulumi.prod.yaml must use target ec2");
  if (ec2.topology === "sentinel" && mode === "loopback")
    throw new Error("topology=sentinel needs the hosts mode (root on Linux): the loopback mode runs a cluster only");
  log(
    ec2.topology === "sentinel"
      ? `prod topology: sentinel, one primary and ${ec2.replicasPerShard} replicas, TLS ${settings.tls ? "on" : "off"}, mode ${mode}`
      : `prod topology: ${ec2.shards} shards x ${ec2.replicasPerShard} replica(s), TLS ${settings.tls ? "on" : "off"}, mode ${mode}`,
  );
  let running: Running;
  if (mode === "loopback") {
    const state = await startLoopback(settings, log);
    await convergeLoopback(state);
    running = state;
  } else {
    const previous = readHostsState();
    running = await hostsUp(
      settings,
      log,
      config,
      previous ? stackSettings("prod", "redis-stack", previous.config ?? {}) : undefined,
    );
  }
  const ms = await waitHealthy(running, ec2, 120000);
  log(`${ec2.topology} healthy (${(ms / 1000).toFixed(1)}s after every node finished its part)`);
  publish(
    connectionContract({
      target: "ec2",
      nodes: running.nodes.map((n) => `${n.ip}:${n.port}`),
      username: APP_USER,
      password: running.passwords.app,
      tls: settings.tls,
      clusterMode: ec2.topology === "cluster",
      sentinel:
        ec2.topology === "sentinel"
          ? { masterName: LAB_SENTINEL_MASTER, sentinels: running.nodes.map((n) => `${n.ip}:${SENTINEL_PORT}`) }
          : undefined,
      caCertificate: running.caFile ? fs.readFileSync(running.caFile, "utf8") : undefined,
      client: settings.client,
    }),
  );
}

async function main(): Promise<void> {
  const { command: cmd, config } = parseConfigArgs(process.argv.slice(2));
  if (!["up", "down", "status", "top", "backup"].includes(cmd)) {
    console.error(`usage: npm run local [-- up|down|status|top [--once]|backup] [--config KEY=VALUE ...]`);
    process.exit(2);
  }
  if (Object.keys(config).length > 0 && cmd !== "up") {
    console.error("--config goes with up");
    process.exit(2);
  }
  // As root this installs what the hosts need (Debian packages) first, as .ci/run does.
  const mode = chooseMode();
  requireRedis();
  if (cmd === "down") {
    await stopLoopback(log);
    await hostsDown(log);
    fs.rmSync(path.dirname(ENV_FILE), { recursive: true, force: true });
    log("local cluster removed");
    return;
  }
  if (cmd === "backup") {
    if (!readHostsState())
      throw new Error("backup needs the hosts mode (root on Linux) and running hosts: npm run local");
    await hostsBackup(log);
    return;
  }
  if (cmd === "top") {
    const running = readLoopbackState() ?? readHostsState();
    if (!running) {
      log("no local cluster (start one with: npm run local)");
      process.exit(2);
    }
    await top(running, { once: process.argv.includes("--once") });
    return;
  }
  if (cmd === "status") {
    const hostsState = readHostsState();
    const ec2 = stackSettings("prod", "redis-stack", hostsState?.config ?? {}).ec2;
    const running = readLoopbackState() ?? hostsState;
    if (!running || !ec2) {
      log("no local cluster (start one with: npm run local)");
      return;
    }
    const h = await stackHealth(running, ec2);
    log(
      `${running.nodes.map((n) => `${n.ip}:${n.port}`).join(" ")}: ${h.ok ? "healthy" : "NOT healthy"} (${h.detail})`,
    );
    return;
  }
  if (mode === "loopback" && Object.keys(config).length > 0) {
    console.error("--config needs the hosts mode (root on Linux): the loopback processes have no settings timer");
    process.exit(2);
  }
  await up(mode, config);
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(`[local] failed: ${e.message}`);
    process.exit(1);
  });
}
