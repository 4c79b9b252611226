/**
 * The desired settings every running node converges to: one text the stack writes to SSM, versioned by a
 * hash of its content, within SSM's size limit, and the roll order replicas-first.
 */
import { addressedTopology } from "../../components/ec2/topology";
import {
  DESIRED_SETTINGS_LIMIT_BYTES,
  LIVE_DIRECTIVES,
  liveSettings,
  renderDesiredSettings,
  renderSettingsConf,
  rollOrder,
  versionOf,
} from "../../components/ec2/desired";
import { APP_ACL_RULES, appAclRules } from "../../components/ec2/node/appAcl";
import { checkDeployedChange, DeployedShape, nodeChange } from "../../components/ec2/day2";

const plan = (shards: number) => addressedTopology(shards, 1, ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"], 10, 6379);
const input = {
  maxmemoryBytes: 1 << 30,
  maxmemoryPolicy: "allkeys-lru" as const,
  nodeTimeoutMs: 2000,
  persistence: "aof+rdb" as const,
  generation: 0,
  plan: plan(3),
  appAclRules: APP_ACL_RULES,
};

test("the version changes with any setting, the generation, the plan or the app's ACL, and only then", () => {
  const v = versionOf(renderDesiredSettings(input));
  expect(versionOf(renderDesiredSettings({ ...input }))).toBe(v);
  for (const changed of [
    { ...input, maxmemoryPolicy: "allkeys-lfu" as const },
    { ...input, maxmemoryBytes: 2 << 30 },
    { ...input, nodeTimeoutMs: 3000 },
    { ...input, persistence: "rdb" as const },
    { ...input, generation: 1 },
    { ...input, plan: plan(4) },
    { ...input, appAclRules: appAclRules(["+flushdb"]) },
  ])
    expect(versionOf(renderDesiredSettings(changed))).not.toBe(v);
});

test("persistence switches map to appendonly and the save schedule; settings.conf resets save before setting it", () => {
  const of = (persistence: "aof+rdb" | "aof" | "rdb" | "none") =>
    Object.fromEntries(liveSettings({ ...input, persistence }));
  expect(of("aof")).toMatchObject({ appendonly: "yes", save: "" });
  expect(of("rdb")).toMatchObject({ appendonly: "no", save: "900 1 300 10 60 10000" });
  expect(of("none")).toMatchObject({ appendonly: "no", save: "" });
  expect(liveSettings(input).map(([k]) => k)).toEqual([...LIVE_DIRECTIVES]);
  expect(renderSettingsConf(liveSettings(input)).split("\n")).toEqual([
    "maxmemory 1073741824",
    "maxmemory-policy allkeys-lru",
    "cluster-node-timeout 2000",
    "appendonly yes",
    'save ""',
    "save 900 1 300 10 60 10000",
  ]);
  expect(renderSettingsConf(liveSettings({ ...input, persistence: "none" }))).toContain('save ""');
});

test("30 nodes fit SSM's 4 KB standard parameter; more fail loudly", () => {
  const big = addressedTopology(10, 2, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"], 10, 6379);
  expect(Buffer.byteLength(renderDesiredSettings({ ...input, plan: big }))).toBeLessThan(DESIRED_SETTINGS_LIMIT_BYTES);
  const huge = addressedTopology(60, 2, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"], 10, 6379);
  expect(() => renderDesiredSettings({ ...input, plan: huge })).toThrow(/over SSM's 4096/);
});

test("roll order: every replica before any master", () => {
  expect(rollOrder(plan(3))).toEqual(["shard0-1", "shard1-1", "shard2-1", "shard0-0", "shard1-0", "shard2-0"]);
});

test("deployed changes: shards may grow and shrink; replicas, TLS and a smaller volume are refused naming the key", () => {
  const deployed: DeployedShape = {
    target: "ec2",
    shards: 3,
    replicasPerShard: 1,
    tls: true,
    dataVolumeGb: 40,
    nodes: plan(3).map((n) => n.node.name),
  };
  expect(checkDeployedChange(undefined, { ...deployed, replicasPerShard: 2 })).toEqual([]);
  expect(checkDeployedChange(deployed, { ...deployed, shards: 4, dataVolumeGb: 80 })).toEqual([]);
  expect(checkDeployedChange(deployed, { ...deployed, replicasPerShard: 2 }).map((p) => p.key)).toEqual([
    "replicasPerShard",
  ]);
  expect(checkDeployedChange(deployed, { ...deployed, tls: false }).map((p) => p.key)).toEqual(["tls"]);
  // A deployment recorded before the topology key runs a cluster: staying one is no change, leaving it is refused.
  expect(checkDeployedChange(deployed, { ...deployed, topology: "cluster" })).toEqual([]);
  const toSentinel = checkDeployedChange(deployed, { ...deployed, topology: "sentinel" });
  expect(toSentinel.map((p) => [p.key, p.fix])).toEqual([
    ["topology", expect.stringMatching(/^pulumi config set topology cluster /)],
  ]);
  const smaller = checkDeployedChange(deployed, { ...deployed, dataVolumeGb: 20 });
  expect(smaller.map((p) => p.key)).toEqual(["dataVolumeGb"]);
  expect(smaller[0].fix).toContain("pulumi config set dataVolumeGb 40");
  const four = plan(4).map((n) => n.node.name);
  expect(nodeChange(deployed, { ...deployed, shards: 4, nodes: four })).toEqual({
    added: ["shard3-0", "shard3-1"],
    leaving: [],
  });
  expect(nodeChange({ ...deployed, shards: 4, nodes: four }, deployed)).toEqual({
    added: [],
    leaving: ["shard3-0", "shard3-1"],
  });
  // A first deploy adds nothing "new": every node is created with the cluster.
  expect(nodeChange(undefined, deployed).added).toEqual([]);
});
