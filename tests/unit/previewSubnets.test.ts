/**
 * With `vpcId`/`subnetIds`, the subnets are looked up at preview and checked against the topology:
 * subnets all in one AZ fail before any resource exists; subnets in 3 AZs get the nodes, each at its
 * fixed address in its AZ's subnet, no VPC is created, and the outputs name that VPC and those subnets.
 */
import { byType, runStack, SubnetFixture, unwrapSecrets, valueOf } from "./support/stackHarness";

const subnet = (id: string, az: string, cidr: string): SubnetFixture => ({
  id,
  vpcId: "vpc-0aaa",
  availabilityZone: `us-east-1${az}`,
  cidrBlock: cidr,
});
const existing = (ids: string[]) => ({ "redis-stack:vpcId": "vpc-0aaa", "redis-stack:subnetIds": JSON.stringify(ids) });

test("subnets in a single availability zone fail at preview", async () => {
  const run = await runStack("prod", existing(["subnet-0a1", "subnet-0a2"]), [
    subnet("subnet-0a1", "a", "10.1.1.0/24"),
    subnet("subnet-0a2", "a", "10.1.2.0/24"),
  ]);
  expect(String(run.error?.message)).toMatch(/redis-stack:subnetIds = .*all subnets are in one availability zone/);
  expect(run.resources.map((r) => r.type)).toEqual(["redis-stack:ec2:RedisCluster"]);
});

test("nodes are placed at fixed addresses in the given subnets", async () => {
  const run = await runStack("prod", existing(["subnet-0a", "subnet-0b", "subnet-0c"]), [
    subnet("subnet-0a", "a", "10.1.1.0/24"),
    subnet("subnet-0b", "b", "10.1.2.0/24"),
    subnet("subnet-0c", "c", "10.1.3.0/24"),
  ]);
  if (run.error) throw run.error;
  expect(byType(run.resources, "aws:ec2/vpc:Vpc")).toEqual([]);
  const enis = byType(run.resources, "aws:ec2/networkInterface:NetworkInterface").map(
    (r) => unwrapSecrets(r.inputs) as { subnetId: string; privateIps: string[] },
  );
  // Registered in the roll order: replicas first, then masters.
  expect(enis.map((e) => `${e.subnetId} ${e.privateIps[0]}`).sort()).toEqual([
    "subnet-0a 10.1.1.10",
    "subnet-0a 10.1.1.15",
    "subnet-0b 10.1.2.11",
    "subnet-0b 10.1.2.12",
    "subnet-0c 10.1.3.13",
    "subnet-0c 10.1.3.14",
  ]);
  // Apps deploy next to the nodes: the given VPC and the subnets the nodes are in.
  const o = run.outputs;
  if (!o?.vpcId || !o.subnetIds) throw new Error("no vpcId/subnetIds outputs");
  expect(await valueOf(o.vpcId)).toBe("vpc-0aaa");
  expect(await valueOf(o.subnetIds)).toEqual(["subnet-0a", "subnet-0b", "subnet-0c"]);
});
