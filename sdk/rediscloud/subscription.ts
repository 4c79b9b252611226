// `rediscloud:index/subscription:Subscription`, shaped like the tfgen-generated resource class.

import * as pulumi from "@pulumi/pulumi";
import * as inputs from "./types/input";
import * as outputs from "./types/output";
import * as utilities from "./utilities";

/**
 * A Redis Cloud (Pro) subscription: the cloud account, region(s) and networking the databases run in.
 * Databases are added with {@link SubscriptionDatabase}.
 */
export class Subscription extends pulumi.CustomResource {
  /**
   * Get an existing Subscription resource's state with the given name, ID, and optional extra
   * properties used to qualify the lookup.
   *
   * @param name The _unique_ name of the resulting resource.
   * @param id The _unique_ provider ID of the resource to lookup.
   * @param state Any extra arguments used during the lookup.
   * @param opts Optional settings to control the behavior of the CustomResource.
   */
  public static get(
    name: string,
    id: pulumi.Input<pulumi.ID>,
    state?: SubscriptionState,
    opts?: pulumi.CustomResourceOptions,
  ): Subscription {
    return new Subscription(name, state, { ...opts, id: id });
  }

  /** @internal */
  public static readonly __pulumiType = "rediscloud:index/subscription:Subscription";

  /**
   * Returns true if the given object is an instance of Subscription. This is designed to work even
   * when multiple copies of the Pulumi SDK have been loaded into the same process.
   */
  public static isInstance(obj: unknown): obj is Subscription {
    if (obj === undefined || obj === null) {
      return false;
    }
    return (obj as { __pulumiType?: unknown })["__pulumiType"] === Subscription.__pulumiType;
  }

  // Output properties are declared (not defined) so that no class-field initialiser overwrites the
  // Outputs that the CustomResource constructor assigns from `resourceInputs`.

  /** An allowlist object (security groups / CIDRs allowed to reach the databases). */
  declare public readonly allowlist: pulumi.Output<outputs.SubscriptionAllowlist | undefined>;
  /** The cloud provider object. Replaces on change. */
  declare public readonly cloudProvider: pulumi.Output<outputs.SubscriptionCloudProvider>;
  /** The creation plan object (sizing of the planned databases). */
  declare public readonly creationPlan: pulumi.Output<outputs.SubscriptionCreationPlan | undefined>;
  /** `ram` (default) or `ram-and-flash`. Replaces on change. */
  declare public readonly memoryStorage: pulumi.Output<string | undefined>;
  /** A meaningful name to identify the subscription. */
  declare public readonly name: pulumi.Output<string>;
  /** `credit-card` (default) or `marketplace`. Replaces on change. */
  declare public readonly paymentMethod: pulumi.Output<string | undefined>;
  /** A payment method pre-defined in the account (see `getPaymentMethod`). */
  declare public readonly paymentMethodId: pulumi.Output<string>;

  /**
   * Create a Subscription resource with the given unique name, arguments, and options.
   *
   * @param name The _unique_ name of the resource.
   * @param args The arguments to use to populate this resource's properties.
   * @param opts A bag of options that control this resource's behavior.
   */
  constructor(name: string, args: SubscriptionArgs, opts?: pulumi.CustomResourceOptions);
  /**
   * Lookup / rehydration form (what `Subscription.get` and resource references use): with `opts.id` the
   * bag is a (partial) state to qualify the lookup; with `opts.urn` it is ignored.
   */
  constructor(name: string, state: SubscriptionState | undefined, opts: SubscriptionLookupOptions);
  constructor(name: string, argsOrState?: SubscriptionArgs | SubscriptionState, opts?: pulumi.CustomResourceOptions) {
    const resourceInputs: pulumi.Inputs = {};
    opts = opts || {};
    if (opts.id) {
      // Lookup (`Subscription.get`): the bag is a (partial) state.
      const state = argsOrState as SubscriptionState | undefined;
      resourceInputs["allowlist"] = state?.allowlist;
      resourceInputs["cloudProvider"] = state?.cloudProvider;
      resourceInputs["creationPlan"] = state?.creationPlan;
      resourceInputs["memoryStorage"] = state?.memoryStorage;
      resourceInputs["name"] = state?.name;
      resourceInputs["paymentMethod"] = state?.paymentMethod;
      resourceInputs["paymentMethodId"] = state?.paymentMethodId;
    } else {
      const args = argsOrState as SubscriptionArgs | undefined;
      if (args?.cloudProvider === undefined && !opts.urn) {
        throw new Error("Missing required property 'cloudProvider'");
      }
      resourceInputs["allowlist"] = args?.allowlist;
      resourceInputs["cloudProvider"] = args?.cloudProvider;
      resourceInputs["creationPlan"] = args?.creationPlan;
      resourceInputs["memoryStorage"] = args?.memoryStorage;
      resourceInputs["name"] = args?.name;
      resourceInputs["paymentMethod"] = args?.paymentMethod;
      resourceInputs["paymentMethodId"] = args?.paymentMethodId;
    }
    opts = utilities.withPluginDefaults(opts);
    super(Subscription.__pulumiType, name, resourceInputs, opts);
  }
}

/** Options of the lookup / rehydration constructor form: an existing resource's `id` or `urn`. */
export type SubscriptionLookupOptions = pulumi.CustomResourceOptions &
  ({ id: pulumi.Input<pulumi.ID> } | { urn: pulumi.Input<pulumi.URN> });

/** Input properties used for looking up and filtering Subscription resources. */
export interface SubscriptionState {
  allowlist?: pulumi.Input<inputs.SubscriptionAllowlist>;
  cloudProvider?: pulumi.Input<inputs.SubscriptionCloudProvider>;
  creationPlan?: pulumi.Input<inputs.SubscriptionCreationPlan>;
  memoryStorage?: pulumi.Input<string>;
  name?: pulumi.Input<string>;
  paymentMethod?: pulumi.Input<string>;
  paymentMethodId?: pulumi.Input<string>;
}

/** The set of arguments for constructing a Subscription resource (schema `inputProperties`). */
export interface SubscriptionArgs {
  /** An allowlist object (security groups / CIDRs allowed to reach the databases). */
  allowlist?: pulumi.Input<inputs.SubscriptionAllowlist>;
  /** The cloud provider object. Replaces on change. */
  cloudProvider: pulumi.Input<inputs.SubscriptionCloudProvider>;
  /** The creation plan object (sizing of the planned databases). */
  creationPlan?: pulumi.Input<inputs.SubscriptionCreationPlan>;
  /** `ram` (default) or `ram-and-flash`. Replaces on change. */
  memoryStorage?: pulumi.Input<string>;
  /** A meaningful name to identify the subscription. */
  name?: pulumi.Input<string>;
  /** `credit-card` (default) or `marketplace`. Replaces on change. */
  paymentMethod?: pulumi.Input<string>;
  /** A payment method pre-defined in the account; required unless paying through a marketplace. */
  paymentMethodId?: pulumi.Input<string>;
}
