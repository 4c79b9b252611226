/**
 * `npm run bench:cluster`: how long until a fresh cluster is usable. Median of 5 runs, for
 *  - hosts: six real Debian 12 hosts (needs root), from the first boot of their instances (cloud-init
 *    runs the user-data: apt installs Redis and awscli from the lab's mirror, the units start) to
 *    cluster_state:ok with every replica attached, as seen by every node. All six share this machine's
 *    cores, so package installs are far slower than on six real instances. The one-time root filesystem
 *    build (the "AMI") is timed separately: cold once, then warm.
 *  - loopback: the non-root local mode, from redis-server processes started to the same state.
 * Prints a table and writes bench-results/cluster-formation.json.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { canRunLab } from "../lab/hosts/hostLab";
import { ensureRootfs } from "../lab/hosts/rootfs";
import { createClusterLab } from "../lab/clusterLab";
import { adminTarget, clusterHealth, sleep } from "../local/localCluster";
import { stackSettings } from "../lab/stackFiles";
import { convergeLoopback, startLoopback, stopLoopback } from "../local/loopback";
import { machine, stats, writeResults } from "./benchUtil";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const settings = stackSettings("prod");

async function hostsRun(): Promise<number> {
  const c = await createClusterLab(settings);
  try {
    const started = Date.now();
    const boots = await c.boot();
    const failed = boots.findIndex((r) => r.status !== "done");
    if (failed >= 0) throw new Error(`cloud-init on ${c.nodes[failed].node.name}: ${boots[failed].detail}`);
    return await c.waitConverged(120000).then(() => Date.now() - started);
  } finally {
    await c.destroy();
  }
}

async function loopbackRun(): Promise<number> {
  await stopLoopback(() => undefined);
  const ec2 = settings.ec2;
  if (!ec2) throw new Error("prod must be ec2");
  const started = Date.now();
  const state = await startLoopback(settings, () => undefined);
  const converge = convergeLoopback(state);
  for (;;) {
    const h = await clusterHealth(adminTarget(state), ec2.shards, ec2.replicasPerShard);
    if (h.ok) break;
    if (Date.now() - started > 120000) throw new Error(`loopback cluster not healthy: ${h.detail}`);
    await sleep(50);
  }
  const ms = Date.now() - started;
  await converge;
  await stopLoopback(() => undefined);
  return ms;
}

async function main(): Promise<void> {
  const results: Record<string, { runsMs: number[]; stats: ReturnType<typeof stats> } | { skipped: string }> = {};
  const lab = canRunLab();
  if (lab.ok) {
    // BENCH_ROOTFS_COLD=1: also time a build from nothing (a fresh cache dir, removed afterwards).
    if (process.env.BENCH_ROOTFS_COLD === "1") {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rootfs-cold-"));
      try {
        const cold = await ensureRootfs({ cacheDir: dir, log: (l) => console.log(l) });
        console.log(`root filesystem cold: built in ${cold.seconds.toFixed(1)} s`);
        results.rootfsCold = { runsMs: [cold.seconds * 1000], stats: stats([cold.seconds * 1000]) };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const rootfs = await ensureRootfs({ log: (l) => console.log(l) });
    console.log(`root filesystem: ${rootfs.built ? "built" : "cached"} in ${rootfs.seconds.toFixed(1)} s`);
    results.rootfs = { runsMs: [rootfs.seconds * 1000], stats: stats([rootfs.seconds * 1000]) };
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(await hostsRun());
      console.log(`hosts    run ${i + 1}/${RUNS}: ${(runs[i] / 1000).toFixed(2)} s`);
    }
    results.hosts = { runsMs: runs, stats: stats(runs) };
  } else {
    console.log(`hosts mode skipped: ${lab.reason}`);
    results.hosts = { skipped: lab.reason };
  }
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await loopbackRun());
    console.log(`loopback run ${i + 1}/${RUNS}: ${(runs[i] / 1000).toFixed(2)} s`);
  }
  results.loopback = { runsMs: runs, stats: stats(runs) };

  console.log(
    "\nmode      median    p95      max     (time to cluster_state:ok with all replicas attached; target < 10 s)",
  );
  for (const [mode, r] of Object.entries(results)) {
    if ("skipped" in r) console.log(`${mode.padEnd(9)} skipped`);
    else
      console.log(
        `${mode.padEnd(9)} ${(r.stats.median / 1000).toFixed(2)} s   ${(r.stats.p95 / 1000).toFixed(2)} s   ${(r.stats.max / 1000).toFixed(2)} s`,
      );
  }
  const file = writeResults("cluster-formation", {
    machine: machine(),
    tls: settings.tls,
    topology: `${settings.ec2?.shards}x${settings.ec2?.replicasPerShard}`,
    results,
  });
  console.log(`\nwritten to ${file}`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
