/**
 * The VPC the EC2 target creates when the stack is not given one: private subnets (one per AZ) for the
 * nodes, public subnets for a single NAT gateway (package installs and SSM reach out through it).
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { planVpcSubnets } from "./topology";

export interface RedisVpcArgs {
  cidr: string;
  availabilityZones: string[];
  tags?: Record<string, string>;
}

export class RedisVpc extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly privateSubnetIds: pulumi.Output<string>[];
  /** Planned CIDR of each private subnet, in AZ order (known at preview, used for static node addresses). */
  readonly privateCidrs: string[];
  /**
   * The private subnets' route to the NAT gateway (the route table and its associations). Instances
   * depend on these: a node that boots before the route exists cannot reach the package mirror or SSM.
   */
  readonly egressRoutes: pulumi.Resource[];

  constructor(name: string, args: RedisVpcArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:network:RedisVpc", name, {}, opts);
    const tags = (role: string) => ({ Name: `${name}-${role}`, ...args.tags });
    const { privateCidrs, publicCidrs } = planVpcSubnets(args.cidr, args.availabilityZones.length);
    this.privateCidrs = privateCidrs;

    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      { cidrBlock: args.cidr, enableDnsHostnames: true, enableDnsSupport: true, tags: tags("vpc") },
      { parent: this },
    );
    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: tags("igw") }, { parent: this });

    const publicRt = new aws.ec2.RouteTable(
      `${name}-public-rt`,
      { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }], tags: tags("public-rt") },
      { parent: this },
    );
    const publicSubnets = args.availabilityZones.map((az, i) => {
      const subnet = new aws.ec2.Subnet(
        `${name}-public-${i}`,
        {
          vpcId: vpc.id,
          cidrBlock: publicCidrs[i],
          availabilityZone: az,
          mapPublicIpOnLaunch: false,
          tags: tags(`public-${i}`),
        },
        { parent: this },
      );
      new aws.ec2.RouteTableAssociation(
        `${name}-public-${i}`,
        { subnetId: subnet.id, routeTableId: publicRt.id },
        { parent: this },
      );
      return subnet;
    });

    const eip = new aws.ec2.Eip(`${name}-nat`, { domain: "vpc", tags: tags("nat") }, { parent: this });
    const nat = new aws.ec2.NatGateway(
      `${name}-nat`,
      { allocationId: eip.id, subnetId: publicSubnets[0].id, tags: tags("nat") },
      { parent: this, dependsOn: [igw] },
    );
    const privateRt = new aws.ec2.RouteTable(
      `${name}-private-rt`,
      { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: nat.id }], tags: tags("private-rt") },
      { parent: this },
    );

    this.egressRoutes = [privateRt];
    this.privateSubnetIds = args.availabilityZones.map((az, i) => {
      const subnet = new aws.ec2.Subnet(
        `${name}-private-${i}`,
        {
          vpcId: vpc.id,
          cidrBlock: privateCidrs[i],
          availabilityZone: az,
          mapPublicIpOnLaunch: false,
          tags: tags(`private-${i}`),
        },
        { parent: this },
      );
      this.egressRoutes.push(
        new aws.ec2.RouteTableAssociation(
          `${name}-private-${i}`,
          { subnetId: subnet.id, routeTableId: privateRt.id },
          { parent: this },
        ),
      );
      return subnet.id;
    });
    this.vpcId = vpc.id;
    this.registerOutputs({ vpcId: this.vpcId, privateSubnetIds: this.privateSubnetIds });
  }
}
