// Input object types of the Redis Cloud provider (schema v1.3.5), as a generated SDK's types/input.ts.
// Required members follow each type's `required` list in the schema.

import * as pulumi from "@pulumi/pulumi";
import * as inputs from "./input";

/** `rediscloud:index/SubscriptionAllowlist:SubscriptionAllowlist` */
export interface SubscriptionAllowlist {
  /** Set of CIDR ranges that are allowed to access the databases of this subscription (own cloud account only). */
  cidrs?: pulumi.Input<pulumi.Input<string>[]>;
  /** Set of security groups that are allowed to access the databases of this subscription. */
  securityGroupIds: pulumi.Input<pulumi.Input<string>[]>;
}

/** `rediscloud:index/SubscriptionCloudProvider:SubscriptionCloudProvider` */
export interface SubscriptionCloudProvider {
  /** Cloud account identifier; 1 (the default) is Redis Labs' internal account. Replaces on change. */
  cloudAccountId?: pulumi.Input<string>;
  /** `AWS` (default) or `GCP`. Replaces on change. */
  provider?: pulumi.Input<string>;
  /** Deployment regions. Replaces on change. */
  regions: pulumi.Input<pulumi.Input<inputs.SubscriptionCloudProviderRegion>[]>;
}

/** `rediscloud:index/SubscriptionCloudProviderRegion:SubscriptionCloudProviderRegion` */
export interface SubscriptionCloudProviderRegion {
  /** Deploy across several availability zones of the region. Default false. Replaces on change. */
  multipleAvailabilityZones?: pulumi.Input<boolean>;
  /** Deployment CIDR; must be a /24. Replaces on change. */
  networkingDeploymentCidr: pulumi.Input<string>;
  /** Existing VPC to deploy into (a new one is created when omitted). Replaces on change. */
  networkingVpcId?: pulumi.Input<string>;
  /** Generated network configuration (computed by the provider). */
  networks?: pulumi.Input<pulumi.Input<inputs.SubscriptionCloudProviderRegionNetwork>[]>;
  /** Preferred availability zones. Replaces on change. */
  preferredAvailabilityZones?: pulumi.Input<pulumi.Input<string>[]>;
  /** Deployment region as named by the cloud provider. Replaces on change. */
  region: pulumi.Input<string>;
}

/** `rediscloud:index/SubscriptionCloudProviderRegionNetwork:SubscriptionCloudProviderRegionNetwork` */
export interface SubscriptionCloudProviderRegionNetwork {
  networkingDeploymentCidr?: pulumi.Input<string>;
  /** The subnet that the subscription deploys into. */
  networkingSubnetId?: pulumi.Input<string>;
  networkingVpcId?: pulumi.Input<string>;
}

/** `rediscloud:index/SubscriptionCreationPlan:SubscriptionCreationPlan` */
export interface SubscriptionCreationPlan {
  /** ram-and-flash only: estimated average item size in bytes. Default 1000. */
  averageItemSizeInBytes?: pulumi.Input<number>;
  /** Maximum memory of the largest planned database. */
  memoryLimitInGb: pulumi.Input<number>;
  /** Modules used by the databases of this subscription, e.g. `["RedisJSON"]`. */
  modules?: pulumi.Input<pulumi.Input<string>[]>;
  /** Planned number of databases (integer). */
  quantity: pulumi.Input<number>;
  replication: pulumi.Input<boolean>;
  supportOssClusterApi?: pulumi.Input<boolean>;
  /** `number-of-shards` or `operations-per-second`. */
  throughputMeasurementBy: pulumi.Input<string>;
  /** Throughput value for the chosen measurement (integer). */
  throughputMeasurementValue: pulumi.Input<number>;
}

/** `rediscloud:index/SubscriptionDatabaseAlert:SubscriptionDatabaseAlert` */
export interface SubscriptionDatabaseAlert {
  /** Alert name, e.g. `dataset-size`, `throughput-higher-than`, `latency`, `connections-limit`. */
  name: pulumi.Input<string>;
  /** Alert threshold (integer). */
  value: pulumi.Input<number>;
}

/** `rediscloud:index/SubscriptionDatabaseModule:SubscriptionDatabaseModule` */
export interface SubscriptionDatabaseModule {
  /** Module name, e.g. `RedisJSON`. Replaces on change. */
  name: pulumi.Input<string>;
}

/** `rediscloud:index/SubscriptionDatabaseRemoteBackup:SubscriptionDatabaseRemoteBackup` */
export interface SubscriptionDatabaseRemoteBackup {
  /** `every-x-hours`, x in 24, 12, 6, 4, 2, 1. */
  interval: pulumi.Input<string>;
  /** URI of the backup storage location. */
  storagePath: pulumi.Input<string>;
  /** Provider of the storage location. */
  storageType: pulumi.Input<string>;
  /** Hour of the backup (`every-12-hours` / `every-24-hours` only), e.g. `14:00`. */
  timeUtc?: pulumi.Input<string>;
}
