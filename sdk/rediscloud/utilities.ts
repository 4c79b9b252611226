// Shared helpers of the Redis Cloud binding (the counterpart of a generated SDK's utilities.ts).
//
// A generated SDK reads its version from package.json at runtime; this binding pins it as a constant
// instead, because the package is consumed as TypeScript source ("main": "index.ts") and the value
// must match the `pulumi` block of package.json (version 1.3.5, plugin server below).

import * as pulumi from "@pulumi/pulumi";

/** Version of the Redis Cloud provider plugin this binding targets (schema v1.3.5). */
export const version = "1.3.5";

/** Where the Pulumi engine downloads the `rediscloud` resource plugin from. */
export const pluginDownloadURL = "github://api.github.com/RedisLabs/pulumi-rediscloud";

/** First non-empty value among the given environment variables (provider config defaults). */
export function getEnv(...vars: string[]): string | undefined {
  for (const v of vars) {
    const value = process.env[v];
    if (value) {
      return value;
    }
  }
  return undefined;
}

/** The options every resource and invoke of this package carries by default. */
export function resourceOptsDefaults(): { version: string; pluginDownloadURL: string } {
  return { version, pluginDownloadURL };
}

/**
 * Merges the plugin defaults (version, pluginDownloadURL) under the caller's options, exactly as the
 * resources of this package do, so a real `pulumi up` installs the right plugin. Options given by the
 * caller win (a caller may pin another version or a mirror URL).
 */
export function withPluginDefaults(opts?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return pulumi.mergeOptions(resourceOptsDefaults(), opts ?? {});
}

/**
 * Same as {@link withPluginDefaults}, for invoke options (data sources). Generated SDKs run invoke
 * options through `pulumi.mergeOptions` as well; it also concatenates `dependsOn` correctly.
 */
export function withInvokeDefaults(opts?: pulumi.InvokeOutputOptions): pulumi.InvokeOutputOptions {
  return pulumi.mergeOptions(resourceOptsDefaults(), opts ?? {});
}
