// Output object types of the Redis Cloud provider (schema v1.3.5), as a generated SDK's types/output.ts.
// Required members follow `language.nodejs.requiredOutputs` when the schema gives it, else `required`.

import * as outputs from "./output";

/** `rediscloud:index/SubscriptionAllowlist:SubscriptionAllowlist` */
export interface SubscriptionAllowlist {
  cidrs?: string[];
  securityGroupIds: string[];
}

/** `rediscloud:index/SubscriptionCloudProvider:SubscriptionCloudProvider` */
export interface SubscriptionCloudProvider {
  cloudAccountId?: string;
  provider?: string;
  regions: outputs.SubscriptionCloudProviderRegion[];
}

/** `rediscloud:index/SubscriptionCloudProviderRegion:SubscriptionCloudProviderRegion` */
export interface SubscriptionCloudProviderRegion {
  multipleAvailabilityZones?: boolean;
  networkingDeploymentCidr: string;
  networkingVpcId?: string;
  networks: outputs.SubscriptionCloudProviderRegionNetwork[];
  preferredAvailabilityZones: string[];
  region: string;
}

/** `rediscloud:index/SubscriptionCloudProviderRegionNetwork:SubscriptionCloudProviderRegionNetwork` */
export interface SubscriptionCloudProviderRegionNetwork {
  networkingDeploymentCidr: string;
  networkingSubnetId: string;
  networkingVpcId: string;
}

/** `rediscloud:index/SubscriptionCreationPlan:SubscriptionCreationPlan` */
export interface SubscriptionCreationPlan {
  averageItemSizeInBytes: number;
  memoryLimitInGb: number;
  modules: string[];
  quantity: number;
  replication: boolean;
  supportOssClusterApi?: boolean;
  throughputMeasurementBy: string;
  throughputMeasurementValue: number;
}

/** `rediscloud:index/SubscriptionDatabaseAlert:SubscriptionDatabaseAlert` */
export interface SubscriptionDatabaseAlert {
  name: string;
  value: number;
}

/** `rediscloud:index/SubscriptionDatabaseModule:SubscriptionDatabaseModule` */
export interface SubscriptionDatabaseModule {
  name: string;
}

/** `rediscloud:index/SubscriptionDatabaseRemoteBackup:SubscriptionDatabaseRemoteBackup` */
export interface SubscriptionDatabaseRemoteBackup {
  interval: string;
  storagePath: string;
  storageType: string;
  timeUtc?: string;
}
