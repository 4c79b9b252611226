/**
 * Resource options of the EC2 component (instances wait for the NAT route) (mocks never see options; a component-level transformation
 * does): instances replaced delete-first so the ENI (and its IP) can move to the new one; new AMIs
 * and user-data never restart running nodes; every child parented under the component.
 */
import * as pulumi from "@pulumi/pulumi";
import { RedisEc2Cluster } from "../../components/ec2Cluster";
import { ssmNames } from "../../components/userData";
import { stackSettings } from "../../local/localCluster";

interface Seen {
  type: string;
  name: string;
  opts: pulumi.CustomResourceOptions;
}

test("an update waits for every node's health; instances: deleteBeforeReplace, ignoreChanges on ami and user-data; all children parented", async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (a) => ({
        id: `${a.name}-id`,
        state: {
          ...(a.inputs as Record<string, unknown>),
          result: "pw",
          certPem: "CERT",
          privateKeyPem: "KEY",
          arn: "arn:x",
          name: a.name,
        },
      }),
      call: (a) => {
        if (a.token === "aws:index/getCallerIdentity:getCallerIdentity") return { accountId: "123456789012" };
        if (a.token === "aws:ec2/getAmi:getAmi") return { id: "ami-1" };
        throw new Error(`unmocked ${a.token}`);
      },
    },
    "redis-stack",
    "prod",
    false,
  );
  const settings = stackSettings("prod");
  if (!settings.ec2) throw new Error("prod must be ec2");
  const seen: Seen[] = [];
  const reads: string[][] = [];
  const cluster = new RedisEc2Cluster(
    "redis-prod",
    {
      settings: settings.ec2,
      maxmemoryPolicy: settings.maxmemoryPolicy,
      persistence: settings.persistence,
      tls: settings.tls,
      allowedCidrs: settings.allowedCidrs,
      client: settings.client,
      placement: { kind: "create", vpcCidr: settings.ec2.vpcCidr, zones: ["us-east-1a", "us-east-1b", "us-east-1c"] },
      ssm: ssmNames("redis-stack", "prod"),
      // An update (mocks run with preview off): the health wait reads every node's status through this.
      healthReader: async (names) => {
        reads.push(names);
        // The mocks name each instance's id "<resource name>-id"; each node reports ok from it.
        return Object.fromEntries(
          names.map((n) => {
            const node = n.split("/").pop() ?? "";
            return [n, JSON.stringify({ state: "ok", node, instance: `redis-prod-${node}-id`, time: "t", detail: "" })];
          }),
        );
      },
    },
    {
      transformations: [
        (args) => {
          seen.push({ type: args.type, name: args.name, opts: args.opts });
          return undefined;
        },
      ],
    },
  );
  await new Promise<void>((resolve) => cluster.clientSecurityGroupId.apply(() => resolve()));
  // `pulumi up` waits until every node reported ok from its current instance.
  const healthyAt = await new Promise<string>((resolve) => cluster.healthyAt.apply(resolve));
  expect(healthyAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  expect(reads[0]).toEqual(cluster.nodes.map((n) => `/redis-stack/prod/status/${n.node.name}`));
  const instances = seen.filter((s) => s.type === "aws:ec2/instance:Instance");
  expect(instances).toHaveLength(6);
  for (const i of instances) {
    expect(i.opts.deleteBeforeReplace).toBe(true);
    expect(i.opts.ignoreChanges).toEqual(["ami", "userDataBase64"]);
    // Booted only once the private subnets route through the NAT (first boot installs packages).
    const deps = (i.opts.dependsOn ?? []) as pulumi.Resource[];
    const depNames = await Promise.all(deps.map((d) => new Promise<string>((r) => d.urn.apply(r))));
    expect(depNames.map((u) => u.split("::").pop()).sort()).toEqual(
      [
        "redis-prod-net-private-rt",
        "redis-prod-net-private-0",
        "redis-prod-net-private-1",
        "redis-prod-net-private-2",
      ].sort(),
    );
  }
  expect(seen.length).toBeGreaterThan(60);
  // The component itself (first seen) hangs under the stack; everything else under a component.
  expect(seen.filter((s) => s.opts.parent === undefined).map((s) => s.type)).toEqual(["redis-stack:ec2:RedisCluster"]);
});
