/**
 * Faults on the prod cluster (real Debian hosts under systemd, booted from the rendered user-data), made as
 * EC2 makes them (lab/hosts/hostLab.ts): a dead instance goes silent (packets vanish, no RST), a power loss
 * also drops the volume's unflushed writes, a partition drops packets both ways. During each, a writer
 * records every acknowledged write (each its own key); afterwards the cluster must be back to
 * cluster_state:ok by itself, and the promises hold at their numbers: an instance loss stops a shard's
 * writes for less than 5 s, an isolated master refuses writes within 3 s, and no acknowledged write is lost
 * outside the windows the docs state (asynchronous replication's last moments, AOF everysec's last
 * seconds), which are measured and reported.
 */
import * as fs from "fs";
import { clientScenarios } from "./clientScenarios";
import { stackSettings } from "../../lab/stackFiles";
import {
  ClusterLab,
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
import { longestSilence, WriteResult, writeGap } from "../../lab/writer";

const settings = stackSettings("prod");
const nodeTimeoutMs = settings.ec2?.nodeTimeoutMs ?? 0;
/** How long the waits below give the cluster to settle (a wait, not a promise: the promises are below). */
const RECOVERY_BOUND_MS = 2 * nodeTimeoutMs + 3000;
/** The promise: an instance loss stops writes to its shard for less than this (last ack before to first after). */
const INSTANCE_LOSS_GAP_MS = 5_000;
/**
 * The promise: a master cut off from the majority refuses writes within this at the default node timeout
 * (2 s without a pong from the majority, pings every half node timeout, the cron's 100 ms).
 */
const ISOLATED_REFUSES_WITHIN_MS = 3_500;
/** Asynchronous replication: what a dying master acknowledged this shortly before and had not sent on. */
const REPLICATION_WINDOW_MS = 1_000;
/** AOF everysec on a power loss: at most the last 2 s (Redis's documented worst case; 1 s typically). */
const POWER_LOSS_WINDOW_MS = 2_000;

const report: Record<string, unknown> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const step = (what: string) =>
  process.env.FAULTS_DEBUG && console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);

/**
 * The faults, on a running lab at the prod stack's settings with its planned roles (the lifecycle suite's
 * lab, booted once for both), then the app-side client scenarios on the same lab.
 */
export function faultScenarios(lab: () => ClusterLab): void {
  describe("fault tolerance", () => {
    let c: ClusterLab;
    /** The master test 1 kills: test 2 boots it again. */
    let firstVictim: NodeAddress | undefined;
    const idx = (n: NodeAddress) => n.node.index;
    /** Power the instance on again (same instance id: the every-boot units bring Redis back, not the user-data). */
    const startNode = async (n: NodeAddress) => {
      await c.hosts[idx(n)].start();
    };
    /** The instance dies as EC2's do: silent first (no RST), then every process killed; no hand-over. */
    const instanceLoss = (n: NodeAddress) => c.hosts[idx(n)].instanceLoss();
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
    /** The acknowledged writes the cluster no longer has: [seq, ms acknowledged before (-) or after the fault]. */
    const lostAround = async (
      w: RunningWriter,
      res: WriteResult,
      faultAt: number,
    ): Promise<Array<[number, number]>> => {
      const missing = new Set(
        await missingWrites(
          c,
          w.tag,
          res.acked.map(([seq]) => seq),
        ),
      );
      return res.acked.filter(([seq]) => missing.has(seq)).map(([seq, t]) => [seq, t - faultAt]);
    };
    const others = (...out: NodeAddress[]) => c.nodes.filter((n) => !out.includes(n));

    beforeAll(async () => {
      c = lab();
      await c.waitConverged(60_000);
    }, 120_000);
    afterAll(() => console.log(`fault report: ${JSON.stringify(report, null, 2)}`));

    test("1. a master's instance dies (silent, then killed): its replica is promoted and writes to that shard resume within 5 s", async () => {
      const shard = c.nodes[0].node.slots;
      const victim = await masterOfSlot(c, shard.start);
      firstVictim = victim;
      const w = await startWriter(c, tagForSlots(shard.start, shard.end, "a"));
      // The same fault seen by redis-py (Debian's python3-redis, configured as docs/clients.md says).
      const py = await startWriter(c, tagForSlots(shard.start, shard.end, "apy"), { client: "redis-py" });
      await sleep(1000);
      const victimId = (await c.cli(victim, ["cluster", "myid"])).stdout.trim();
      const killedAt = await instanceLoss(victim);
      const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim)).catch(() => Number.NaN);
      // redis-py notices the new master only at its next slot-map read (lab/writer.py): give it time to.
      await sleep(4000);
      const res = await w.stop();
      const pyRes = await py.stop();
      const promoted = await masterOfSlot(c, shard.start, others(victim));
      expect(promoted).not.toBe(victim);
      const gap = writeGap(res.acked, killedAt);
      const lost = await lostAround(w, res, killedAt);
      const pyGap = writeGap(pyRes.acked, killedAt);
      const pyLost = await lostAround(py, pyRes, killedAt);
      report.instanceLoss = {
        recoveredInMs: recoveredIn,
        writeGapMs: gap.ms,
        acked: res.acked.length,
        lost,
        redisPy: { writeGapMs: pyGap.ms, acked: pyRes.acked.length, lost: pyLost },
      };
      expect(gap.ms).toBeLessThan(INSTANCE_LOSS_GAP_MS);
      // The replica took over as soon as the cluster flagged its master (redis-node-watch.service), without
      // waiting out Redis's election delay.
      const promotedLog = await c.hosts[idx(promoted)].sh(
        `grep -c 'master ${victimId} failed.*took its slots over at once' /var/log/redis-stack.log`,
      );
      expect(promotedLog.stdout.trim()).toBe("1");
      // Only what the master acknowledged in its last moments can be gone (asynchronous replication).
      expect(lost.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS || ms > 0)).toEqual([]);
      // redis-py came back on the promoted replica (its figures are the bench's: docs/clients.md), losing
      // nothing outside the same window.
      expect(pyGap.firstAfterAt).toBeDefined();
      expect(pyLost.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS || ms > 0)).toEqual([]);
    });

    test("2. the old master's instance boots again (same instance id, user-data not re-run) with its data and rejoins as a replica", async () => {
      const shard = c.nodes[0].node.slots;
      const oldMaster = firstVictim;
      if (!oldMaster) throw new Error("test 1 killed no master");
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

    test("3. a master cut off from the network (packets dropped both ways): the majority promotes its replica, the isolated master refuses writes within 3 s and rejoins as a replica", async () => {
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
      const cutAt = await host.networkDown();
      const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(victim)).catch(() => Number.NaN);
      await sleep(nodeTimeoutMs + 1000);
      await host.networkUp();
      await c.waitConverged(RECOVERY_BOUND_MS + 15000);
      const [resClient, resLocal] = await Promise.all([client.stop(), local.stop()]);
      expect(await role(c, victim)).toBe("slave");
      const acceptedIsolated = resLocal.acked.filter(([, t]) => t > cutAt);
      const lastAccepted = Math.max(cutAt, ...acceptedIsolated.map(([, t]) => t));
      const lostLocal = await lostAround(local, resLocal, cutAt);
      const lostClient = await lostAround(client, resClient, cutAt);
      report.isolatedMaster = {
        recoveredInMs: recoveredIn,
        acceptedWhileIsolated: acceptedIsolated.length,
        lostOfThose: lostLocal.filter(([, ms]) => ms > 0).length,
        acceptedForMs: lastAccepted - cutAt,
        clientWritesLost: lostClient.length,
      };
      expect(Number.isNaN(recoveredIn)).toBe(false);
      expect(lastAccepted - cutAt).toBeLessThan(ISOLATED_REFUSES_WITHIN_MS);
      // What the isolated master took after the cut never reached the majority: all of it is gone when it
      // rejoins as a replica (the documented loss), and nothing it had before the cut.
      const after = (ms: number) => ms > 100;
      expect(lostLocal.filter(([, ms]) => after(ms)).map(([seq]) => seq)).toEqual(
        acceptedIsolated.filter(([, t]) => after(t - cutAt)).map(([seq]) => seq),
      );
      expect(lostLocal.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS)).toEqual([]);
      // The cluster client, which the partition cut off from the old master too, lost nothing it was told.
      expect(lostClient.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS || ms > 0)).toEqual([]);
    });

    /**
     * Every instance loses power at once after writers ran for writeForMs, then boots again: the writers,
     * their results, when the first host went silent, how long the cluster took to recover and what was lost.
     */
    const powerLossOfAll = async (salt: string, writeForMs = 3000) => {
      const writers = await shardWriters(salt);
      await sleep(writeForMs);
      // The earliest moment a host went silent: an acknowledged write older than that was before every crash.
      const crashAt = Math.min(...(await Promise.all(c.hosts.map((h) => h.powerLoss()))));
      step("power lost on all");
      const results = await Promise.all(writers.map((w) => w.stop()));
      await Promise.all(c.nodes.map(startNode));
      const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 90000).catch(async (e: unknown) => {
        // What each node was doing: the reason is on the nodes, not in the views.
        for (const [i, n] of c.nodes.entries()) console.error(`${n.node.name}:\n${await c.diagnose(i)}`);
        throw e;
      });
      const lost = await Promise.all(writers.map((w, i) => lostAround(w, results[i], crashAt)));
      return { writers, results, crashAt, recoveredIn, lost: lost.flat() };
    };

    test("4. power loss of every instance at once: only writes acknowledged in the last 2 s before can be gone (AOF everysec)", async () => {
      const { results, recoveredIn, lost } = await powerLossOfAll("e");
      report.powerLoss = {
        recoveredInMs: recoveredIn,
        acked: results.map((r) => r.acked.length),
        lost: lost.length,
        oldestLostMsBefore: Math.min(0, ...lost.map(([, ms]) => ms)),
      };
      expect(lost.filter(([, ms]) => ms < -POWER_LOSS_WINDOW_MS)).toEqual([]);
    }, 600_000);

    test("4b. the power loss is real: with appendfsync no (the kernel flushes after 30 s), it loses older acknowledged writes", async () => {
      // The check above could not fail if a power loss kept the page cache: with fsync off it must show loss.
      for (const n of c.nodes) expect((await c.cli(n, ["config", "set", "appendfsync", "no"])).stdout).toMatch(/OK/);
      // Ten seconds of writes: the loss must show in the 8 s before the everysec window, far from the kernel's
      // 30 s expiry. (With 3 s a CI run once saw none there: its first writes were barely 2 s old.)
      const meminfo = fs
        .readFileSync("/proc/meminfo", "utf8")
        .split("\n")
        .filter((l) => /^(Dirty|Writeback):/.test(l))
        .join(" ");
      const expire = fs.readFileSync("/proc/sys/vm/dirty_expire_centisecs", "utf8").trim();
      const { results, crashAt, lost } = await powerLossOfAll("nofsync", 10_000);
      const older = (ms: number) => ms < -POWER_LOSS_WINDOW_MS;
      report.powerLossWithoutFsync = {
        ackedOlderThanWindow: results.flatMap((r) => r.acked).filter(([, t]) => older(t - crashAt)).length,
        lost: lost.length,
        lostOlderThanWindow: lost.filter(([, ms]) => older(ms)).length,
        oldestLostMsBefore: Math.min(0, ...lost.map(([, ms]) => ms)),
        // What the machine's kernel does with dirty pages: if it flushed them the check below says so.
        dirtyExpireCentisecs: Number(expire),
        beforeTheWrites: meminfo.replace(/\s+/g, " "),
      };
      expect(lost.filter(([, ms]) => older(ms)).length).toBeGreaterThan(0);
      // Booted again from redis.conf: everysec, as the stack renders it.
      for (const n of c.nodes)
        expect((await c.cli(n, ["config", "get", "appendfsync"])).stdout.trim().split("\n")[1]).toBe("everysec");
    }, 600_000);

    test("5. replacement: a new instance (new id: cloud-init runs the user-data) with an empty data volume rejoins by itself", async () => {
      const shard = c.nodes[2].node.slots;
      const victim = await masterOfSlot(c, shard.start);
      const w = await startWriter(c, tagForSlots(shard.start, shard.end, "f"));
      const host = c.hosts[idx(victim)];
      const oldInstance = host.instanceId;
      const lostAt = await instanceLoss(victim);
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
      const lost = await lostAround(w, res, lostAt);
      expect(lost.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS || ms > 0)).toEqual([]);
    }, 300_000);

    test("6. loss of one availability zone: the cluster keeps serving all 16384 slots", async () => {
      const az = azOf(c.nodes[1]);
      const lostNodes = c.nodes.filter((n) => azOf(n) === az);
      expect(lostNodes).toHaveLength(2);
      const writers = await shardWriters("g");
      await sleep(1000);
      const lostAt = Math.min(...(await Promise.all(lostNodes.map((n) => instanceLoss(n)))));
      const recoveredIn = await c.waitConverged(RECOVERY_BOUND_MS + 5000, others(...lostNodes)).catch(() => Number.NaN);
      const survivor = others(...lostNodes)[0];
      const info = (await c.cli(survivor, ["cluster", "info"])).stdout;
      expect(infoField(info, "cluster_state")).toBe("ok");
      expect(infoField(info, "cluster_slots_ok")).toBe("16384");
      await sleep(1000);
      const results = await Promise.all(writers.map((w) => w.stop()));
      const lost = (await Promise.all(writers.map((w, i) => lostAround(w, results[i], lostAt)))).flat();
      report.azLoss = {
        az,
        recoveredInMs: recoveredIn,
        maxWriteGapMs: Math.max(...results.map((r) => writeGap(r.acked, lostAt).ms)),
        lost: lost.length,
      };
      expect(lost.filter(([, ms]) => ms < -REPLICATION_WINDOW_MS || ms > 0)).toEqual([]);
      // Bring the zone back: the two nodes rejoin as replicas.
      await Promise.all(lostNodes.map((n) => startNode(n)));
      await c.waitConverged(RECOVERY_BOUND_MS + 60000);
    });

    test("7. replica loss: a replica killed and restarted resynchronises", async () => {
      const replica = (await Promise.all(c.nodes.map(async (n) => ({ n, r: await role(c, n) })))).find(
        (x) => x.r === "slave",
      )?.n;
      if (!replica) throw new Error("no replica");
      const writers = await shardWriters("h");
      await instanceLoss(replica);
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
      const crashedAt = Date.now();
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
      // The unit's ExecStop saw the process gone and had the replica take over at once (CLUSTER FAILOVER
      // FORCE): writes stopped for under a second, not a node timeout.
      expect((await host.sh("cat /var/log/redis-stack.log")).stdout).toMatch(
        /crash: Redis exited \(killed KILL\) as a master; [0-9.]+:[0-9]+ \((offset [0-9]+|the only replica)\) takes over with CLUSTER FAILOVER FORCE/,
      );
      // The longest stop between two acknowledged writes from just before the kill on (the kill itself lands a
      // round trip after crashedAt, so "the first write after crashedAt" may still be the old master's).
      const gap = longestSilence(res.acked.filter(([, t]) => t >= crashedAt - 1000));
      report.processCrash = { promotedInMs: promotedIn, writeGapMs: gap, restartSec, healedInMs: healedIn };
      expect(gap).toBeLessThan(1000);
      await expectNoneLost(w, res);
    });

    // The app side, on the same lab once the faults above are over.
    clientScenarios(() => c);
  });
}
