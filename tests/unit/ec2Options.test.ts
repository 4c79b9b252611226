/**
 * Resource options and ordering of the EC2 component (mocks never see options; a component-level
 * transformation does): instances replaced delete-first so the ENI (and its IP) can move to the new one;
 * user-data (and the AMI unless pinned) never restart running nodes; instances change one at a time in the
 * roll order, each after the previous node is healthy again; data volumes survive deletes; every child
 * parented under the component.
 */
import * as pulumi from "@pulumi/pulumi";
import { RedisEc2Cluster } from "../../components/ec2/cluster";
import { ssmNames, ssmShippedScripts } from "../../components/ec2/node/userData";
import { stackConfig } from "../../lab/stackFiles";
import { stackArguments } from "../../components/config/stack";
import { rollOrder, versionOf } from "../../components/ec2/desired";
import { DeployedShape } from "../../components/ec2/day2";
import { ParameterReader } from "../../components/ec2/health";
import { NodeAddress } from "../../components/ec2/topology";

const plan = (c: RedisEc2Cluster) => new Promise<NodeAddress[]>((resolve) => c.plan.apply(resolve));

const ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"];

interface Seen {
  type: string;
  name: string;
  opts: pulumi.CustomResourceOptions;
  props: pulumi.Inputs;
}

/** Runs the component as an update (preview off) and records options, registrations and status reads in order. */
async function runUpdate(opts: { deployed?: DeployedShape; instanceType?: string } = {}) {
  const events: string[] = [];
  const seen: Seen[] = [];
  let desiredText = "";
  await pulumi.runtime.setMocks(
    {
      newResource: (a) => {
        const inputs = a.inputs as Record<string, unknown>;
        if (a.type === "aws:ec2/instance:Instance") events.push(`register ${a.name.replace("redis-prod-", "")}`);
        if (a.type === "aws:ssm/parameter:Parameter" && a.name.endsWith("-settings")) {
          // The provider marks a parameter's value secret: the mocks see it wrapped.
          const v = inputs.value as string | { value?: unknown };
          desiredText = typeof v === "string" ? v : String(v.value);
        }
        if (a.type === "pulumi:pulumi:StackReference")
          // What the stack exported at its last update: the cluster's deployment record, if any.
          return { id: a.name, state: { ...inputs, outputs: opts.deployed ? { deployment: opts.deployed } : {} } };
        return {
          id: `${a.name}-id`,
          state: {
            ...inputs,
            result: "pw",
            certPem: "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n",
            privateKeyPem: "KEY",
            arn: "arn:x",
            name: a.name,
          },
        };
      },
      call: (a) => {
        switch (a.token) {
          case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: "123456789012" };
          case "aws:ec2/getAmi:getAmi":
            return { id: "ami-1" };
          case "aws:ec2/getInstanceType:getInstanceType":
            return { memorySize: 16384, supportedArchitectures: ["arm64"] };
          case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return { locations: ZONES };
          case "aws:index/getAvailabilityZones:getAvailabilityZones":
            return { names: ZONES };
        }
        throw new Error(`unmocked ${a.token}`);
      },
    },
    "redis-stack",
    "prod",
    false,
    "organization", // the component reads its last deployment through a stack reference to its own stack
  );
  // The prod stack's config as index.ts hands it to the component.
  pulumi.runtime.setAllConfig(stackConfig("prod"));
  const config = stackArguments("redis-stack");
  if (config.target !== "ec2") throw new Error("prod must be ec2");
  const instanceType = opts.instanceType ?? config.args.instanceType ?? "r7g.large";
  const reads: string[][] = [];
  // Every node reports ok from the instance the mocks made ("<resource name>-id"), on the configured type,
  // with the desired settings applied.
  const healthReader: ParameterReader = async (names) => {
    reads.push(names);
    if (names.length === 1) events.push(`gate ${names[0].split("/").pop()}`);
    await new Promise((r) => setTimeout(r, 5));
    return Object.fromEntries(
      names.map((n) => {
        const node = n.split("/").pop() ?? "";
        const status = {
          state: "ok",
          node,
          instance: `redis-prod-${node}-id`,
          instanceType,
          settings: desiredText ? versionOf(desiredText) : "",
          slots: 0,
          time: "t",
          detail: "",
        };
        return [n, JSON.stringify(status)];
      }),
    );
  };
  const cluster = new RedisEc2Cluster(
    "redis-prod",
    { ...config.args, instanceType, healthReader },
    {
      transformations: [
        (args) => {
          seen.push({ type: args.type, name: args.name, opts: args.opts, props: args.props });
          return undefined;
        },
      ],
    },
  );
  await cluster.ready;
  const healthyAt = await new Promise<string>((resolve) => cluster.healthyAt.apply(resolve));
  // The component registers its outputs once the last of them (after the health wait) has resolved: let
  // that call reach these mocks before the next test installs its own.
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { cluster, seen, reads, events, healthyAt };
}

test("an update waits for every node's health and settings; instances: deleteBeforeReplace, ignoreChanges on ami, user-data and the root key; volumes retained, their key never replacing them; all children parented", async () => {
  const { cluster, seen, reads, healthyAt } = await runUpdate();
  // `pulumi up` waits until every node reported ok from its current instance.
  expect(healthyAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  const nodes = await plan(cluster);
  expect(reads[reads.length - 1]).toEqual(nodes.map((n) => `/redis-stack/prod/status/${n.node.name}`));
  const instances = seen.filter((s) => s.type === "aws:ec2/instance:Instance");
  expect(instances).toHaveLength(6);
  const order = rollOrder(nodes);
  for (const [k, i] of instances.entries()) {
    expect(i.opts.deleteBeforeReplace).toBe(true);
    // The root volume's key changes only when the instance is replaced anyway: a stack made before the cluster
    // key existed keeps its running instances.
    expect(i.opts.ignoreChanges).toEqual(["ami", "userDataBase64", "rootBlockDevice.kmsKeyId"]);
    // Booted only once the private subnets route through the NAT (first boot installs packages), and
    // after the node before it in the roll order.
    const deps = (i.opts.dependsOn ?? []) as pulumi.Resource[];
    const depNames = await Promise.all(deps.map((d) => new Promise<string>((r) => d.urn.apply(r))));
    expect(depNames.map((u) => u.split("::").pop()).sort()).toEqual(
      [
        "redis-prod-net-private-rt",
        "redis-prod-net-private-0",
        "redis-prod-net-private-1",
        "redis-prod-net-private-2",
        // The scripts its user-data names by checksum are in SSM before it boots.
        ...ssmShippedScripts(ssmNames("redis-stack", "prod")).flatMap((sc) =>
          sc.chunks.map((_, j) => `redis-prod-script-${sc.name}-${j}`),
        ),
        ...(k > 0 ? [`redis-prod-${order[k - 1]}`] : []),
      ].sort(),
    );
  }
  // Removing a node, a shard or the stack never deletes a data volume.
  const volumes = seen.filter((s) => s.type === "aws:ebs/volume:Volume");
  expect(volumes).toHaveLength(6);
  for (const v of volumes) expect(v.opts.retainOnDelete).toBe(true);
  // A new key on an existing volume would replace it, and its data: volumes made before the cluster key keep theirs.
  for (const v of volumes) expect(v.opts.ignoreChanges).toEqual(["kmsKeyId"]);
  // Secrets go under the cluster key only once the node role may decrypt them through SSM.
  const secureStrings = seen.filter(
    (s) => s.type === "aws:ssm/parameter:Parameter" && (s.props as { type?: unknown }).type === "SecureString",
  );
  expect(secureStrings.length).toBeGreaterThanOrEqual(9);
  for (const p of secureStrings) {
    const deps = (p.opts.dependsOn ?? []) as pulumi.Resource[];
    const depNames = await Promise.all(deps.map((d) => new Promise<string>((r) => d.urn.apply(r))));
    expect(depNames.map((u) => u.split("::").pop())).toEqual(["redis-prod-node"]);
    expect(depNames[0]).toContain("aws:iam/rolePolicy:RolePolicy");
  }
  // Nor the backups: the key and the bucket stay as they are (and the bucket is never emptied to delete it).
  // The lifecycle goes with the stack (a destroyed stack's last backups are not expired behind its back),
  // and the alias (a new stack of the same name takes it again).
  const backups = seen
    .filter((s) => /^aws:(s3|kms)\//.test(s.type))
    .map((s) => [s.type.split(":").pop(), s.name, s.opts.retainOnDelete ?? false]);
  expect(backups.sort()).toEqual(
    [
      ["Key", "redis-prod-backups", true],
      ["Alias", "redis-prod-backups", false],
      ["Bucket", "redis-prod-backups", true],
      ["BucketOwnershipControls", "redis-prod-backups", true],
      ["BucketPublicAccessBlock", "redis-prod-backups", true],
      ["BucketVersioning", "redis-prod-backups", true],
      ["BucketServerSideEncryptionConfiguration", "redis-prod-backups", true],
      ["BucketPolicy", "redis-prod-backups", true],
      ["BucketLifecycleConfiguration", "redis-prod-backups", false],
    ].sort(),
  );
  expect(seen.length).toBeGreaterThan(60);
  // The component itself (first seen) hangs under the stack; everything else under a component. (The
  // stack's reference to its own last outputs stays at the top, as the graph fixture's URNs show.)
  expect(seen.filter((s) => s.opts.parent === undefined).map((s) => s.type)).toEqual(["redis-stack:ec2:RedisCluster"]);
});

test("an instanceType change on a deployed cluster rolls: each instance is changed only after the one before it reports healthy on the new type", async () => {
  const deployed: DeployedShape = {
    target: "ec2",
    shards: 3,
    replicasPerShard: 1,
    tls: true,
    dataVolumeGb: 32,
    nodes: ["shard0-0", "shard1-0", "shard2-0", "shard0-1", "shard1-1", "shard2-1"],
  };
  const { cluster, events } = await runUpdate({ deployed, instanceType: "r7g.xlarge" });
  const order = rollOrder(await plan(cluster));
  expect(order).toEqual(["shard0-1", "shard1-1", "shard2-1", "shard0-0", "shard1-0", "shard2-0"]);
  // Replicas first, then masters; never two instances in flight: register, its gate, the next register...
  const rolling = events.filter((e) => !e.startsWith("gate") || order.some((n) => e === `gate ${n}`));
  const expected = order.flatMap((n, k) => [`register ${n}`, ...(k < order.length - 1 ? [`gate ${n}`] : [])]);
  expect(rolling.slice(0, expected.length)).toEqual(expected);
});

test("a fresh stack creates its instances without waiting on health between them (the cluster forms with every node up)", async () => {
  const { events } = await runUpdate();
  expect(events.filter((e) => e.startsWith("gate"))).toEqual([]);
  expect(events.filter((e) => e.startsWith("register"))).toHaveLength(6);
});
