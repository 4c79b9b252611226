// Thin typed binding of the Redis Cloud Pulumi provider (`rediscloud`, schema v1.3.5), covering what
// this project uses: Subscription, SubscriptionDatabase, SubscriptionPeering, the provider resource and
// getPaymentMethod.
// It mirrors the layout and behaviour of the tfgen-generated TypeScript SDK, so a real `pulumi up`
// registers the same type tokens and installs the same plugin (see utilities.ts).

import * as pulumi from "@pulumi/pulumi";
import { getPaymentMethodToken } from "./getPaymentMethod";
import { Provider } from "./provider";
import { Subscription } from "./subscription";
import { SubscriptionDatabase } from "./subscriptionDatabase";
import { SubscriptionPeering } from "./subscriptionPeering";
import * as types from "./types";
import { version } from "./utilities";

export { getPaymentMethod, getPaymentMethodOutput, getPaymentMethodToken } from "./getPaymentMethod";
export type { GetPaymentMethodArgs, GetPaymentMethodOutputArgs, GetPaymentMethodResult } from "./getPaymentMethod";
export { Provider } from "./provider";
export type { ProviderArgs } from "./provider";
export { Subscription } from "./subscription";
export type { SubscriptionArgs, SubscriptionLookupOptions, SubscriptionState } from "./subscription";
export { SubscriptionDatabase } from "./subscriptionDatabase";
export type {
  SubscriptionDatabaseArgs,
  SubscriptionDatabaseLookupOptions,
  SubscriptionDatabaseState,
} from "./subscriptionDatabase";
export { SubscriptionPeering } from "./subscriptionPeering";
export type {
  SubscriptionPeeringArgs,
  SubscriptionPeeringLookupOptions,
  SubscriptionPeeringState,
} from "./subscriptionPeering";
export { pluginDownloadURL, resourceOptsDefaults, version, withInvokeDefaults, withPluginDefaults } from "./utilities";
export { types };

/** Pulumi package name of the provider. */
export const packageName = Provider.__pulumiType;

/** Type tokens of the resources (and the provider resource) this binding registers. */
export const tokens = {
  provider: `pulumi:providers:${Provider.__pulumiType}`,
  subscription: Subscription.__pulumiType,
  subscriptionDatabase: SubscriptionDatabase.__pulumiType,
  subscriptionPeering: SubscriptionPeering.__pulumiType,
  getPaymentMethod: getPaymentMethodToken,
} as const;

// Let the runtime rehydrate resources of this package from URNs (resource references, e.g. outputs of
// components), as generated SDKs do. Registering the same version twice is a no-op.
const _module: pulumi.runtime.ResourceModule = {
  version,
  construct: (name: string, type: string, urn: string): pulumi.Resource => {
    switch (type) {
      case tokens.subscription:
        return new Subscription(name, undefined, { urn });
      case tokens.subscriptionDatabase:
        return new SubscriptionDatabase(name, undefined, { urn });
      case tokens.subscriptionPeering:
        return new SubscriptionPeering(name, undefined, { urn });
      default:
        throw new Error(`unknown resource type ${type}`);
    }
  },
};
pulumi.runtime.registerResourceModule(packageName, "index/subscription", _module);
pulumi.runtime.registerResourceModule(packageName, "index/subscriptionDatabase", _module);
pulumi.runtime.registerResourceModule(packageName, "index/subscriptionPeering", _module);
pulumi.runtime.registerResourcePackage(packageName, {
  version,
  constructProvider: (name: string, type: string, urn: string): pulumi.ProviderResource => {
    if (type !== tokens.provider) {
      throw new Error(`unknown provider type ${type}`);
    }
    return new Provider(name, undefined, { urn });
  },
});
