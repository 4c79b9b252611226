/**
 * Retries an operation through a failover within a time budget: the caller says which errors are
 * worth a retry, and refreshes the cluster topology in `beforeRetry`.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleepMs } from "node:timers/promises";
import { BackoffOptions, backoffDelay } from "./backoff";
import { RetryBudgetExceededError } from "./errors";

export interface RetryOptions {
  /**
   * Time after the first attempt started within which retries may start, ms. A retry's backoff is
   * cut short to start by then; an attempt failing at or after it ends the retries. The attempts
   * themselves are not interrupted: bound them with node-redis's command timeout.
   */
  budgetMs: number;
  backoff: BackoffOptions;
  /**
   * Which errors get a retry (e.g. `isTransientRedisError`). For a non-idempotent write, also require
   * `wasSent(e) === false`: a retry after an outcome-unknown failure could apply it twice.
   */
  isRetryable: (e: unknown) => boolean;
  /**
   * Runs after the backoff, right before retry `attempt` (1 = first retry): refresh the topology here.
   * Its own failure is ignored: the retry that follows finds out whether the cluster is back.
   */
  beforeRetry?: (e: unknown, attempt: number) => Promise<void>;
  /**
   * Errors after which the retry starts without a backoff. An attempt that timed out has already waited
   * its whole timeout: the node is most likely silent (a dead instance), and waiting more only delays
   * the refresh that finds its replica promoted. The attempts themselves still pace such retries.
   */
  retryAtOnce?: (e: unknown) => boolean;
  /** Told of each retry before its backoff starts: `attempt` as for beforeRetry, `delayMs` the backoff. */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
  /** Monotonic clock, ms; performance.now by default. */
  now?: () => number;
  /** Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs `op` until it succeeds, fails with an error `isRetryable` rejects (rethrown unchanged, at
 * once), or fails when the budget is spent (a `RetryBudgetExceededError` whose `cause` is that last
 * error and `attempts` the number of calls of `op`). Retry n (from 1) waits `backoffDelay(n - 1)`,
 * clipped so that it never sleeps past the budget, then calls `beforeRetry`.
 */
export async function withRetry<T>(op: () => Promise<T>, o: RetryOptions): Promise<T> {
  if (!(o.budgetMs >= 0)) throw new RangeError(`budgetMs must be >= 0, got ${o.budgetMs}`);
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? ((ms: number) => sleepMs(ms).then(() => undefined));
  const start = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!o.isRetryable(e)) throw e;
      const elapsed = now() - start;
      if (elapsed >= o.budgetMs) throw new RetryBudgetExceededError(attempt, elapsed, e);
      const delay = o.retryAtOnce?.(e) ? 0 : Math.min(backoffDelay(attempt - 1, o.backoff), o.budgetMs - elapsed);
      o.onRetry?.(e, attempt, delay);
      if (delay > 0) await sleep(delay);
      if (o.beforeRetry) {
        try {
          await o.beforeRetry(e, attempt);
        } catch {
          // The retry below reports the cluster's state better than the refresh did.
        }
      }
    }
  }
}
