/** Existing subnets in 3 AZs: no VPC is created and each node gets its fixed address in its AZ's subnet. */
import { byType, runStack, unwrapSecrets } from "./support/stackHarness";

test("nodes are placed at fixed addresses in the given subnets", async () => {
  const run = await runStack(
    "prod",
    { "redis-stack:vpcId": "vpc-0aaa", "redis-stack:subnetIds": '["subnet-0a","subnet-0b","subnet-0c"]' },
    [
      { id: "subnet-0a", vpcId: "vpc-0aaa", availabilityZone: "us-east-1a", cidrBlock: "10.1.1.0/24" },
      { id: "subnet-0b", vpcId: "vpc-0aaa", availabilityZone: "us-east-1b", cidrBlock: "10.1.2.0/24" },
      { id: "subnet-0c", vpcId: "vpc-0aaa", availabilityZone: "us-east-1c", cidrBlock: "10.1.3.0/24" },
    ],
  );
  if (run.error) throw run.error;
  expect(byType(run.resources, "aws:ec2/vpc:Vpc")).toEqual([]);
  const enis = byType(run.resources, "aws:ec2/networkInterface:NetworkInterface").map((r) => unwrapSecrets(r.inputs) as { subnetId: string; privateIps: string[] });
  expect(enis.map((e) => `${e.subnetId} ${e.privateIps[0]}`)).toEqual([
    "subnet-0a 10.1.1.10",
    "subnet-0b 10.1.2.12",
    "subnet-0c 10.1.3.14",
    "subnet-0b 10.1.2.11",
    "subnet-0c 10.1.3.13",
    "subnet-0a 10.1.1.15",
  ]);
});
