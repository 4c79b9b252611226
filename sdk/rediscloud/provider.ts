// The `rediscloud` provider resource (`pulumi:providers:rediscloud`), shaped like a generated provider.ts.

import * as pulumi from "@pulumi/pulumi";
import * as utilities from "./utilities";

/**
 * The provider type for the rediscloud package. By default, resources use package-wide configuration
 * settings (`rediscloud:apiKey`, ...); an explicit Provider instance customises them per resource.
 */
export class Provider extends pulumi.ProviderResource {
  /** @internal */
  public static readonly __pulumiType = "rediscloud";

  /**
   * Returns true if the given object is an instance of Provider. This is designed to work even when
   * multiple copies of the Pulumi SDK have been loaded into the same process.
   */
  public static isInstance(obj: unknown): obj is Provider {
    if (obj === undefined || obj === null) {
      return false;
    }
    return (obj as { __pulumiType?: unknown })["__pulumiType"] === "pulumi:providers:" + Provider.__pulumiType;
  }

  /** The Redis Cloud API key (secret). */
  declare public readonly apiKey: pulumi.Output<string | undefined>;
  /** The Redis Cloud API secret key (secret). */
  declare public readonly secretKey: pulumi.Output<string | undefined>;
  /** The Redis Cloud API URL; the provider defaults to `https://api.redislabs.com/v1`. */
  declare public readonly url: pulumi.Output<string | undefined>;

  /**
   * Create a Provider resource with the given unique name, arguments, and options.
   *
   * @param name The _unique_ name of the resource.
   * @param args The arguments to use to populate this resource's properties.
   * @param opts A bag of options that control this resource's behavior.
   */
  constructor(name: string, args?: ProviderArgs, opts?: pulumi.ResourceOptions) {
    const resourceInputs: pulumi.Inputs = {};
    opts = opts || {};
    {
      // Defaults from the environment as declared by the schema's `defaultInfo`; both keys are
      // secret in the schema, so they are wrapped whatever their source.
      const apiKey = args?.apiKey ?? utilities.getEnv("REDISCLOUD_API_KEY");
      const secretKey = args?.secretKey ?? utilities.getEnv("REDISCLOUD_SECRET_KEY");
      resourceInputs["apiKey"] = apiKey ? pulumi.secret(apiKey) : undefined;
      resourceInputs["secretKey"] = secretKey ? pulumi.secret(secretKey) : undefined;
      resourceInputs["url"] = args?.url;
    }
    opts = pulumi.mergeOptions(utilities.resourceOptsDefaults(), opts);
    const secretOpts: pulumi.CustomResourceOptions = { additionalSecretOutputs: ["apiKey", "secretKey"] };
    opts = pulumi.mergeOptions(opts, secretOpts);
    super(Provider.__pulumiType, name, resourceInputs, opts);
  }
}

/** The set of arguments for constructing a Provider resource (schema `config.variables`). */
export interface ProviderArgs {
  /** The Redis Cloud API key (secret). Defaults to `$REDISCLOUD_API_KEY`. */
  apiKey?: pulumi.Input<string>;
  /** The Redis Cloud API secret key (secret). Defaults to `$REDISCLOUD_SECRET_KEY`. */
  secretKey?: pulumi.Input<string>;
  /** The Redis Cloud API URL; the provider itself defaults to `https://api.redislabs.com/v1`. */
  url?: pulumi.Input<string>;
}
