// The `rediscloud:index/getPaymentMethod:getPaymentMethod` data source, as a generated SDK's function.

import * as pulumi from "@pulumi/pulumi";
import * as utilities from "./utilities";

/** Invoke token of the payment-method data source. */
export const getPaymentMethodToken = "rediscloud:index/getPaymentMethod:getPaymentMethod";

/**
 * Looks up the ID of a payment method configured in the Redis Cloud account, for
 * `Subscription.paymentMethodId`.
 */
export function getPaymentMethod(
  args?: GetPaymentMethodArgs,
  opts?: pulumi.InvokeOptions,
): Promise<GetPaymentMethodResult> {
  args = args || {};
  opts = utilities.withInvokeDefaults(opts);
  return pulumi.runtime.invoke(
    getPaymentMethodToken,
    {
      cardType: args.cardType,
      excludeExpired: args.excludeExpired,
      lastFourNumbers: args.lastFourNumbers,
    },
    opts,
  );
}

/** A collection of arguments for invoking getPaymentMethod. */
export interface GetPaymentMethodArgs {
  /** Type of card the payment method should be, such as `Visa`. */
  cardType?: string;
  /** Whether to exclude expired cards. Default `true`. */
  excludeExpired?: boolean;
  /** Last four numbers of the card of the payment method. */
  lastFourNumbers?: string;
}

/** A collection of values returned by getPaymentMethod. */
export interface GetPaymentMethodResult {
  readonly cardType: string;
  readonly excludeExpired?: boolean;
  /** The provider-assigned unique ID of the payment method. */
  readonly id: string;
  readonly lastFourNumbers: string;
}

/** Output-returning form of {@link getPaymentMethod}: accepts Inputs and honours `dependsOn`. */
export function getPaymentMethodOutput(
  args?: GetPaymentMethodOutputArgs,
  opts?: pulumi.InvokeOutputOptions,
): pulumi.Output<GetPaymentMethodResult> {
  args = args || {};
  opts = utilities.withInvokeDefaults(opts);
  return pulumi.runtime.invokeOutput<GetPaymentMethodResult>(
    getPaymentMethodToken,
    {
      cardType: args.cardType,
      excludeExpired: args.excludeExpired,
      lastFourNumbers: args.lastFourNumbers,
    },
    opts,
  );
}

/** A collection of arguments for invoking getPaymentMethod (Output form). */
export interface GetPaymentMethodOutputArgs {
  /** Type of card the payment method should be, such as `Visa`. */
  cardType?: pulumi.Input<string>;
  /** Whether to exclude expired cards. Default `true`. */
  excludeExpired?: pulumi.Input<boolean>;
  /** Last four numbers of the card of the payment method. */
  lastFourNumbers?: pulumi.Input<string>;
}
