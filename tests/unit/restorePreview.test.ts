/**
 * restoreFrom is checked at preview: the stack reads the manifest it names (aws.s3.getObject, with the
 * deployer's credentials) and refuses, naming the key and the fix, a backup its planned masters would refuse
 * at boot (lib-backup.sh manifest_check): missing, not JSON, another topology or shard count, slots not
 * each in exactly one shard,
 * an RDB newer than the nodes' Redis. The same manifests go through the node's own check, so the two agree.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DEBIAN12_REDIS_RDB_VERSION, restoreManifestProblems } from "../../components/ec2/backups";
import { planSlots } from "../../components/ec2/topology";
import { PROD_DEPLOYMENT, runStack, S3ObjectFixture } from "./support/stackHarness";

const BUCKET = "old-backups";
const KEY = "redis-stack/prod/backups/20261205T060000Z/manifest.json";
const URI = `s3://${BUCKET}/${KEY}`;
const SHA = "a".repeat(64);

/** A manifest as `node.sh backup` writes it, for `shards` shards of the planned layout. */
function manifest(shards: number, change: (m: Record<string, unknown>) => void = () => undefined): string {
  const m: Record<string, unknown> = {
    format: 1,
    id: "20261205T060000Z",
    topology: "cluster",
    stack: "redis-stack/prod",
    shards: planSlots(shards).map((s, i) => ({
      index: i,
      slots: `${s.start}-${s.end}`,
      file: `shard-${i}.rdb`,
      size: 1234,
      sha256: SHA,
      rdbVersion: 10,
      redisVersion: "7.0.15",
    })),
  };
  change(m);
  return JSON.stringify(m);
}
const shardsOf = (m: Record<string, unknown>) => m.shards as Array<Record<string, unknown>>;
const json = (body: string): Record<string, S3ObjectFixture> => ({
  [`${BUCKET}/${KEY}`]: { body, contentType: "application/json" },
});
const CLUSTER = { topology: "cluster" as const, shards: 3, maxRdbVersion: DEBIAN12_REDIS_RDB_VERSION };

/** Whether each planned master's boot-time check (the shipped lib-backup.sh) accepts the manifest. */
function nodeAccepts(text: string, topology: string, shards: number): { ok: boolean; reasons: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "manifest-"));
  const file = path.join(dir, "manifest.json");
  fs.writeFileSync(file, text);
  const lib = path.join(__dirname, "../../components/ec2/node/lib-backup.sh");
  const reasons: string[] = [];
  try {
    for (let shard = 0; shard < shards; shard++) {
      const r = spawnSync(
        "bash",
        [
          "-c",
          'source <(sed -n "/^manifest_check() {/,/^}/p" "$0"); manifest_check "$@"',
          lib,
          file,
          String(shard),
          String(shards),
          topology,
        ],
        { encoding: "utf8" },
      );
      if (r.status !== 0) reasons.push(r.stderr.trim());
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { ok: reasons.length === 0, reasons };
}

describe("the manifest check (pure) and the node's agree", () => {
  const cases: Array<[string, string, RegExp | undefined]> = [
    ["the stack's own backup", manifest(3), undefined],
    ["not JSON", "{", /the manifest is not JSON/],
    ["another format", manifest(3, (m) => (m.format = 2)), /manifest format 2 is not one/],
    [
      "a Sentinel stack's backup",
      manifest(3, (m) => (m.topology = "sentinel")),
      /of a sentinel stack and this one is a cluster/,
    ],
    ["4 shards", manifest(4), /the backup has 4 shard\(s\) and this stack plans 3/],
    [
      "a resharded cluster's layout (not the even split, a master with several ranges)",
      manifest(3, (m) => {
        shardsOf(m)[0].slots = "100-5460";
        shardsOf(m)[1].slots = "5461-10922,16000-16383";
        shardsOf(m)[2].slots = "0-99,10923-15999";
      }),
      undefined,
    ],
    [
      "slots in no shard",
      manifest(3, (m) => (shardsOf(m)[1].slots = "5461-10000")),
      /922 slot\(s\) are in no shard \(the first: 10001\)/,
    ],
    [
      "a slot in two shards",
      manifest(3, (m) => (shardsOf(m)[1].slots = "5460-10922")),
      /slot 5460 is in shard 0 and in shard 1/,
    ],
    [
      "slots that are not ranges",
      manifest(3, (m) => (shardsOf(m)[2].slots = "10923-16384")),
      /shard 2's slots "10923-16384" are not ranges/,
    ],
    [
      "a cluster shard without slots",
      manifest(3, (m) => delete shardsOf(m)[2].slots),
      /shard 2's slots null are not ranges/,
    ],
    ["a shard missing (two entries for shard 0)", manifest(3, (m) => (shardsOf(m)[2].index = 0)), /has no shard 2/],
  ];
  test.each(cases)("%s", (_name, text, refused) => {
    const problems = restoreManifestProblems(URI, text, CLUSTER);
    const node = nodeAccepts(text, "cluster", 3);
    expect(node.ok).toBe(refused === undefined);
    expect(problems.length === 0).toBe(refused === undefined);
    if (refused) {
      expect(problems.map((p) => p.problem).join("\n")).toMatch(refused);
      expect(node.reasons.join("\n")).toMatch(refused);
      expect(problems.every((p) => p.key === "restoreFrom" && p.value === URI && p.fix.length > 0)).toBe(true);
    }
  });

  test("a shard count that differs names the fix: create the stack with the backup's shards", () => {
    const [p] = restoreManifestProblems(URI, manifest(4), CLUSTER);
    expect(p.fix).toMatch(/pulumi config set shards 4/);
  });

  test("an RDB newer than Redis 7.0 reads is refused on the default AMI; a pinned AMI's nodes decide at boot", () => {
    const newer = manifest(3, (m) => (shardsOf(m)[0].rdbVersion = 11));
    expect(restoreManifestProblems(URI, newer, CLUSTER).map((p) => p.problem)).toEqual([
      "does not fit this stack: shard 0 is RDB version 11, newer than the nodes' Redis reads (10)",
    ]);
    expect(restoreManifestProblems(URI, newer, { ...CLUSTER, maxRdbVersion: undefined })).toEqual([]);
  });

  test("a Sentinel backup fits a Sentinel stack (one shard, no slots)", () => {
    const sentinel = manifest(1, (m) => {
      m.topology = "sentinel";
      delete shardsOf(m)[0].slots;
    });
    expect(restoreManifestProblems(URI, sentinel, { topology: "sentinel", shards: 1 })).toEqual([]);
    expect(nodeAccepts(sentinel, "sentinel", 1).ok).toBe(true);
  });

  test("an entry without its file's SHA-256 is refused before any node downloads it", () => {
    const bad = manifest(3, (m) => delete shardsOf(m)[1].sha256);
    expect(restoreManifestProblems(URI, bad, CLUSTER).map((p) => p.problem)).toEqual([
      "does not fit this stack: shard 1's entry names no file with its SHA-256",
    ]);
  });
});

describe("pulumi preview of a new stack with restoreFrom", () => {
  const restore = { "redis-stack:restoreFrom": URI };

  test("a backup that fits: the preview reads the manifest and goes on", async () => {
    const run = await runStack("prod", restore, [], {}, json(manifest(3)));
    expect(run.error).toBeUndefined();
    expect(run.calls).toContain("aws:s3/getObject:getObject");
  });

  test("a backup of 4 shards fails the preview, naming the key and the fix, before anything is created", async () => {
    const run = await runStack("prod", restore, [], {}, json(manifest(4)));
    expect(run.error?.message).toMatch(
      /redis-stack:restoreFrom = "s3:\/\/old-backups\/.*manifest\.json": does not fit this stack: the backup has 4 shard\(s\) and this stack plans 3[\s\S]*fix: create it with shards=4/,
    );
    expect(run.resources.map((r) => r.type)).toEqual(["redis-stack:ec2:RedisCluster", "pulumi:pulumi:StackReference"]);
  });

  test("a manifest that is not there fails the preview with what to check", async () => {
    const run = await runStack("prod", restore);
    // (Pulumi's mocks pass an invoke's failure on without its message; a real preview shows AWS's reason.)
    expect(run.error?.message).toMatch(/redis-stack:restoreFrom = .*: cannot be read at preview \(/);
    expect(run.error?.message).toMatch(/aws s3 ls s3:\/\/old-backups\/redis-stack\/prod\/backups\/20261205T060000Z\//);
  });

  test("a manifest whose Content-Type hides its body from preview is left to the nodes' check", async () => {
    const run = await runStack(
      "prod",
      restore,
      [],
      {},
      {
        [`${BUCKET}/${KEY}`]: { body: manifest(4), contentType: "binary/octet-stream" },
      },
    );
    expect(run.error).toBeUndefined();
    expect(run.calls).toContain("aws:s3/getObject:getObject");
  });

  test("a deployed stack does not read it again (its nodes ignore restoreFrom, the backup may have expired)", async () => {
    const deployment = PROD_DEPLOYMENT;
    const run = await runStack("prod", restore, [], { deployment });
    expect(run.error).toBeUndefined();
    expect(run.calls).not.toContain("aws:s3/getObject:getObject");
  });
});
