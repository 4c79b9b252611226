/**
 * Day 2 on real hosts (issue: changes reach running nodes): the lab's `deploy` does what `pulumi up` does to
 * a running stack (rewrites the desired-settings parameter, boots new nodes from their user-data, waits for
 * every node's status, deletes drained nodes), and the nodes' own timer, handoff and reshard do the rest.
 * Every scenario runs with the acknowledged-write recorder, and outside clients judge the result.
 */
import * as fs from "fs";
import { stackSettings } from "../../lab/stackFiles";
import { Settings } from "../../components/config/settings";
import { MIN_MAXMEMORY_BYTES } from "../../components/config/ec2";
import { EC2_PATHS, nodeFiles } from "../../components/ec2/node/redisConf";
import { slotLayoutProblem } from "../../components/ec2/backups";
import {
  ClusterLab,
  infoField,
  keySet,
  LAB_BACKUP,
  missingWrites,
  parseClusterNodes,
  RunningWriter,
  startWriter,
  tagForSlots,
} from "../../lab/clusterLab";
import { longestSilence, WriteResult } from "../../lab/writer";

const base = stackSettings("prod");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The promise: a live setting reaches every node within a minute of `pulumi up` writing it. */
const LIVE_BOUND_MS = 60_000;
/** The promise for a planned change's write gap (a planned handover, a reshard): under a second. */
const PLANNED_GAP_MS = 1_000;
/**
 * Keys loaded before the reshards: enough to prove every key moves and stays readable under load. The
 * figures at 100,000 keys (BENCHMARKS.md) come from `npm run bench:reshard`; the suite keeps CI short.
 */
const KEYS = 20_000;

function withEc2(s: Settings, change: Partial<NonNullable<Settings["ec2"]>>): Settings {
  if (!s.ec2) throw new Error("EC2 settings needed");
  return { ...s, ec2: { ...s.ec2, ...change } };
}

/** The longest stop between two acknowledged writes of a writer that never pauses by itself. */
const maxGap = (r: WriteResult) => longestSilence(r.acked);

/**
 * The day-2 scenarios, on a running lab that starts at the prod stack's settings (the lifecycle suite's, so
 * CI boots one lab for both).
 */
export function day2Scenarios(lab: () => ClusterLab): void {
  describe("day 2: pulumi up's changes reach running nodes", () => {
    let c: ClusterLab;
    let current: Settings = base;

    const runIds = async () =>
      Promise.all(c.nodes.map(async (n) => infoField((await c.cli(n, ["info", "server"])).stdout, "run_id")));
    /** Keys evicted since each node started: a key that is missing must not have been evicted instead. */
    const evictions = async () =>
      Promise.all(
        c.nodes.map(async (n) => Number(infoField((await c.cli(n, ["info", "stats"])).stdout, "evicted_keys"))),
      );
    const configOf = async (key: string) =>
      Promise.all(c.nodes.map(async (n) => (await c.cli(n, ["config", "get", key])).stdout.trim().split("\n")[1]));
    /** One writer per current master (a hash tag in its slot range), so every shard takes writes. */
    const writersOnEveryShard = async (salt: string): Promise<RunningWriter[]> => {
      const masters = c.nodes.filter((n) => n.node.role === "master");
      return Promise.all(masters.map((m) => startWriter(c, tagForSlots(m.node.slots.start, m.node.slots.end, salt))));
    };
    const stopAndCheck = async (writers: RunningWriter[]) => {
      const results = await Promise.all(writers.map((w) => w.stop()));
      const lost = await Promise.all(
        results.map((r, k) =>
          missingWrites(
            c,
            writers[k].tag,
            r.acked.map(([seq]) => seq),
          ),
        ),
      );
      return { results, lost };
    };
    const slotCounts = async () => {
      const lines = parseClusterNodes((await c.cli(c.nodes[0], ["cluster", "nodes"])).stdout);
      return lines
        .filter((l) => l.flags.includes("master") && !l.flags.some((f) => f.startsWith("fail")))
        .map((l) => ({
          addr: l.addr,
          open: l.slots.some((s) => s.startsWith("[")),
          slots: l.slots
            .filter((s) => !s.startsWith("["))
            .reduce((sum, s) => {
              const [lo, hi] = s.split("-").map(Number);
              return sum + (hi === undefined ? 1 : hi - lo + 1);
            }, 0),
        }));
    };

    beforeAll(async () => {
      c = lab();
      await c.waitConverged(120_000);
    }, 180_000);

    test("a live setting change (maxmemory-policy and maxmemory) reaches every node within the bound, without a restart", async () => {
      const before = await runIds();
      const writers = await writersOnEveryShard("live");
      // The smallest maxmemory the stack accepts: below it a full replication backlog leaves no room, and
      // allkeys-lfu evicts keys under the later reshards (48 MiB lost 2,440 of 100,000 keys in 4 -> 3).
      const bytes = MIN_MAXMEMORY_BYTES;
      current = withEc2({ ...current, maxmemoryPolicy: "allkeys-lfu" }, { maxmemoryBytes: bytes });
      const change = await c.deploy(current);
      expect(await configOf("maxmemory-policy")).toEqual(Array(6).fill("allkeys-lfu"));
      expect(await configOf("maxmemory")).toEqual(Array(6).fill(String(bytes)));
      expect(change.convergedMs).toBeLessThan(LIVE_BOUND_MS);
      // No restart: the same process on every node, and the next boot starts with the new values.
      expect(await runIds()).toEqual(before);
      const conf = (await c.hosts[4].sh("cat /etc/redis-stack/settings.conf")).stdout;
      expect(conf).toContain(`maxmemory ${bytes}`);
      expect(conf).toContain("maxmemory-policy allkeys-lfu");
      const { results, lost } = await stopAndCheck(writers);
      expect(lost).toEqual(results.map(() => []));
      console.log(
        `live settings: maxmemory-policy and maxmemory on every node ${(change.convergedMs / 1000).toFixed(1)} s after the parameter changed; run_id unchanged`,
      );
    }, 600_000);

    test("an appAclGrants change reaches every node live: KEYS refused to the app user before, allowed after, nothing restarted", async () => {
      const asApp = async (args: string[]) =>
        Promise.all(c.nodes.map(async (n) => (await c.cli(n, args, "app")).stdout.trim()));
      expect(await asApp(["keys", "nosuch:*"])).toEqual(Array(6).fill(expect.stringMatching(/NOPERM/)));
      const before = await runIds();
      current = withEc2(current, { appAclGrants: ["+keys"] });
      const change = await c.deploy(current);
      expect(await asApp(["keys", "nosuch:*"])).toEqual(Array(6).fill(""));
      // Only what was granted: the rest of the default stands.
      expect(await asApp(["flushall"])).toEqual(Array(6).fill(expect.stringMatching(/NOPERM/)));
      expect(await asApp(["config", "get", "maxmemory"])).toEqual(Array(6).fill(expect.stringMatching(/NOPERM/)));
      expect(change.convergedMs).toBeLessThan(LIVE_BOUND_MS);
      expect(await runIds()).toEqual(before);
      // Kept for the next start: the ACL file's app line carries the grant (the roll below boots from it).
      for (const h of c.hosts) {
        const line = (await h.sh(`grep '^user app ' ${nodeFiles(EC2_PATHS).acl}`)).stdout;
        expect(line).toMatch(/ -@admin -@dangerous .* \+keys\n$/);
        expect(line).not.toContain("nopass");
        expect((await h.sh("grep -c 'live: app ACL ->' /var/log/redis-stack.log")).stdout.trim()).toBe("1");
      }
      console.log(
        `appAclGrants +keys: live on every node ${(change.convergedMs / 1000).toFixed(1)} s after the parameter changed`,
      );
    }, 300_000);

    test("settings that did not come through preview are refused on every node, which reports why; the rest applies", async () => {
      const param = async (name: string) => (await c.aws.parameters()).find((p) => p.name === name)?.value ?? "";
      const good = await param(c.ssm.settings);
      // What a principal with ssm:PutParameter on the settings (not pulumi up) could write: a new version,
      // a directive that moves the data directory, the debug command, and the app user granted everything.
      const tampered = good
        .replace(/^version \S+/, "version tampered0001")
        .replace(/^app-acl .*$/m, (line) => `${line} +@all +config|set`)
        .concat("\nset dir /tmp\nset enable-debug-command yes\n");
      const dirs = await configOf("dir");
      await c.aws.putParameter(c.ssm.settings, "String", tampered);
      const details = async () =>
        Promise.all(
          c.nodes.map(
            async (n) =>
              (JSON.parse((await param(c.ssm.status(n.node.name))) || "{}") as { detail?: string }).detail ?? "",
          ),
        );
      let seen = await details();
      for (let t = 0; t < 60 && !seen.every((d) => /tampered0001 applied in part/.test(d)); t++) {
        await sleep(2000);
        seen = await details();
      }
      expect(seen).toHaveLength(6);
      for (const d of seen) {
        expect(d).toMatch(/settings tampered0001 applied in part; refused: /);
        expect(d).toContain("set dir: not a directive the stack changes live");
        expect(d).toContain("set enable-debug-command: not a directive");
        expect(d).toContain("app-acl +@all: grants admin or dangerous commands");
        expect(d).toContain("app-acl +config|set: ");
      }
      expect(await configOf("dir")).toEqual(dirs);
      for (const h of c.hosts) {
        expect(
          (
            await h.sh(`grep -cE '^(dir|enable-debug-command) ' ${nodeFiles(EC2_PATHS).settings} || true`)
          ).stdout.trim(),
        ).toBe("0");
        // Logged once for this version (the log's tee may trail the status a little on a loaded machine).
        let logged = "";
        for (let t = 0; t < 15 && logged !== "1"; t++) {
          if (t > 0) await sleep(1000);
          logged = (await h.sh("grep -c 'refused: set dir' /var/log/redis-stack.log || true")).stdout.trim();
        }
        expect(logged).toBe("1");
      }
      // The app user keeps what the stack gave it (appAclGrants +keys): no more.
      for (const n of c.nodes) {
        expect((await c.cli(n, ["keys", "nosuch:*"], "app")).stdout.trim()).toBe("");
        expect((await c.cli(n, ["config", "set", "maxmemory", "1"], "app")).stdout).toMatch(/NOPERM/);
        expect((await c.cli(n, ["flushall"], "app")).stdout).toMatch(/NOPERM/);
      }
      // pulumi up's own settings again: every node applies them and reports no refusal.
      await c.deploy(current);
      for (const d of await details()) expect(d).not.toMatch(/refused/);
    }, 300_000);

    test("a grown data volume grows its filesystem online", async () => {
      const size = async (i: number) =>
        Number((await c.hosts[i].sh("df --output=size -B1M /var/lib/redis | tail -n 1")).stdout.trim());
      const before = await Promise.all(c.hosts.map((_, i) => size(i)));
      current = withEc2(current, { dataVolumeGb: (current.ec2?.dataVolumeGb ?? 0) * 2 });
      await c.deploy(current);
      // Each node's timer notices the bigger device and runs resize2fs on the mounted filesystem. ext4's
      // online resize needs CAP_SYS_RESOURCE, which root has on an instance; a machine whose own bounding
      // set lacks it cannot give it to its hosts, and then only the detection and the attempt are checked.
      const canResize =
        (BigInt(`0x${/^CapBnd:\s*(\S+)/m.exec(fs.readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0"}`) >> 24n) & 1n;
      const logged = async (i: number) =>
        (
          await c.hosts[i].sh(
            "grep -E 'growing its filesystem online|resize2fs .* failed|filesystem on .* grown' /var/log/redis-stack.log",
          )
        ).stdout;
      let after: number[] = [];
      for (let t = 0; t < 60; t++) {
        after = await Promise.all(c.hosts.map((_, i) => size(i)));
        const attempted = await Promise.all(c.hosts.map((_, i) => logged(i)));
        if (canResize ? after.every((a, i) => a > before[i] * 1.8) : attempted.every((l) => /failed|grown/.test(l)))
          break;
        await sleep(2000);
      }
      for (const [i] of c.hosts.entries()) expect(await logged(i)).toMatch(/growing its filesystem online/);
      if (canResize) after.forEach((a, i) => expect(a).toBeGreaterThan(before[i] * 1.8));
      else {
        expect(await logged(0)).toMatch(/resize2fs \S+ failed \(resize2fs: Permission denied to resize filesystem\)/);
        console.log(
          "data volume growth: detected and attempted on every node; this machine cannot grant CAP_SYS_RESOURCE, so ext4 could not grow here",
        );
      }
    }, 300_000);

    test("nodeGeneration rolls every node once, replicas first, masters after handing over: 0 lost", async () => {
      const before = await runIds();
      const writers = await writersOnEveryShard("roll");
      const r = await c.deploy(current, { generation: 1, timeoutMs: 900_000 });
      const after = await runIds();
      after.forEach((id, k) => expect(id).not.toBe(before[k]));
      // The order, from each node's own log: every replica finished before any master started.
      const doneAt = await Promise.all(
        c.hosts.map(async (h) => {
          const out = (await h.sh("grep 'rolling restart to generation 1 done' /var/log/redis-stack.log | tail -n 1"))
            .stdout;
          return out.split(" ")[0];
        }),
      );
      const startedAt = await Promise.all(
        c.hosts.map(async (h) => {
          const out = (
            await h.sh("grep 'rolling restart to generation 1: upgrading' /var/log/redis-stack.log | tail -n 1")
          ).stdout;
          return out.split(" ")[0];
        }),
      );
      const replicas = c.nodes.map((n, k) => (n.node.role === "replica" ? k : -1)).filter((k) => k >= 0);
      const masters = c.nodes.map((n, k) => (n.node.role === "master" ? k : -1)).filter((k) => k >= 0);
      for (const m of masters) for (const rep of replicas) expect(startedAt[m] >= doneAt[rep]).toBe(true);
      // Every node that was a master when its turn came handed its slots over before Redis stopped.
      const handoffs = await Promise.all(
        c.hosts.map(async (h) =>
          (await h.sh("grep -c 'handoff: .* took over' /var/log/redis-stack.log || true")).stdout.trim(),
        ),
      );
      expect(handoffs.reduce((sum, n) => sum + Number(n), 0)).toBeGreaterThanOrEqual(3);
      await c.waitConverged(120_000);
      // Restarted from their ACL files, the nodes keep the app user's grant (appAclGrants +keys above).
      for (const n of c.nodes) expect((await c.cli(n, ["keys", "nosuch:*"], "app")).stdout.trim()).toBe("");
      const { results, lost } = await stopAndCheck(writers);
      expect(lost).toEqual(results.map(() => []));
      // Masters restart after a handoff: no shard waits for a failover timeout.
      for (const r of results) expect(maxGap(r)).toBeLessThan(PLANNED_GAP_MS);
      console.log(
        `rolling restart of 6 nodes: ${(r.convergedMs / 1000).toFixed(1)} s; max write gap per shard ${results.map(maxGap).join(", ")} ms; 0 lost`,
      );
    }, 1_200_000);

    test(`3 -> 4 shards with ${KEYS} keys under write load: the new shard joins empty and gets its share online, 0 lost`, async () => {
      expect(await keySet(c, "load", "grow", KEYS)).toEqual([]);
      const writers = await writersOnEveryShard("grow");
      current = withEc2(current, { shards: 4 });
      const started = Date.now();
      const r = await c.deploy(current, { timeoutMs: 900_000 });
      expect(r.added.sort()).toEqual(["shard3-0", "shard3-1"]);
      let counts = await slotCounts();
      // Done is every master at its share with no slot in flight: "all above 4000" also holds between the
      // reshard's last two batches (the new master passes 4000 before its last ~100 slots arrive).
      const balanced = () => counts.length === 4 && counts.every((x) => !x.open && Math.abs(x.slots - 4096) <= 1);
      for (let t = 0; t < 300 && !balanced(); t++) {
        await sleep(2000);
        counts = await slotCounts();
      }
      const rebalancedMs = Date.now() - started;
      expect(counts).toHaveLength(4);
      for (const x of counts) {
        expect(x.open).toBe(false);
        expect(Math.abs(x.slots - 4096)).toBeLessThanOrEqual(1);
      }
      const { results, lost } = await stopAndCheck(writers);
      expect(lost).toEqual(results.map(() => []));
      for (const res of results) expect(maxGap(res)).toBeLessThan(PLANNED_GAP_MS);
      expect(await evictions()).toEqual(c.nodes.map(() => 0));
      expect(await keySet(c, "check", "grow", KEYS)).toEqual([]);
      // The new shard's replica is in another AZ than its master, and replicates it.
      const newMaster = c.nodes.find((n) => n.node.name === "shard3-0");
      const newReplica = c.nodes.find((n) => n.node.name === "shard3-1");
      if (!newMaster || !newReplica) throw new Error("new shard's nodes missing");
      expect(newReplica.node.azIndex).not.toBe(newMaster.node.azIndex);
      expect(infoField((await c.cli(newReplica, ["info", "replication"])).stdout, "master_host")).toBe(newMaster.ip);
      console.log(
        `3 -> 4 shards with ${KEYS} keys: new nodes in ${(r.convergedMs / 1000).toFixed(1)} s, slots even after ${(rebalancedMs / 1000).toFixed(1)} s; max write gap per shard ${results.map(maxGap).join(", ")} ms; 0 lost`,
      );
    }, 1_500_000);

    test("4 -> 3 shards drains the leaving shard before its nodes are deleted: 0 lost, every key readable", async () => {
      const writers = await writersOnEveryShard("shrink");
      current = withEc2(current, { shards: 3 });
      const r = await c.deploy(current, { timeoutMs: 900_000 });
      expect(r.removed.sort()).toEqual(["shard3-0", "shard3-1"]);
      // Before the drain began, the coordinator took a last backup of all four shards, one a stack of four
      // shards restores whatever their slots (the layout after 3 -> 4 is not the even split).
      const logs = await Promise.all(
        c.hosts.map(
          async (h) =>
            (
              await h.sh(
                "grep -E 'the last backup before draining|resharding: draining' /var/log/redis-stack.log || true",
              )
            ).stdout,
        ),
      );
      const coordinator = logs.find((l) => /the last backup before draining \[.*\] is s3:/.test(l)) ?? "";
      const uri = /the last backup before draining \[[^\]]*\] is (s3:\S+)/.exec(coordinator)?.[1] ?? "";
      const stored = (await c.aws.bucket(LAB_BACKUP.bucket)).objects[uri.slice(`s3://${LAB_BACKUP.bucket}/`.length)];
      expect(stored).toBeDefined();
      const last = JSON.parse(fs.readFileSync(stored.path, "utf8")) as {
        finished: string;
        shards: Array<{ index: number; slots: string }>;
      };
      expect(last.shards).toHaveLength(4);
      expect(slotLayoutProblem(last.shards)).toBeUndefined();
      // (The grow's rebalance logged "draining [] and filling [...]" earlier: the shrink's names a master.)
      const drainStarted = /^(\S+) .*resharding: draining \[[0-9a-f]/m.exec(coordinator)?.[1] ?? "";
      expect(drainStarted).not.toBe("");
      expect(last.finished <= drainStarted).toBe(true);
      const { results, lost } = await stopAndCheck(writers);
      expect(lost).toEqual(results.map(() => []));
      for (const res of results) expect(maxGap(res)).toBeLessThan(PLANNED_GAP_MS);
      expect(await evictions()).toEqual(c.nodes.map(() => 0));
      expect(await keySet(c, "check", "grow", KEYS)).toEqual([]);
      const counts = await slotCounts();
      expect(counts).toHaveLength(3);
      expect(counts.reduce((sum, x) => sum + x.slots, 0)).toBe(16384);
      // The departed nodes are forgotten by every remaining node (their timers), not left as failed entries.
      let known: number[] = [];
      for (let t = 0; t < 60; t++) {
        known = await Promise.all(
          c.nodes.map(async (n) => parseClusterNodes((await c.cli(n, ["cluster", "nodes"])).stdout).length),
        );
        if (known.every((k) => k === 6)) break;
        await sleep(2000);
      }
      expect(known).toEqual(Array(6).fill(6));
      console.log(
        `4 -> 3 shards: drained and deleted in ${(r.convergedMs / 1000).toFixed(1)} s; max write gap per shard ${results.map(maxGap).join(", ")} ms; 0 lost`,
      );
    }, 1_200_000);

    test("replicasPerShard 1 -> 2 on the running cluster is refused, naming the key; nothing changes", async () => {
      const before = (await c.aws.parameters()).find((p) => p.name === c.ssm.settings)?.value;
      await expect(c.deploy(withEc2(current, { replicasPerShard: 2 }))).rejects.toThrow(
        /redis-stack:replicasPerShard = "2": the deployed cluster runs 1 replica\(s\) per shard[\s\S]*fix: pulumi config set replicasPerShard 1/,
      );
      expect((await c.aws.parameters()).find((p) => p.name === c.ssm.settings)?.value).toBe(before);
    });
  });
}
