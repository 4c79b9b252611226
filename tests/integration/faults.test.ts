/**
 * Faults on the prod cluster (real Debian hosts under systemd, booted from the rendered user-data): during each,
 * a writer records every acknowledged write; afterwards the cluster must be back to cluster_state:ok by
 * itself, within a bound derived from the node timeout, with no acknowledged write missing (except the
 * isolated-master scenario, whose loss is measured and reported).
 */
import { describeLab } from "../../lab/hosts/hostLab";
import { clientScenarios } from "./clientScenarios";
import { stackSettings } from "../../lab/stackFiles";
import {
  ClusterLab,
  createClusterLab,
  masterOfSlot,
  missingWrites,
  role,
  RunningWriter,
  startWriter,
  tagForSlots,
  infoField,
  AZS,
} from "../../lab/clusterLab";
import { NodeAddress } from "../../components/ec2/topology";
import { restartDelaySeconds } from "../../components/ec2/node/userData";
import { WriteResult } from "../../lab/writer";

const settings = stackSettings("prod");
const nodeTimeoutMs = settings.ec2?.nodeTimeoutMs ?? 0;
/** Failure detection (node timeout) + election (0.5-1 s + rank) + gossip and client slot refresh. */
const RECOVERY_BOUND_MS = 2 * nodeTimeoutMs + 3000;

const report: Record<string, unknown> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const step = (what: string) =>
  process.env.FAULTS_DEBUG && console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);

describeLab("fault tolerance", () => {
  let c: ClusterLab;
  const idx = (n: NodeAddress) => n.node.index;
  /** Power the instance on again (same instance id: the every-boot units bring Redis back, not the user-data). */
  const startNode = async (n: NodeAddress) => {
    await c.hosts[idx(n)].start();
  };
  /** The instance dies at once (kill -9 of the whole host: no clean shutdown, no failover hand-over). */
  const powerLoss = (n: NodeAddress) => c.hosts[idx(n)].powerLoss();
  const azOf = (n: NodeAddress) => AZS[n.node.azIndex];
  /** One writer per shard, keys tagged into each planned slot range. */
  const shardWriters = (salt: string): Promise<RunningWriter[]> =>
    Promise.all(
      c.nodes
        .filter((n) => n.node.role === "master")
        .map((m) => startWriter(c, tagForSlots(m.node.slots.start, m.node.slots.end, salt))),
    );
  const expectNoneLost = async (w: RunningWriter, res: WriteResult, before = Infinity) => {
    const seqs = res.acked.filter(([, t]) => t < before).map(([s]) => s);
    expect(seqs.length).toBeGreaterThan(50);
    expect(await missingWrites(c, w.tag, seqs)).toEqual([]);
  };
  const others = (...out: NodeAddress[]) => c.nodes.filter((n) => !out.includes(n));

  beforeAll(async () => {
    c = await createClusterLab(settings, { log: (l) => console.log(l) });
    const boots = await c.boot();
    expect(boots.map((b) => b.status)).toEqual(["done", "done", "done", "done", "done", "done"]);
    await c.waitConverged(60_000);
  }, 900_000);
  afterAll(async () => {
    console.log(`fault report: ${JSON.stringify(report, null, 2)}`);
    await c?.destroy();
  });

  test("1. a master's instance dies (kill -9 of the host): its replica is promoted and writes to that shard resume", async () => {
    const shard = c.nodes[0].node.slots;
    const victim = await masterOfSlot(c, shard.start);
    const w = await startWriter(c, tagForSlots(shard.start, shard.end, "a"));
    await sleep(1000);
    const killedAt = Date.now();
    await powerLoss(victim);
    const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim)).catch(() => Number.NaN);
    await sleep(1000);
    const res = await w.stop();
    const promoted = await masterOfSlot(c, shard.start, others(victim));
    expect(promoted).not.toBe(victim);
    const gap = Math.max(0, ...res.gaps.filter((g) => g.start >= killedAt - 100).map((g) => g.ms));
    report.killMaster = { recoveredInMs: recoveredIn, writeGapMs: gap, acked: res.acked.length };
    expect(gap).toBeLessThan(RECOVERY_BOUND_MS);
    expect(res.acked[res.acked.length - 1][1]).toBeGreaterThan(killedAt + gap);
    await expectNoneLost(w, res);
  });

  test("2. the old master's instance boots again (same instance id, user-data not re-run) with its data and rejoins as a replica", async () => {
    const shard = c.nodes[0].node.slots;
    const oldMaster = c.nodes[0];
    const newMaster = await masterOfSlot(c, shard.start, others(oldMaster));
    const w = await startWriter(c, tagForSlots(shard.start, shard.end, "b"));
    await startNode(oldMaster);
    await c.waitConverged(RECOVERY_BOUND_MS + 60000);
    const res = await w.stop();
    expect(await role(c, oldMaster)).toBe("slave");
    // cloud-init did not run the user-data again (one first boot in the log): the every-boot units did the work.
    const log = (await c.hosts[idx(oldMaster)].sh("cat /var/log/redis-stack.log")).stdout;
    expect(log.match(/first boot of \S+ done/g)).toHaveLength(1);
    expect(log.match(/prepare: /g)?.length).toBeGreaterThanOrEqual(2);
    const info = (await c.cli(oldMaster, ["info", "replication"])).stdout;
    expect(infoField(info, "master_host")).toBe(newMaster.ip);
    expect(infoField(info, "master_link_status")).toBe("up");
    await expectNoneLost(w, res);
  });

  test("3. a master cut off from the network: the majority promotes its replica, the isolated master stops taking writes and rejoins as a replica", async () => {
    const shard = c.nodes[1].node.slots;
    const victim = await masterOfSlot(c, shard.start);
    const host = c.hosts[idx(victim)];
    const client = await startWriter(c, tagForSlots(shard.start, shard.end, "c"));
    // A writer on the master's own host keeps writing to it through the partition.
    const local = await startWriter(c, tagForSlots(shard.start, shard.end, "d"), {
      where: c.onHost(idx(victim)),
      direct: `${victim.ip}:${victim.port}`,
    });
    await sleep(2000);
    const cutAt = Date.now();
    await host.networkDown();
    const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim)).catch(() => Number.NaN);
    await sleep(nodeTimeoutMs + 1000);
    await host.networkUp();
    await c.waitConverged(RECOVERY_BOUND_MS + 15000);
    const [resClient, resLocal] = await Promise.all([client.stop(), local.stop()]);
    expect(await role(c, victim)).toBe("slave");
    // The isolated master accepted writes only until it noticed it lost the majority (about the node timeout).
    const acceptedIsolated = resLocal.acked.filter(([, t]) => t > cutAt);
    const lastAccepted = Math.max(cutAt, ...acceptedIsolated.map(([, t]) => t));
    const lost = await missingWrites(
      c,
      local.tag,
      acceptedIsolated.map(([s]) => s),
    );
    report.isolatedMaster = {
      recoveredInMs: recoveredIn,
      acceptedWhileIsolated: acceptedIsolated.length,
      lostOfThose: lost.length,
      acceptedForMs: lastAccepted - cutAt,
    };
    expect(Number.isNaN(recoveredIn)).toBe(false);
    // It notices within about 1.5 node timeouts (PFAIL after the timeout, pings every half timeout).
    expect(lastAccepted - cutAt).toBeLessThan(2 * nodeTimeoutMs + 1000);
    // Those writes went to a master the cluster had already replaced: they are lost (reported, not hidden).
    expect(lost.length).toBeLessThanOrEqual(acceptedIsolated.length);
    // Writes acknowledged before the cut survive; those through the cluster client after it too.
    await expectNoneLost(local, resLocal, cutAt - 1000);
    report.isolatedMaster = {
      ...(report.isolatedMaster as object),
      clientWritesLost: (
        await missingWrites(
          c,
          client.tag,
          resClient.acked.map(([s]) => s),
        )
      ).length,
    };
  });

  test("4. power loss: all six instances killed at once and booted again: every write acknowledged more than 1 s before is there", async () => {
    const writers = await shardWriters("e");
    await sleep(2000);
    const crashAt = Date.now();
    await Promise.all(c.hosts.map((h) => h.powerLoss()));
    step("killed all");
    const results = await Promise.all(writers.map((w) => w.stop()));
    step("writers stopped");
    await Promise.all(c.nodes.map(startNode));
    step("all started");
    const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 90000);
    report.powerLoss = { recoveredInMs: recoveredIn, acked: results.map((r) => r.acked.length) };
    for (const [i, w] of writers.entries()) await expectNoneLost(w, results[i], crashAt - 1000);
  });

  test("5. replacement: a new instance (new id: cloud-init runs the user-data) with an empty data volume rejoins by itself", async () => {
    const shard = c.nodes[2].node.slots;
    const victim = await masterOfSlot(c, shard.start);
    const w = await startWriter(c, tagForSlots(shard.start, shard.end, "f"));
    const host = c.hosts[idx(victim)];
    const oldInstance = host.instanceId;
    await powerLoss(victim);
    await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim));
    const boot = await c.replace(idx(victim), { blankVolume: true });
    if (boot.status !== "done") console.log(boot.detail, boot.output);
    expect(boot.status).toBe("done");
    expect(host.instanceId).not.toBe(oldInstance);
    const log = (await host.sh("cat /var/log/redis-stack.log")).stdout;
    expect(log).toContain("blank: formatting");
    expect(log).toContain("forgetting stale node");
    await c.waitConverged(RECOVERY_BOUND_MS + 30000);
    const res = await w.stop();
    const check = await c.cli(c.nodes[0], ["--cluster", "check", `${c.nodes[0].ip}:6379`]);
    expect(check.code).toBe(0);
    expect(check.stdout).not.toMatch(/\[ERR\]|\[WARNING\]/);
    expect(infoField((await c.cli(c.nodes[0], ["cluster", "info"])).stdout, "cluster_known_nodes")).toBe("6");
    // The shard is again served by its two planned hosts, in different AZs.
    const pair = c.nodes.filter((n) => n.node.shard === victim.node.shard);
    const roles = await Promise.all(pair.map((n) => role(c, n)));
    expect(roles.sort()).toEqual(["master", "slave"]);
    await expectNoneLost(w, res);
  });

  test("6. loss of one availability zone: the cluster keeps serving all 16384 slots", async () => {
    const az = azOf(c.nodes[1]);
    const lostNodes = c.nodes.filter((n) => azOf(n) === az);
    expect(lostNodes).toHaveLength(2);
    const writers = await shardWriters("g");
    await sleep(1000);
    await Promise.all(
      lostNodes.map(async (n) => {
        await powerLoss(n);
        await c.hosts[idx(n)].networkDown();
      }),
    );
    const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(...lostNodes)).catch(() => Number.NaN);
    const survivor = others(...lostNodes)[0];
    const info = (await c.cli(survivor, ["cluster", "info"])).stdout;
    expect(infoField(info, "cluster_state")).toBe("ok");
    expect(infoField(info, "cluster_slots_ok")).toBe("16384");
    await sleep(1000);
    const results = await Promise.all(writers.map((w) => w.stop()));
    report.azLoss = {
      az,
      recoveredInMs: recoveredIn,
      maxWriteGapMs: Math.max(0, ...results.flatMap((r) => r.gaps.map((g) => g.ms))),
    };
    for (const [i, w] of writers.entries()) await expectNoneLost(w, results[i]);
    // Bring the zone back: the two nodes rejoin as replicas.
    await Promise.all(
      lostNodes.map(async (n) => {
        await c.hosts[idx(n)].networkUp();
        await startNode(n);
      }),
    );
    await c.waitConverged(RECOVERY_BOUND_MS + 60000);
  });

  test("7. replica loss: a replica killed and restarted resynchronises", async () => {
    const replica = (await Promise.all(c.nodes.map(async (n) => ({ n, r: await role(c, n) })))).find(
      (x) => x.r === "slave",
    )?.n;
    if (!replica) throw new Error("no replica");
    const writers = await shardWriters("h");
    await powerLoss(replica);
    await sleep(nodeTimeoutMs + 1000);
    await startNode(replica);
    await c.waitConverged(RECOVERY_BOUND_MS + 60000);
    const results = await Promise.all(writers.map((w) => w.stop()));
    expect(infoField((await c.cli(replica, ["info", "replication"])).stdout, "master_link_status")).toBe("up");
    for (const [i, w] of writers.entries()) await expectNoneLost(w, results[i]);
  });

  test("8. redis-server crashes on a live instance: real systemd restarts it only after the promotion, and it rejoins as a replica", async () => {
    const shard = c.nodes[1].node.slots;
    const victim = await masterOfSlot(c, shard.start);
    const host = c.hosts[idx(victim)];
    const mainPid = async () => (await host.sh("systemctl show -p MainPID --value redis-node")).stdout.trim();
    const w = await startWriter(c, tagForSlots(shard.start, shard.end, "i"));
    await sleep(1000);
    const crashed = await mainPid();
    expect(crashed).toMatch(/^[1-9][0-9]*$/);
    expect((await host.sh(`kill -KILL ${crashed}`)).code).toBe(0);
    const promotedIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim));
    // No human step: the unit's Restart=always brings the process back and it finds its new place.
    const restartSec = restartDelaySeconds(nodeTimeoutMs);
    const healedIn = await c.waitConverged(restartSec * 1000 + RECOVERY_BOUND_MS + 10000);
    const res = await w.stop();
    const restarted = await mainPid();
    expect(restarted).toMatch(/^[1-9][0-9]*$/);
    expect(restarted).not.toBe(crashed);
    // systemd's own account: one automatic restart, RestartSec as rendered.
    expect((await host.sh("systemctl show -p NRestarts --value redis-node")).stdout.trim()).toBe("1");
    expect((await host.sh("systemctl show -p RestartUSec --value redis-node")).stdout.trim()).toBe(`${restartSec}s`);
    expect((await host.sh("journalctl -u redis-node --no-pager -o cat")).stdout).toMatch(/Scheduled restart job/);
    // It came back after its replica had taken over, so it is the replica now.
    expect(await role(c, victim)).toBe("slave");
    expect(infoField((await c.cli(victim, ["info", "replication"])).stdout, "master_link_status")).toBe("up");
    report.processCrash = { promotedInMs: promotedIn, restartSec, healedInMs: healedIn };
    await expectNoneLost(w, res);
  });

  // The app side, on the same lab once the faults above are over.
  clientScenarios(() => c);
});
