/**
 * The prod stack with `topology: sentinel` under Pulumi mocks: one primary and two replicas in
 * three AZs, a Sentinel on each, 26379 open to the nodes and apps only, the Sentinels' password in SSM, and
 * the contract a Sentinel-aware client reads.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  byType,
  FAKE,
  Registered,
  runStack,
  RunResult,
  unwrapSecrets,
  valueOf,
  cloudResources,
  fileIn,
} from "./support/stackHarness";
import { decodeUserData, encodeUserData, ssmNames, USER_DATA_LIMIT_BYTES } from "../../components/ec2/node/userData";
import { SENTINEL_PORT, sentinelMasterName, sentinelTimings } from "../../components/ec2/sentinel";
import { EXPORTER_PORT, REDIS_PORT } from "../../components/ec2/node/redisConf";
import { DEPLOYMENT_OUTPUT } from "../../components/ec2/resolve";

const SENTINEL = {
  "redis-stack:topology": "sentinel",
  "redis-stack:shards": undefined,
  "redis-stack:replicasPerShard": undefined,
};
const NAMES = ["shard0-0", "shard0-1", "shard0-2"];
const MASTER = sentinelMasterName("redis-stack", "prod");

let run: RunResult;
const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const instanceOf = (node: string) => {
  const found = byType(run.resources, "aws:ec2/instance:Instance").filter((r) => r.name.endsWith(`-${node}`));
  expect(found).toHaveLength(1);
  return inputs(found[0]);
};
const userDataOf = (node: string) => decodeUserData(String(instanceOf(node).userDataBase64));

beforeAll(async () => {
  run = await runStack("prod", SENTINEL);
  if (run.error) throw run.error;
});

test("three nodes, one per AZ: the planned primary and two replicas, each with its ENI, volume and instance", () => {
  const enis = byType(run.resources, "aws:ec2/networkInterface:NetworkInterface").map(inputs);
  expect(enis.map((e) => String(e.description)).sort()).toEqual([
    "shard0-0 (master, shard 0)",
    "shard0-1 (replica, shard 0)",
    "shard0-2 (replica, shard 0)",
  ]);
  // One node in each private subnet (one per AZ).
  expect(new Set(enis.map((e) => e.subnetId)).size).toBe(3);
  expect(byType(run.resources, "aws:ec2/instance:Instance")).toHaveLength(3);
  expect(byType(run.resources, "aws:ebs/volume:Volume").map((v) => inputs(v).availabilityZone)).toEqual(
    expect.arrayContaining(FAKE.azs),
  );
});

test("security groups: 26379 from the nodes, the client group and allowedCidrs; no cluster bus; apps may reach 26379", () => {
  const sgs = byType(run.resources, "aws:ec2/securityGroup:SecurityGroup").map(inputs);
  const nodes = sgs.find((s) => s.description === "Redis nodes with Sentinel");
  const ingress = (nodes?.ingress ?? []) as Array<Record<string, unknown>>;
  expect([...new Set(ingress.map((r) => r.fromPort))].sort()).toEqual(
    [REDIS_PORT, EXPORTER_PORT, SENTINEL_PORT].sort(),
  );
  expect(
    ingress
      .filter((r) => r.fromPort === SENTINEL_PORT)
      .map((r) => ({ self: r.self, securityGroups: r.securityGroups, cidrBlocks: r.cidrBlocks })),
  ).toEqual([
    { self: true, securityGroups: undefined, cidrBlocks: undefined },
    { self: undefined, securityGroups: ["redis-prod-client-id"], cidrBlocks: undefined },
    { self: undefined, securityGroups: undefined, cidrBlocks: ["10.0.0.0/16"] },
  ]);
  for (const r of ingress) expect(r.cidrBlocks ?? []).not.toContain("0.0.0.0/0");
  const egress = byType(run.resources, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").map(inputs);
  expect(egress.map((e) => e.fromPort)).toEqual([REDIS_PORT, EXPORTER_PORT, SENTINEL_PORT]);
});

test("the Sentinels' password is a SecureString under the stack's prefix, and no password reaches a user-data", () => {
  const ssm = ssmNames("redis-stack", "prod");
  const params = byType(run.resources, "aws:ssm/parameter:Parameter").map(inputs);
  const sentinel = params.filter((p) => p.name === ssm.sentinelPassword);
  expect(sentinel).toEqual([expect.objectContaining({ type: "SecureString" })]);
  const secrets = ["app", "admin", "monitor", "sentinel"].map((u) => FAKE.password(`redis-prod-${u}-password`));
  expect(sentinel[0].value).toBe(secrets[3]);
  for (const name of NAMES) {
    const ud = userDataOf(name);
    for (const secret of secrets) expect(ud).not.toContain(secret);
    expect(ud).toContain(`SSM_SENTINEL_PASSWORD='${ssm.sentinelPassword}'`);
    expect(Buffer.from(encodeUserData(ud), "base64").length).toBeLessThan(USER_DATA_LIMIT_BYTES);
  }
});

test("each node's user-data: Sentinel mode redis.conf, the Sentinel unit (lib-sentinel.sh through SSM), sentinel.conf on the planned primary, the backup units", () => {
  const t = sentinelTimings(2000);
  for (const [i, name] of NAMES.entries()) {
    const ud = userDataOf(name);
    const env = fileIn(ud, "/etc/redis-stack/node.env");
    expect(env).toContain("TOPOLOGY='sentinel'");
    expect(env).toContain(`SENTINEL_MASTER='${MASTER}'`);
    expect(env).not.toContain("cluster-enabled");
    expect(env).toContain(`min-replicas-to-write 1\nmin-replicas-max-lag ${t.minReplicasMaxLagSeconds}\n`);
    expect(env).toContain("include /etc/redis-stack/role.conf");
    // Every node's Sentinel starts on the planned primary (node.sh points it at the current one), quorum 2 of 3.
    expect(env).toMatch(new RegExp(`sentinel monitor ${MASTER} 10\\.40\\.0\\.10 6379 2\\n`));
    expect(env).toContain(`sentinel down-after-milliseconds ${MASTER} ${t.downAfterMs}`);
    expect(env).toMatch(new RegExp(`sentinel announce-ip 10\\.40\\.${i * 32}\\.\\d+\\n`));
    expect(fileIn(ud, "/etc/systemd/system/redis-node-sentinel.service")).toContain(
      "ExecStart=/usr/bin/redis-server /var/lib/redis-stack-sentinel/sentinel.conf --sentinel",
    );
    // The Sentinels elect and promote: no cluster failover watcher.
    expect(ud).not.toContain("cat >/etc/systemd/system/redis-node-watch.service");
    // lib-sentinel.sh arrives through SSM (it does not fit in EC2's 16 KB beside the rest): named, not carried.
    expect(env).toMatch(/^\/usr\/local\/lib\/redis-stack\/lib-sentinel\.sh 0644 [0-9a-f]{64} /m);
    expect(ud).not.toContain("decide_primary()");
    // Backups as in a cluster: where to, every 6 h, and the units that take them.
    expect(env).toMatch(/^BACKUP_BUCKET='redis-prod-backups-[0-9a-f]{7}'$/m);
    expect(env).toContain("BACKUP_PREFIX='redis-stack/prod'");
    expect(env).toContain("BACKUP_INTERVAL_HOURS='6'");
    expect(fileIn(ud, "/etc/systemd/system/redis-node-backup.timer")).toContain("OnCalendar=*-*-* 00/6:00:00 UTC");
    expect(fileIn(ud, "/etc/systemd/system/redis-node-backup.service")).toContain("node.sh backup scheduled");
  }
});

test("the contract: not a cluster, the three Sentinels and the master name; only URL and env secret", async () => {
  const o = run.outputs;
  if (!o) throw new Error("no outputs");
  expect(await valueOf(o.clusterMode)).toBe(false);
  const nodes = await valueOf(o.nodes);
  expect(nodes).toHaveLength(3);
  const env = await valueOf(o.env);
  expect(env.REDIS_CLUSTER_MODE).toBe("false");
  expect(env.REDIS_SENTINEL_MASTER).toBe(MASTER);
  expect(env.REDIS_SENTINELS).toBe(nodes.map((n) => n.replace(/:6379$/, `:${SENTINEL_PORT}`)).join(","));
  expect(env.REDIS_URL).toBe(`rediss://app:${FAKE.password("redis-prod-app-password")}@${nodes[0]}`);
  expect(await pulumi.isSecret(o.env)).toBe(true);
  expect(await pulumi.isSecret(o.clusterMode)).toBe(false);
  const deployment = o[DEPLOYMENT_OUTPUT];
  if (!deployment) throw new Error("no deployment output");
  expect(await valueOf(deployment)).toMatchObject({
    component: "redis-prod",
    topology: "sentinel",
    shards: 1,
    replicasPerShard: 2,
    nodes: NAMES,
  });
});

test("preview fails naming the key: shards other than 1, fewer than 3 Sentinels, a switch of a deployed stack", async () => {
  const shards = await runStack("prod", { ...SENTINEL, "redis-stack:shards": "3" });
  expect(String(shards.error?.message)).toContain('redis-stack:shards = "3"');
  expect(cloudResources(shards)).toEqual([]);
  const few = await runStack("prod", { ...SENTINEL, "redis-stack:replicasPerShard": "1" });
  expect(String(few.error?.message)).toMatch(/redis-stack:replicasPerShard = "1".*at least 3/s);
  expect(cloudResources(few)).toEqual([]);
  // A stack deployed as a cluster (its last `deployment` output) cannot become a Sentinel topology in place.
  const deployed = { target: "ec2", shards: 3, replicasPerShard: 1, tls: true, dataVolumeGb: 40, nodes: [] };
  const switched = await runStack("prod", SENTINEL, [], { [DEPLOYMENT_OUTPUT]: deployed });
  expect(String(switched.error?.message)).toMatch(/redis-stack:topology = "sentinel".*deployed stack runs a cluster/s);
  expect(cloudResources(switched).filter((r) => r.type !== "pulumi:pulumi:StackReference")).toEqual([]);
});
