/**
 * Backups and restore on the real hosts: `node.sh backup` saves each shard from an in-sync replica with
 * `redis-cli --rdb`, checks it, and uploads it with awscli to the lab endpoint's S3, which enforces the node
 * role's policy, the bucket policy and the bucket's KMS key. A new stack created with `restoreFrom` loads
 * those files before its Redis starts; outside clients (ioredis) then judge what it holds.
 *
 * Scenarios, not a suite: each topology's suite runs them on the lab it already booted (backupScenarios),
 * and ends with the restore drill (restoreScenarios), which lets that lab go and boots the restored stack.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createHash } from "crypto";
import { spawnSync } from "child_process";
import {
  ClusterLab,
  createClusterLab,
  infoField,
  keySet,
  LAB_BACKUP,
  missingWrites,
  parseClusterNodes,
  startWriter,
} from "../../lab/clusterLab";
import { NODE_SCRIPT, UNITS } from "../../components/ec2/node/userData";
import { backupBucketPolicy } from "../../components/ec2/backups";
import type { Settings } from "../../components/config/settings";

const FILL = 20000;

interface Manifest {
  format: number;
  id: string;
  topology: string;
  shards: Array<{
    index: number;
    slots: string;
    file: string;
    size: number;
    sha256: string;
    rdbVersion: number;
    redisVersion: string;
    source: { address: string; role: string };
  }>;
}

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** INFO stats' sync_full of every node: the full syncs each one served (redis-cli --rdb is one). */
async function fullSyncs(c: ClusterLab): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of c.nodes) {
    const r = await c.cli(n, ["info", "stats"]);
    out.set(`${n.ip}:${n.port}`, Number(infoField(r.stdout, "sync_full")));
  }
  return out;
}

/** The backup's objects copied out of the lab (its endpoint goes with it), by key. */
async function copyBackup(c: ClusterLab, manifestKey: string, into: string): Promise<Map<string, string>> {
  const view = await c.aws.bucket(LAB_BACKUP.bucket);
  const dir = manifestKey.slice(0, manifestKey.lastIndexOf("/") + 1);
  const copied = new Map<string, string>();
  for (const [key, o] of Object.entries(view.objects)) {
    if (!key.startsWith(dir)) continue;
    const file = path.join(into, key.replace(/\//g, "_"));
    fs.copyFileSync(o.path, file);
    copied.set(key, file);
  }
  return copied;
}

/** What the backup scenarios took, for the restore drill after them. */
export interface TakenBackup {
  /** The stack the backup came from (the restored one differs only where a restore must not care). */
  settings: Settings;
  /** The manifest's slot ranges, one entry per shard by lowest slot ("-" for the Sentinel topology). */
  expectShards: string[];
  manifestKey: string;
  manifest?: Manifest;
  /** The writes acknowledged before the backup started (key tag "bk"). */
  ackedBefore: number[];
  /** The backup's objects copied out of the lab, by key (the lab's endpoint goes with the lab). */
  copied: Map<string, string>;
  work: string;
}

/**
 * The backup scenarios on a running lab of `settings`: a backup now, its status, a refused upload, the
 * timer, and an operator's FLUSHALL (the lab is empty after them). A cluster is resharded first, so the
 * backup carries a layout that is not the even split.
 */
export function backupScenarios(lab: () => ClusterLab, settings: Settings, expectShards: string[]): TakenBackup {
  const taken: TakenBackup = {
    settings,
    expectShards,
    manifestKey: "",
    ackedBefore: [],
    copied: new Map(),
    work: fs.mkdtempSync(path.join(os.tmpdir(), "backup-test-")),
  };
  describe("backups", () => {
    let c: ClusterLab | undefined;
    let manifestKey = "";
    let manifest: Manifest | undefined;
    const work = taken.work;

    beforeAll(async () => {
      c = lab();
      await c.waitConverged(120_000);
    }, 180_000);

    test("node.sh backup now: every shard from an in-sync replica (its fork, not the master's), checked, uploaded SSE-KMS, manifest last", async () => {
      if (!c) throw new Error("no lab");
      expect(await keySet(c, "load", "fill", FILL)).toEqual([]);
      if (settings.ec2?.topology !== "sentinel") await moveLowestSlots(c, 100);
      const writer = await startWriter(c, "bk");
      await new Promise((r) => setTimeout(r, 1500));
      const syncsBefore = await fullSyncs(c);
      const started = Date.now();
      const r = await c.hosts[0].sh(`${NODE_SCRIPT} backup now`);
      const result = await writer.stop();
      if (r.code !== 0) console.log(r.stdout, r.stderr, await c.diagnose(0));
      expect(r.code).toBe(0);
      taken.ackedBefore = result.acked.filter(([, t]) => t < started).map(([seq]) => seq);
      expect(taken.ackedBefore.length).toBeGreaterThan(100);
      const uri = r.stdout.trim().split("\n").pop() ?? "";
      expect(uri).toMatch(
        new RegExp(`^s3://${LAB_BACKUP.bucket}/${LAB_BACKUP.prefix}/backups/\\d{8}T\\d{6}Z/manifest\\.json$`),
      );
      manifestKey = uri.slice(`s3://${LAB_BACKUP.bucket}/`.length);
      const view = await c.aws.bucket(LAB_BACKUP.bucket);
      const stored = view.objects[manifestKey];
      expect(stored).toBeDefined();
      manifest = JSON.parse(fs.readFileSync(stored.path, "utf8")) as Manifest;
      expect(manifest.format).toBe(1);
      expect(manifest.shards.map((s) => s.slots)).toEqual(expectShards);
      const syncsAfter = await fullSyncs(c);
      const replicas = new Set(await replicaAddresses(c));
      const dir = manifestKey.slice(0, manifestKey.lastIndexOf("/") + 1);
      for (const s of manifest.shards) {
        const o = view.objects[dir + s.file];
        expect(o).toBeDefined();
        // What the manifest says is what S3 holds, encrypted with the stack's key.
        expect(o.kmsKeyArn).toBe(LAB_BACKUP.keyArn);
        expect(o.size).toBe(s.size);
        expect(sha256(o.path)).toBe(s.sha256);
        expect(s.rdbVersion).toBe(10);
        expect(s.redisVersion).toMatch(/^7\.0\./);
        // Saved by a replica: it served one more full sync (the backup's), its master none.
        expect(s.source.role).toBe("replica");
        expect(replicas.has(s.source.address)).toBe(true);
        expect((syncsAfter.get(s.source.address) ?? 0) - (syncsBefore.get(s.source.address) ?? 0)).toBe(1);
        // Portable: this machine's stock redis-check-rdb reads it.
        const check = spawnSync("redis-check-rdb", [o.path], { encoding: "utf8" });
        expect(check.status).toBe(0);
      }
      for (const [addr, n] of syncsAfter) if (!replicas.has(addr)) expect(n).toBe(syncsBefore.get(addr));
      // The manifest was written last: it is the newest object of the backup.
      const times = manifest.shards.map((s) => view.objects[dir + s.file].lastModified);
      expect(stored.lastModified).toBeGreaterThanOrEqual(Math.max(...times));
      // Every request the backup made was allowed, and went where the role may go.
      // (The SSM agent's download from AWS's own bucket, which the lab does not have, is not the backup's.)
      const ours = `arn:aws:s3:::${LAB_BACKUP.bucket}`;
      const s3 = (await c.aws.requests()).filter((e) => e.service === "s3" && e.resources[0]?.startsWith(ours));
      expect(s3.length).toBeGreaterThan(0);
      expect(s3.filter((e) => e.decision !== "allow")).toEqual([]);
      taken.copied = await copyBackup(c, manifestKey, work);
      Object.assign(taken, { manifestKey, manifest });
    }, 600_000);

    test("the stack's backup status says ok and names the backup; BackupCompleted landed for every shard", async () => {
      if (!c || !manifest) throw new Error("no backup");
      const params = await c.aws.parameters();
      const status = params.find((p) => p.name === `${c?.ssm.statusPrefix}/backup`);
      expect(status).toBeDefined();
      expect(JSON.parse(status?.value ?? "{}")).toMatchObject({ state: "ok", id: manifest.id });
      const metrics = (await c.aws.metrics()).filter((m) => m.metricName === "BackupCompleted");
      const shards = new Set(metrics.map((m) => m.dimensions.find((d) => d.name === "Shard")?.value));
      expect([...shards].sort()).toEqual(manifest.shards.map((s) => String(s.index)).sort());
    });

    test("an upload S3 refuses fails the backup: the status names the shard, the reason and the URI; no manifest is written", async () => {
      if (!c) throw new Error("no lab");
      const lab = c;
      const bucketArn = `arn:aws:s3:::${LAB_BACKUP.bucket}`;
      const policy = backupBucketPolicy(bucketArn);
      // The bucket's owner refuses new objects for a while (as a mistaken policy would).
      await lab.aws.putBucket(LAB_BACKUP.bucket, {
        policy: {
          ...policy,
          Statement: [
            ...policy.Statement,
            {
              Sid: "DenyWrites",
              Effect: "Deny",
              Principal: "*",
              Action: ["s3:PutObject"],
              Resource: [`${bucketArn}/*`],
            },
          ],
        },
        kmsKeyArn: LAB_BACKUP.keyArn,
        versioning: true,
      });
      try {
        const before = Object.keys((await lab.aws.bucket(LAB_BACKUP.bucket)).objects);
        const node = lab.nodes[0].node.name;
        const healthBefore = await lab.status(node);
        const r = await lab.hosts[0].sh(`${NODE_SCRIPT} backup now`);
        expect(r.code).not.toBe(0);
        // The failure is the backup's, not the node's: its own status (what pulumi up's health wait reads)
        // is as it was, or the next deploy would refuse a healthy cluster.
        expect(await lab.status(node)).toEqual(healthBefore);
        const status = JSON.parse(
          (await lab.aws.parameters()).find((p) => p.name === `${lab.ssm.statusPrefix}/backup`)?.value ?? "{}",
        ) as { state?: string; id?: string; detail?: string };
        expect(status.state).toBe("failed");
        expect(status.detail).toMatch(/shard \d: upload to s3:\/\/\S+\/shard-\d\.rdb failed \(see \S+\)/);
        expect(r.stdout + r.stderr).toContain(`backup ${status.id} failed`);
        const after = Object.keys((await lab.aws.bucket(LAB_BACKUP.bucket)).objects);
        expect(after.filter((k) => !before.includes(k))).toEqual([]);
        // Nothing of it stays on the taking node's volume.
        expect((await lab.hosts[0].sh("ls -A /var/lib/redis/backup 2>/dev/null | wc -l")).stdout.trim()).toBe("0");
      } finally {
        await lab.aws.putBucket(LAB_BACKUP.bucket, { policy, kmsKeyArn: LAB_BACKUP.keyArn, versioning: true });
      }
    }, 300_000);

    test("the timer: it fires on every node, and exactly one (the first planned node that answers) takes the backup", async () => {
      const lab = c;
      if (!lab) throw new Error("no lab");
      const manifests = async () =>
        Object.keys((await lab.aws.bucket(LAB_BACKUP.bucket)).objects).filter((k) =>
          /\/\d{8}T\d{6}Z\/manifest\.json$/.test(k),
        );
      const before = await manifests();
      const dropIn = "/etc/systemd/system/redis-node-backup.timer.d";
      const countLines = async (pattern: string) =>
        Promise.all(
          lab.hosts.map(async (h) =>
            Number((await h.sh(`grep -c '${pattern}' /var/log/redis-stack.log || true`)).stdout.trim()),
          ),
        );
      const skippedBefore = await countLines("takes the scheduled backup, not this node");
      // The shipped timer and unit, brought forward: 5 s after the timer restarts instead of its calendar
      // (every backupIntervalHours, on the hour in UTC).
      for (const h of lab.hosts) {
        const r = await h.sh(
          `mkdir -p ${dropIn} && printf '[Timer]\\nOnCalendar=\\nOnActiveSec=\\nOnUnitActiveSec=\\nOnActiveSec=5s\\n' >${dropIn}/lab.conf && ` +
            "systemctl daemon-reload && systemctl restart redis-node-backup.timer",
        );
        expect(r.code).toBe(0);
      }
      let added: string[] = [];
      for (let t = 0; t < 120 && added.length === 0; t++) {
        await new Promise((r) => setTimeout(r, 2000));
        added = (await manifests()).filter((k) => !before.includes(k));
      }
      // Let every node's run end (the taking node still sends its metrics and its status after the
      // manifest), then put the shipped schedule back.
      const running = async () =>
        (
          await Promise.all(
            lab.hosts.map(async (h) => (await h.sh(`systemctl is-active ${UNITS.backup} || true`)).stdout.trim()),
          )
        ).filter((s) => s === "active" || s === "activating" || s === "deactivating");
      for (let t = 0; t < 60 && (await running()).length > 0; t++) await new Promise((r) => setTimeout(r, 2000));
      expect(await running()).toEqual([]);
      for (const h of lab.hosts)
        await h.sh(`rm -rf ${dropIn} && systemctl daemon-reload && systemctl restart redis-node-backup.timer`);
      expect(added).toHaveLength(1);
      const view = await lab.aws.bucket(LAB_BACKUP.bucket);
      const scheduled = JSON.parse(fs.readFileSync(view.objects[added[0]].path, "utf8")) as Manifest;
      expect(scheduled.shards.map((s) => s.slots)).toEqual(expectShards);
      expect(scheduled.shards.every((s) => s.source.role === "replica")).toBe(true);
      // Every other node's timer fired too, and stood aside.
      const skipped = (await countLines("takes the scheduled backup, not this node")).map(
        (n, i) => n - skippedBefore[i],
      );
      expect(skipped.filter((n) => n === 1)).toHaveLength(lab.hosts.length - 1);
      expect(skipped.filter((n) => n === 0)).toHaveLength(1);
      const status = (await lab.aws.parameters()).find((p) => p.name === `${lab.ssm.statusPrefix}/backup`);
      expect(JSON.parse(status?.value ?? "{}")).toMatchObject({ state: "ok", id: scheduled.id });
    }, 400_000);

    test("an operator's FLUSHALL empties the stack: the backup is what is left", async () => {
      if (!c) throw new Error("no lab");
      // Every master now (earlier faults may have swapped a shard's roles; a replica refuses it).
      for (const n of c.nodes)
        if (/^master/.test((await c.cli(n, ["role"])).stdout))
          expect((await c.cli(n, ["flushall"])).stdout).toBe("OK\n");
      const gone = await keySet(c, "check", "fill", 200);
      expect(gone.length).toBe(200);
    }, 120_000);
  });
  return taken;
}

/**
 * The restore drill from `taken`: `release` lets the running lab go first (a new stack's hosts take its
 * place), then a new stack created with restoreFrom must hold the backup; damaged or unfit backups are
 * refused on its nodes.
 */
export function restoreScenarios(taken: TakenBackup, release: () => Promise<void>): void {
  describe("restore", () => {
    const { settings, expectShards, work } = taken;
    let restored: ClusterLab | undefined;
    afterAll(async () => {
      await restored?.destroy();
      fs.rmSync(work, { recursive: true, force: true });
    });

    // The new stack differs from the old one where a restore must not care: TLS off (the only lab that runs
    // without it), and its nodes boot in reverse, the first planned node 1.5 s after the others.
    test("restore drill: a new stack (TLS off, booting in any order) created with restoreFrom holds every key acknowledged before the backup started", async () => {
      const { manifest, manifestKey, copied, ackedBefore } = taken;
      if (!manifest) throw new Error("no backup");
      await release();
      restored = await createClusterLab(
        {
          ...settings,
          tls: false,
          ec2: settings.ec2 && { ...settings.ec2, restoreFrom: `s3://${LAB_BACKUP.bucket}/${manifestKey}` },
        },
        { log: (l) => console.log(l) },
      );
      for (const [key, file] of copied) await restored.aws.putObject(LAB_BACKUP.bucket, key, file);
      const started = Date.now();
      const count = restored.nodes.length;
      const boots = await restored.boot(
        restored.nodes.map((_, i) => count - 1 - i),
        1500,
      );
      for (const [i, b] of boots.entries()) if (b.status !== "done") console.log(await restored.diagnose(i));
      expect(boots.map((b) => b.status).every((s) => s === "done")).toBe(true);
      await restored.waitConverged(180_000);
      console.log(`restore drill: ${((Date.now() - started) / 1000).toFixed(1)} s from first boot to converged`);
      expect(await keySet(restored, "check", "fill", FILL)).toEqual([]);
      expect(await missingWrites(restored, "bk", ackedBefore)).toEqual([]);
      if (settings.ec2?.topology !== "sentinel") {
        const lines = parseClusterNodes((await restored.cli(restored.nodes[0], ["cluster", "nodes"])).stdout);
        expect(
          lines
            .filter((l) => l.flags.includes("master"))
            .map((l) => l.slots.join(","))
            .sort(),
        ).toEqual([...expectShards].sort());
        const last = restored.nodes[restored.nodes.length - 1];
        expect((await restored.cli(last, ["--cluster", "check", `${last.ip}:${last.port}`])).code).toBe(0);
      }
    }, 900_000);

    test("a damaged or unfit backup is refused before Redis starts, naming the key and the fix", async () => {
      const { manifest, manifestKey, copied } = taken;
      if (!restored || !manifest) throw new Error("no restored lab");
      const dir = manifestKey.slice(0, manifestKey.lastIndexOf("/") + 1);
      const put = async (key: string, content: Buffer | string) => {
        const f = path.join(work, key.replace(/\//g, "_"));
        fs.writeFileSync(f, content);
        await restored?.aws.putObject(LAB_BACKUP.bucket, key, f);
      };
      const rdbKey = dir + manifest.shards[0].file;
      const rdb = fs.readFileSync(copied.get(rdbKey) ?? "");
      // 1. One flipped byte in the RDB: the checksum from the manifest refuses it.
      const flipped = Buffer.from(rdb);
      flipped[Math.floor(flipped.length / 2)] ^= 0xff;
      await put(`${LAB_BACKUP.prefix}/backups/bad1/${manifest.shards[0].file}`, flipped);
      await put(`${LAB_BACKUP.prefix}/backups/bad1/manifest.json`, JSON.stringify(manifest));
      // 2. A backup of another shard count.
      await put(
        `${LAB_BACKUP.prefix}/backups/bad2/manifest.json`,
        JSON.stringify({ ...manifest, shards: manifest.shards.slice(0, 1) }),
      );
      // 3. An RDB newer than this Redis (version 11), with a manifest that matches it.
      const newer = Buffer.concat([Buffer.from("REDIS0011"), rdb.subarray(9)]);
      await put(`${LAB_BACKUP.prefix}/backups/bad3/${manifest.shards[0].file}`, newer);
      const m3 = {
        ...manifest,
        shards: manifest.shards.map((s, i) =>
          i === 0 ? { ...s, sha256: createHash("sha256").update(newer).digest("hex"), rdbVersion: 11 } : s,
        ),
      };
      await put(`${LAB_BACKUP.prefix}/backups/bad3/manifest.json`, JSON.stringify(m3));
      const cases: Array<[string, RegExp]> = [
        ["bad1", /does not match its manifest.*restore from another backup/],
        ["bad2", /has 1 shard\(s\) and this stack plans \d+: create it with shards=1/],
        ["bad3", /redis-check-rdb .* refuses/],
        ["none", /cannot read .*manifest\.json/],
      ];
      if (settings.ec2?.topology === "sentinel") cases.splice(1, 1);
      // A replica's host: the restored masters recorded their restore on their volume, and a node restores once.
      const host = restored.hosts[restored.nodes.findIndex((n) => n.node.role === "replica")];
      for (const [id, expected] of cases) {
        const uri = `s3://${LAB_BACKUP.bucket}/${LAB_BACKUP.prefix}/backups/${id}/manifest.json`;
        // node.sh's own restore step on a real node, into a scratch data directory, as on a new stack's
        // master: its peers serving is what makes a real node skip it, so that one check is set aside.
        const r = await host.sh(
          `. ${NODE_SCRIPT}; DATA_DIR=$(mktemp -d); RESTORE_FROM='${uri}'; NODE_ROLE=master; NODE_SHARD=0; ` +
            `someone_serves() { return 1; }; restore_prepare`,
        );
        expect(r.code).not.toBe(0);
        expect(r.stdout + r.stderr).toMatch(/restoreFrom/);
        expect(r.stdout + r.stderr).toMatch(expected);
      }
    }, 300_000);
  });
}

/**
 * A cluster that has been resharded, as a grown or shrunk one has: `count` slots, with their keys, move from
 * the master serving slot 0 to the one serving slot 16383, so no master serves the even split any more and
 * the backup (and the stack restored from it) must carry that layout.
 */
async function moveLowestSlots(c: ClusterLab, count: number): Promise<void> {
  const lines = parseClusterNodes((await c.cli(c.nodes[0], ["cluster", "nodes"])).stdout);
  const serving = (slot: string) =>
    lines.find((l) => l.flags.includes("master") && l.slots.some((r) => r.startsWith(slot)));
  const from = serving("0-");
  const to = lines.find((l) => l.flags.includes("master") && l.slots.some((r) => r.endsWith("-16383")));
  if (!from || !to) throw new Error("no masters serving slots 0 and 16383");
  const r = await c.cli(
    to.addr,
    [
      "--cluster",
      "reshard",
      to.addr,
      "--cluster-from",
      from.id,
      "--cluster-to",
      to.id,
      "--cluster-slots",
      String(count),
      "--cluster-yes",
    ],
    "admin",
    120_000,
  );
  if (r.code !== 0) throw new Error(`redis-cli --cluster reshard failed: ${r.stdout} ${r.stderr}`);
}

/** Addresses of the nodes that are replicas now, by their own ROLE. */
async function replicaAddresses(c: ClusterLab): Promise<string[]> {
  const out: string[] = [];
  for (const n of c.nodes) if (/^slave/.test((await c.cli(n, ["role"])).stdout)) out.push(`${n.ip}:${n.port}`);
  return out;
}
