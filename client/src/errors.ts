/**
 * Typed errors of redis-stack-client, and the two questions the client asks of any error node-redis
 * throws: can a topology refresh plus a retry fix it (`isTransientRedisError`), and could a write that
 * failed with it have reached Redis (`wasSent`).
 *
 * node-redis v6 (`@redis/client`, re-exported by `redis`) error classes do not set `name`, so they are
 * recognised by class: `instanceof` the classes `redis` exports, or, when the app has a second copy of
 * node-redis whose classes are different objects, by a constructor of that name in the prototype chain.
 */
import { isNativeError } from "node:util/types";
import {
  AbortError,
  ClientClosedError,
  ClientOfflineError,
  CommandTimeoutDuringMaintenanceError,
  ConnectionTimeoutError,
  ErrorReply,
  MaxCommandRedirectionsError,
  ReconnectStrategyError,
  RootNodesUnavailableError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
  WatchError,
} from "redis";

/**
 * Base of this package's errors. `cause` is kept as an own property (the lib target of an app may
 * predate ES2022's `ErrorOptions`), so logs and `util.inspect` still show what went wrong underneath.
 */
export abstract class RedisStackError extends Error {
  readonly cause: unknown;

  protected constructor(name: string, message: string, cause: unknown) {
    super(message);
    this.name = name;
    this.cause = cause;
  }
}

/**
 * The reconnect strategy stopped trying. node-redis wraps it in its own `ReconnectStrategyError`
 * (`originalError` is this, `socketError` the last socket error) and closes that connection for good.
 */
/**
 * An attempt given up because the node it waited on no longer serves its key: the Sentinels named another
 * primary, or the cluster moved the key's slot to a promoted replica while the command waited on a silent
 * master. To the retry policy a dropped connection (the command may have reached the old node), retried at
 * once on the new one.
 */
export class TopologyChangedError extends SocketClosedUnexpectedlyError {
  constructor(readonly to: string) {
    super();
    this.message = `the node serving this command changed (now ${to})`;
  }
}

export class ReconnectGaveUpError extends RedisStackError {
  constructor(
    readonly retries: number,
    cause: Error,
  ) {
    super("ReconnectGaveUpError", `gave up reconnecting after ${retries} retries (${describe(cause)})`, cause);
  }
}

/** `withRetry` ran out of time; `cause` is the last attempt's error, `attempts` counts every call of the op. */
export class RetryBudgetExceededError extends RedisStackError {
  constructor(
    readonly attempts: number,
    readonly elapsedMs: number,
    cause: unknown,
  ) {
    super(
      "RetryBudgetExceededError",
      `retry budget exceeded after ${attempts} attempts in ${Math.round(elapsedMs)} ms (${describe(cause)})`,
      cause,
    );
  }
}

/**
 * A write failed. `command` is the command's name only, upper-cased. Keys and values can be secret,
 * so the message holds the name, the caller's `reason` (a fixed phrase: never put arguments in it)
 * and the cause's class, but not the cause's message (Redis echoes arguments in some replies).
 */
export abstract class RedisStackWriteError extends RedisStackError {
  readonly command: string;
  abstract readonly applied: false | "unknown";

  protected constructor(name: string, command: string, what: string, reason: string, cause: unknown) {
    const commandName = commandNameOnly(command);
    const why = cause === undefined ? reason : `${reason} (${describe(cause)})`;
    super(name, `${commandName} ${what}: ${why}`, cause);
    this.command = commandName;
  }
}

/** The write definitely did not reach Redis (refused connection, client offline, outage buffer full...). */
export class WriteFailedError extends RedisStackWriteError {
  readonly applied = false as const;

  constructor(command: string, reason: string, cause?: unknown) {
    super("WriteFailedError", command, "was not applied", reason, cause);
  }
}

/**
 * The connection broke after the write may have been sent: Redis may or may not have applied it, so
 * only the app knows whether repeating it is safe (it is for SET, not for INCR or LPUSH).
 */
export class WriteOutcomeUnknownError extends RedisStackWriteError {
  readonly applied = "unknown" as const;

  constructor(command: string, reason: string, cause?: unknown) {
    super("WriteOutcomeUnknownError", command, "may or may not have been applied", reason, cause);
  }
}

/**
 * Reply errors a topology refresh then a retry can fix: a cluster mid-failover or mid-reshard, a
 * node still loading its dataset, a master demoted to replica. MOVED and ASK are followed by
 * node-redis's cluster client itself; they count here only if they escaped it.
 */
const TRANSIENT_REPLY = /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY|MOVED|ASK)(\s|$)/;

/**
 * Node socket error codes of a peer that is down, restarting or unreachable. EAI_AGAIN (DNS
 * temporarily failing) and ECONNABORTED are added to the usual six: a failover behind a DNS name
 * produces them too.
 */
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

/**
 * Codes that can only happen before a connection exists (DNS, or the SYN refused), so no command was
 * written on it. EHOSTUNREACH/ENETUNREACH are not among them: Linux also reports them on an
 * established connection whose retransmissions got ICMP errors back.
 */
const UNSENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * True for an error that a topology refresh and a retry (after a backoff) can fix: the transient
 * replies above; node-redis's connection errors (`SocketClosedUnexpectedlyError`,
 * `ConnectionTimeoutError`, `SocketTimeoutError`, `TimeoutError` and its maintenance subclasses,
 * `ClientOfflineError`, `RootNodesUnavailableError`, `MaxCommandRedirectionsError`, and
 * `ReconnectStrategyError`, because the cluster client drops a node client that gave up and makes a
 * fresh one on next use); the socket codes above, also inside an `AggregateError` (Node's
 * happy-eyeballs connect) when every error in it is transient.
 *
 * False for what a retry cannot fix or must not repeat: `ClientClosedError` and
 * `DisconnectsClientError` (the app closed or destroyed the client; a standalone client that gave up
 * reconnecting also answers ClientClosedError from then on), `AbortError` (the caller aborted),
 * `WatchError` (the app must re-read and re-run its transaction), a full command queue, other replies,
 * this package's own errors, and anything unrecognised.
 */
export function isTransientRedisError(e: unknown): boolean {
  if (!isError(e)) return false;
  const inner = aggregated(e);
  if (inner !== undefined) return inner.length > 0 && inner.every((x) => isTransientRedisError(x));
  if (is(e, ErrorReply, "ErrorReply")) return TRANSIENT_REPLY.test(e.message);
  if (
    is(e, SocketClosedUnexpectedlyError, "SocketClosedUnexpectedlyError") ||
    is(e, ConnectionTimeoutError, "ConnectionTimeoutError") ||
    is(e, SocketTimeoutError, "SocketTimeoutError") ||
    is(e, TimeoutError, "TimeoutError") ||
    is(e, ClientOfflineError, "ClientOfflineError") ||
    is(e, RootNodesUnavailableError, "RootNodesUnavailableError") ||
    is(e, MaxCommandRedirectionsError, "MaxCommandRedirectionsError") ||
    is(e, ReconnectStrategyError, "ReconnectStrategyError")
  ) {
    return true;
  }
  const code = errorCode(e);
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/**
 * Whether a command that failed with `e` reached Redis: `false` = it never did (a write failing so is
 * a `WriteFailedError`); `true` = Redis received it and answered with an error reply (surface the reply
 * as is; for a plain command it was not applied); `"unknown"` = it may have been written before the
 * connection broke (a `WriteOutcomeUnknownError`).
 *
 * `false`: ClientClosedError, ClientOfflineError, AbortError and a full queue (node-redis rejects
 * these before queueing), ConnectionTimeoutError (fires before the socket connects),
 * CommandTimeoutDuringMaintenanceError (only rejects commands still waiting to be written),
 * RootNodesUnavailableError, ReconnectStrategyError (the command was waiting for a connection that
 * never came), WatchError (the transaction did not run), ECONNREFUSED and DNS failures, this
 * package's WriteFailedError and ReconnectGaveUpError; an AggregateError whose errors are all `false`.
 *
 * `"unknown"`: SocketClosedUnexpectedlyError, SocketTimeoutError and SocketTimeoutDuringMaintenanceError,
 * DisconnectsClientError (destroy() also rejects commands awaiting their reply), ECONNRESET, EPIPE,
 * ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, and anything unrecognised. Plain `TimeoutError` too: node-redis's
 * per-command timeout only fires before the command is written, but the same class rejects in-flight
 * commands when a maintenance hand-off (Redis Enterprise `maintNotifications`) times out.
 *
 * `RetryBudgetExceededError` answers for its last error. It speaks for every attempt only if the
 * retry policy retried nothing but `false` errors, which is the rule for non-idempotent writes; if
 * earlier attempts may have reached Redis, fold them in with `mergeSent` (e.g. from `onRetry`).
 */
export function wasSent(e: unknown): boolean | "unknown" {
  if (!isError(e)) return "unknown";
  if (e instanceof WriteFailedError || e instanceof ReconnectGaveUpError) return false;
  if (e instanceof WriteOutcomeUnknownError) return "unknown";
  if (e instanceof RetryBudgetExceededError) return wasSent(e.cause);
  const inner = aggregated(e);
  if (inner !== undefined) return inner.length === 0 ? "unknown" : inner.map((x) => wasSent(x)).reduce(mergeSent);
  if (is(e, ErrorReply, "ErrorReply") || is(e, MaxCommandRedirectionsError, "MaxCommandRedirectionsError")) {
    return true;
  }
  if (
    is(e, ClientClosedError, "ClientClosedError") ||
    is(e, ClientOfflineError, "ClientOfflineError") ||
    is(e, AbortError, "AbortError") ||
    is(e, ConnectionTimeoutError, "ConnectionTimeoutError") ||
    is(e, CommandTimeoutDuringMaintenanceError, "CommandTimeoutDuringMaintenanceError") ||
    is(e, RootNodesUnavailableError, "RootNodesUnavailableError") ||
    is(e, ReconnectStrategyError, "ReconnectStrategyError") ||
    is(e, WatchError, "WatchError") ||
    e.message === "The queue is full"
  ) {
    return false;
  }
  const code = errorCode(e);
  if (code !== undefined && UNSENT_CODES.has(code)) return false;
  return "unknown";
}

/**
 * Combines the verdicts of several attempts of one write: any `"unknown"` wins, then `true` (Redis
 * answered at least once), and only all-`false` stays `false`.
 */
export function mergeSent(a: boolean | "unknown", b: boolean | "unknown"): boolean | "unknown" {
  if (a === "unknown" || b === "unknown") return "unknown";
  return a || b;
}

/**
 * An Error from any realm: Node's own socket errors are not `instanceof` the Error of a vm context
 * (jest runs tests in one), so native errors are recognised as such.
 */
function isError(e: unknown): e is Error {
  return e instanceof Error || isNativeError(e);
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * `instanceof`, or a class of the same name in the chain (another copy of node-redis). Not a type
 * guard: node-redis's classes have Error's shape, so TypeScript would narrow the "else" to never.
 */
function is(e: Error, cls: ErrorClass, name: string): boolean {
  return e instanceof cls || hasClass(e, name);
}

function hasClass(e: object, name: string): boolean {
  for (let p: unknown = Object.getPrototypeOf(e); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (constructorName(p) === name) return true;
  }
  return false;
}

function constructorName(prototype: unknown): string | undefined {
  const ctor: unknown = (prototype as { constructor?: unknown } | null)?.constructor;
  return typeof ctor === "function" && ctor.name !== "" ? ctor.name : undefined;
}

/** The errors of an AggregateError (Node's connect to several addresses), else undefined. */
function aggregated(e: Error): unknown[] | undefined {
  const errors: unknown = (e as { errors?: unknown }).errors;
  return hasClass(e, "AggregateError") && Array.isArray(errors) ? (errors as unknown[]) : undefined;
}

function errorCode(e: Error): string | undefined {
  const code: unknown = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** Class name and, for a socket error, its code: never the message, which may carry arguments. */
function describe(cause: unknown): string {
  if (!isError(cause)) return typeof cause;
  const cls = constructorName(Object.getPrototypeOf(cause)) ?? cause.name;
  const code = errorCode(cause);
  return code === undefined ? cls : `${cls} ${code}`;
}

/** The first word of `command`, upper-cased: the name even if a caller passed the whole command line. */
function commandNameOnly(command: string): string {
  return (command.trim().split(/\s+/, 1)[0] ?? "").toUpperCase();
}
