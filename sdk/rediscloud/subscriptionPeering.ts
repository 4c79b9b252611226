// `rediscloud:index/subscriptionPeering:SubscriptionPeering`, shaped like the tfgen-generated resource class.

import * as pulumi from "@pulumi/pulumi";
import * as utilities from "./utilities";

/**
 * A VPC peering between a Redis Cloud (Pro) subscription's VPC and a VPC of yours (AWS or GCP).
 * For AWS, Redis Cloud requests the peering and the other side accepts it (e.g. with
 * `aws.ec2.VpcPeeringConnectionAccepter` on {@link SubscriptionPeering.awsPeeringId}).
 * Every input replaces the peering on change.
 */
export class SubscriptionPeering extends pulumi.CustomResource {
  /**
   * Get an existing SubscriptionPeering resource's state with the given name, ID, and optional extra
   * properties used to qualify the lookup.
   *
   * @param name The _unique_ name of the resulting resource.
   * @param id The _unique_ provider ID of the resource to lookup (`<subscription id>/<peering id>`).
   * @param state Any extra arguments used during the lookup.
   * @param opts Optional settings to control the behavior of the CustomResource.
   */
  public static get(
    name: string,
    id: pulumi.Input<pulumi.ID>,
    state?: SubscriptionPeeringState,
    opts?: pulumi.CustomResourceOptions,
  ): SubscriptionPeering {
    return new SubscriptionPeering(name, state, { ...opts, id: id });
  }

  /** @internal */
  public static readonly __pulumiType = "rediscloud:index/subscriptionPeering:SubscriptionPeering";

  /**
   * Returns true if the given object is an instance of SubscriptionPeering. This is designed to work
   * even when multiple copies of the Pulumi SDK have been loaded into the same process.
   */
  public static isInstance(obj: unknown): obj is SubscriptionPeering {
    if (obj === undefined || obj === null) {
      return false;
    }
    return (obj as { __pulumiType?: unknown })["__pulumiType"] === SubscriptionPeering.__pulumiType;
  }

  // Declared, not defined: the CustomResource constructor assigns these Outputs (see subscription.ts).

  /** AWS account ID that the VPC to be peered lives in. Replaces on change. */
  declare public readonly awsAccountId: pulumi.Output<string>;
  /** Identifier of the AWS cloud peering (the `pcx-...` id the other side accepts). */
  declare public readonly awsPeeringId: pulumi.Output<string>;
  /** The name of the GCP network to be peered. Replaces on change. */
  declare public readonly gcpNetworkName: pulumi.Output<string>;
  /** Identifier of the GCP cloud peering. */
  declare public readonly gcpPeeringId: pulumi.Output<string>;
  /** GCP project ID that the VPC to be peered lives in. Replaces on change. */
  declare public readonly gcpProjectId: pulumi.Output<string>;
  /** The name of the Redis Cloud GCP network to be peered. */
  declare public readonly gcpRedisNetworkName: pulumi.Output<string>;
  /** Identifier of the Redis Cloud GCP project to be peered. */
  declare public readonly gcpRedisProjectId: pulumi.Output<string>;
  /** `AWS` (default) or `GCP`. Replaces on change. */
  declare public readonly providerName: pulumi.Output<string | undefined>;
  /** AWS region that the VPC to be peered lives in. Replaces on change. */
  declare public readonly region: pulumi.Output<string>;
  /** `initiating-request`, `pending-acceptance`, `active`, `inactive` or `failed`. */
  declare public readonly status: pulumi.Output<string>;
  /** The subscription to peer. Replaces on change. */
  declare public readonly subscriptionId: pulumi.Output<string>;
  /** CIDR range of the VPC to be peered (either this or `vpcCidrs`). Replaces on change. */
  declare public readonly vpcCidr: pulumi.Output<string>;
  /** CIDR ranges of the VPC to be peered (either this or `vpcCidr`). Replaces on change. */
  declare public readonly vpcCidrs: pulumi.Output<string[]>;
  /** Identifier of the VPC to be peered. Replaces on change. */
  declare public readonly vpcId: pulumi.Output<string>;

  /**
   * Create a SubscriptionPeering resource with the given unique name, arguments, and options.
   *
   * @param name The _unique_ name of the resource.
   * @param args The arguments to use to populate this resource's properties.
   * @param opts A bag of options that control this resource's behavior.
   */
  constructor(name: string, args: SubscriptionPeeringArgs, opts?: pulumi.CustomResourceOptions);
  /**
   * Lookup / rehydration form (what `SubscriptionPeering.get` and resource references use): with `opts.id`
   * the bag is a (partial) state to qualify the lookup; with `opts.urn` it is ignored.
   */
  constructor(name: string, state: SubscriptionPeeringState | undefined, opts: SubscriptionPeeringLookupOptions);
  constructor(
    name: string,
    argsOrState?: SubscriptionPeeringArgs | SubscriptionPeeringState,
    opts?: pulumi.CustomResourceOptions,
  ) {
    const resourceInputs: pulumi.Inputs = {};
    opts = opts || {};
    if (opts.id) {
      // Lookup (`SubscriptionPeering.get`): the bag is a (partial) state.
      const state = argsOrState as SubscriptionPeeringState | undefined;
      resourceInputs["awsAccountId"] = state?.awsAccountId;
      resourceInputs["awsPeeringId"] = state?.awsPeeringId;
      resourceInputs["gcpNetworkName"] = state?.gcpNetworkName;
      resourceInputs["gcpPeeringId"] = state?.gcpPeeringId;
      resourceInputs["gcpProjectId"] = state?.gcpProjectId;
      resourceInputs["gcpRedisNetworkName"] = state?.gcpRedisNetworkName;
      resourceInputs["gcpRedisProjectId"] = state?.gcpRedisProjectId;
      resourceInputs["providerName"] = state?.providerName;
      resourceInputs["region"] = state?.region;
      resourceInputs["status"] = state?.status;
      resourceInputs["subscriptionId"] = state?.subscriptionId;
      resourceInputs["vpcCidr"] = state?.vpcCidr;
      resourceInputs["vpcCidrs"] = state?.vpcCidrs;
      resourceInputs["vpcId"] = state?.vpcId;
    } else {
      const args = argsOrState as SubscriptionPeeringArgs | undefined;
      if (args?.subscriptionId === undefined && !opts.urn) {
        throw new Error("Missing required property 'subscriptionId'");
      }
      resourceInputs["awsAccountId"] = args?.awsAccountId;
      resourceInputs["gcpNetworkName"] = args?.gcpNetworkName;
      resourceInputs["gcpProjectId"] = args?.gcpProjectId;
      resourceInputs["providerName"] = args?.providerName;
      resourceInputs["region"] = args?.region;
      resourceInputs["subscriptionId"] = args?.subscriptionId;
      resourceInputs["vpcCidr"] = args?.vpcCidr;
      resourceInputs["vpcCidrs"] = args?.vpcCidrs;
      resourceInputs["vpcId"] = args?.vpcId;
      // Output-only properties: registered as undefined so the base class creates their Outputs.
      resourceInputs["awsPeeringId"] = undefined; /*out*/
      resourceInputs["gcpPeeringId"] = undefined; /*out*/
      resourceInputs["gcpRedisNetworkName"] = undefined; /*out*/
      resourceInputs["gcpRedisProjectId"] = undefined; /*out*/
      resourceInputs["status"] = undefined; /*out*/
    }
    opts = utilities.withPluginDefaults(opts);
    // Every input replaces the peering (schema: `willReplaceOnChanges`), as generated SDKs declare.
    const replaceOpts: pulumi.CustomResourceOptions = {
      replaceOnChanges: [
        "awsAccountId",
        "gcpNetworkName",
        "gcpProjectId",
        "providerName",
        "region",
        "subscriptionId",
        "vpcCidr",
        "vpcCidrs",
        "vpcId",
      ],
    };
    opts = pulumi.mergeOptions(opts, replaceOpts);
    super(SubscriptionPeering.__pulumiType, name, resourceInputs, opts);
  }
}

/** Options of the lookup / rehydration constructor form: an existing resource's `id` or `urn`. */
export type SubscriptionPeeringLookupOptions = pulumi.CustomResourceOptions &
  ({ id: pulumi.Input<pulumi.ID> } | { urn: pulumi.Input<pulumi.URN> });

/** Input properties used for looking up and filtering SubscriptionPeering resources. */
export interface SubscriptionPeeringState {
  awsAccountId?: pulumi.Input<string>;
  awsPeeringId?: pulumi.Input<string>;
  gcpNetworkName?: pulumi.Input<string>;
  gcpPeeringId?: pulumi.Input<string>;
  gcpProjectId?: pulumi.Input<string>;
  gcpRedisNetworkName?: pulumi.Input<string>;
  gcpRedisProjectId?: pulumi.Input<string>;
  providerName?: pulumi.Input<string>;
  region?: pulumi.Input<string>;
  status?: pulumi.Input<string>;
  subscriptionId?: pulumi.Input<string>;
  vpcCidr?: pulumi.Input<string>;
  vpcCidrs?: pulumi.Input<pulumi.Input<string>[]>;
  vpcId?: pulumi.Input<string>;
}

/** The set of arguments for constructing a SubscriptionPeering resource (schema `inputProperties`). */
export interface SubscriptionPeeringArgs {
  /** AWS only: account ID that the VPC to be peered lives in. Replaces on change. */
  awsAccountId?: pulumi.Input<string>;
  /** GCP only: the name of the network to be peered. Replaces on change. */
  gcpNetworkName?: pulumi.Input<string>;
  /** GCP only: project ID that the VPC to be peered lives in. Replaces on change. */
  gcpProjectId?: pulumi.Input<string>;
  /** `AWS` (default) or `GCP`. Replaces on change. */
  providerName?: pulumi.Input<string>;
  /** AWS only: region that the VPC to be peered lives in. Replaces on change. */
  region?: pulumi.Input<string>;
  /** A subscription of the account (its numeric id). Replaces on change. */
  subscriptionId: pulumi.Input<string>;
  /** AWS only: CIDR range of the VPC to be peered; exactly one of `vpcCidr` and `vpcCidrs`. Replaces on change. */
  vpcCidr?: pulumi.Input<string>;
  /** AWS only: CIDR ranges of the VPC to be peered; exactly one of `vpcCidr` and `vpcCidrs`. Replaces on change. */
  vpcCidrs?: pulumi.Input<pulumi.Input<string>[]>;
  /** AWS only: identifier of the VPC to be peered. Replaces on change. */
  vpcId?: pulumi.Input<string>;
}
