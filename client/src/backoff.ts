/**
 * Capped exponential backoff with full jitter, for command retries and node-redis reconnects.
 * Full jitter (a uniform draw from [0, ceiling)) spreads the clients of a whole fleet that lost the
 * same node at the same moment, instead of having them all knock again at 2^n * base together.
 */
import { ReconnectGaveUpError } from "./errors";

export interface BackoffOptions {
  /** Ceiling of the first delay (attempt 0), ms. */
  baseMs: number;
  /** Largest ceiling, ms, however many attempts have been made. */
  capMs: number;
  /** Uniform draw from [0, 1); Math.random by default. Injected by tests. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (counted from 0), in whole ms:
 * `floor(random() * min(capMs, baseMs * 2^attempt))`. Always finite: a huge, negative or non-integer
 * attempt is clamped (huge = the cap), and so is a `random` straying outside [0, 1].
 * Throws a RangeError for options that are not finite non-negative numbers.
 */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  checkOptions(o);
  // NaN and negatives count as 0. 2^1024 is Infinity (and 0 * Infinity NaN), and by 2^1023 the cap
  // has long won for any real base.
  const n = attempt > 0 ? Math.min(Math.floor(attempt), 1023) : 0;
  const ceiling = Math.min(o.capMs, o.baseMs * 2 ** n);
  const r = (o.random ?? Math.random)();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(unit * ceiling);
}

/**
 * A node-redis v6 `socket.reconnectStrategy`. node-redis calls it as `(retries, cause)` after every
 * failed connect and when a ready connection drops, `retries` being the reconnect attempts already
 * made in this outage (0 on the first call). A number is the delay before the next attempt; an Error
 * (or `false`) stops reconnecting for good: node-redis wraps the Error in its `ReconnectStrategyError`,
 * emits `terminated`, and rejects the connection's queued commands. Here the delay is
 * `backoffDelay(retries)` for the first `maxRetries` calls, then a `ReconnectGaveUpError`
 * (`maxRetries: 0` = never reconnect). Unlike node-redis's default strategy it also reconnects after
 * a `SocketTimeoutError`: a master that hangs is one a failover is about to replace.
 * Options are checked here, at creation, since node-redis hides an exception thrown by a strategy
 * (it falls back to its default one).
 */
export function reconnectStrategy(
  o: BackoffOptions & { maxRetries: number },
): (retries: number, cause: Error) => number | Error {
  checkOptions(o);
  if (!Number.isInteger(o.maxRetries) || o.maxRetries < 0) {
    throw new RangeError(`maxRetries must be a non-negative integer, got ${o.maxRetries}`);
  }
  return (retries, cause) =>
    retries < o.maxRetries ? backoffDelay(retries, o) : new ReconnectGaveUpError(retries, cause);
}

function checkOptions(o: BackoffOptions): void {
  for (const [name, value] of [
    ["baseMs", o.baseMs],
    ["capMs", o.capMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
    }
  }
}
