/**
 * A VPC peering between a Redis Cloud subscription and the app's VPC (the `cloudPeer*` keys): the database
 * then answers apps on its private endpoint.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import { CloudPeeringSettings } from "../config/settings";

/** The peered VPC as the component resolved it: the config's VPC, in the account of the AWS credentials. */
export interface CloudPeer extends CloudPeeringSettings {
  /** The account the VPC lives in (aws.getCallerIdentity: the accepter and routes run with those credentials). */
  awsAccountId: string;
}

export interface RedisCloudPeeringArgs {
  /** The subscription to peer (Redis Cloud's numeric id). */
  subscriptionId: pulumi.Input<string>;
  /** The subscription's region: the peered VPC's too. */
  region: string;
  /** The subscription's networking deployment CIDR: the app's route tables send it into the peering. */
  deploymentCidr: string;
  peer: CloudPeer;
  tags?: Record<string, string>;
}

/**
 * A VPC peering between a Redis Cloud subscription and the app's VPC: Redis Cloud requests it
 * (SubscriptionPeering, which also routes the VPC's CIDRs on its side), AWS accepts it in the app's
 * account, and each of the app's route tables sends the subscription's deployment CIDR through it.
 */
export class RedisCloudPeering extends pulumi.ComponentResource {
  /** The AWS peering connection (`pcx-...`), once accepted. */
  readonly peeringConnectionId: pulumi.Output<string>;
  /** Resolves once every route to the subscription exists: the private endpoint is reachable from then on. */
  readonly routed: pulumi.Output<string[]>;

  constructor(name: string, args: RedisCloudPeeringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:cloud:RedisCloudPeering", name, {}, opts);
    const child = { parent: this };
    const p = args.peer;
    const request = new rediscloud.SubscriptionPeering(
      `${name}-request`,
      {
        subscriptionId: args.subscriptionId,
        providerName: "AWS",
        region: args.region,
        awsAccountId: p.awsAccountId,
        vpcId: p.vpcId,
        // The provider takes exactly one of vpcCidr and vpcCidrs; the list covers VPCs with secondary CIDRs.
        vpcCidrs: p.vpcCidrs,
      },
      child,
    );
    const accepter = new aws.ec2.VpcPeeringConnectionAccepter(
      `${name}-accept`,
      {
        vpcPeeringConnectionId: request.awsPeeringId,
        autoAccept: true,
        tags: { Name: name, ...args.tags },
      },
      child,
    );
    // Named after the route table, so reordering the config list changes nothing.
    const routes = p.routeTableIds.map(
      (routeTableId) =>
        new aws.ec2.Route(
          `${name}-${routeTableId}`,
          {
            routeTableId,
            destinationCidrBlock: args.deploymentCidr,
            vpcPeeringConnectionId: accepter.vpcPeeringConnectionId,
          },
          child,
        ),
    );
    this.peeringConnectionId = accepter.vpcPeeringConnectionId;
    this.routed = pulumi.all(routes.map((r) => r.id));
    this.registerOutputs({ peeringConnectionId: this.peeringConnectionId, routed: this.routed });
  }
}
