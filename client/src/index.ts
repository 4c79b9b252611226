/**
 * redis-stack-client: `createClient(env)` reads the stack's env contract and returns a node-redis client
 * (cluster, Sentinel or single) that verifies TLS against the contract's CA, applies credentials and TLS to every
 * node it discovers, reconnects with capped, jittered backoff, retries idempotent commands across a
 * failover after a topology refresh, and fails non-idempotent writes with a typed error rather than
 * dropping or repeating them. Two opt-in layers: an in-memory fallback for reads (and, if asked, buffered
 * writes) while Redis is unreachable, and gzip compression of large values (FORMAT.md).
 */
import {
  AbortError,
  ClientClosedError,
  createClient as createNodeClient,
  createCluster,
  DisconnectsClientError,
  RESP_TYPES,
  TimeoutError,
} from "redis";
import calculateSlot from "cluster-key-slot";
import { backoffDelay, BackoffOptions, reconnectStrategy } from "./backoff";
import { CodecOptions, decodeValue, encodeValue } from "./codec";
import { Contract, readContract } from "./contract";
import { ClientCounters, newCounters } from "./counters";
import {
  isTransientRedisError,
  RetryBudgetExceededError,
  TopologyChangedError,
  WriteFailedError,
  WriteOutcomeUnknownError,
  wasSent,
} from "./errors";
import { Deadlines, withTimeout } from "./deadlines";
import { FallbackCache, FallbackOptions, OutageWriteBuffer } from "./fallback";
import { withRetry } from "./retry";
import { sentinelBackend } from "./sentinel";

export { readContract, ContractError, CONTRACT_ENV } from "./contract";
export type { Contract } from "./contract";
export * from "./errors";
export { compressionRatio } from "./counters";
export type { ClientCounters } from "./counters";
export { COMPRESSION_MAGIC, decodeValue, encodeValue } from "./codec";

export interface FallbackLayerOptions extends FallbackOptions {
  /** During an outage: refuse writes at once (the default) or buffer them and replay them in order. */
  writes?: "fail-fast" | "buffer";
  /** Bounds of the write buffer (writes beyond them fail with WriteFailedError). */
  bufferMaxEntries?: number;
  bufferMaxBytes?: number;
}

export interface CreateClientOptions {
  /** How long an idempotent command (or a write that surely did not reach Redis) keeps retrying. */
  retryBudgetMs?: number;
  /**
   * Each attempt's limit, from queueing to the reply. A command still queued then (node-redis holds them
   * while it redials a node) is aborted, surely unsent, and retried. node-redis has no timeout for a
   * command already written, and a socket that keeps being written to never times out, so a frozen or
   * powered-off node would hold it: the attempt gives up instead (outcome unknown: idempotent commands
   * retry, others fail with WriteOutcomeUnknownError).
   */
  commandTimeoutMs?: number;
  /**
   * An idle connection silent this long is dropped and redialled; idle connections PING every
   * `pingIntervalMs` to stay below it.
   */
  socketTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Backoff between command retries and between reconnect attempts. */
  backoff?: Omit<BackoffOptions, "random">;
  /** Opt-in: serve reads from memory (flagged stale) while Redis is unreachable. */
  fallback?: FallbackLayerOptions;
  /** Opt-in: gzip values above a threshold (FORMAT.md); `{}` takes the defaults (1 KiB). */
  compression?: CodecOptions | Partial<CodecOptions>;
  /** node-redis's connection errors (they never reach a caller's promise); default: ignored. */
  onError?: (e: Error) => void;
}

export const CLIENT_DEFAULTS = {
  retryBudgetMs: 10_000,
  commandTimeoutMs: 1_000,
  socketTimeoutMs: 3_000,
  pingIntervalMs: 1_000,
  backoff: { baseMs: 50, capMs: 1_000 },
  /** How often an unreachable Redis is probed to end the outage. */
  probeMs: 500,
  compressionThresholdBytes: 1024,
} as const;

export interface ReadResult {
  value: string | null;
  /** True when the value came from the in-memory fallback because Redis was unreachable. */
  stale: boolean;
}

type Arg = string | Buffer;
type Reply = unknown;

/** The one thing that differs between a cluster and a single endpoint: how a command is sent. */
export interface Backend {
  /** `signal` aborts the command while it still waits to be written (node-redis: AbortError, never sent). */
  send(key: string | undefined, readonly: boolean, args: Arg[], signal?: AbortSignal): Promise<Reply>;
  /**
   * Re-read the topology. `suspectKey`: an attempt on this key's node got no reply in time, so that node
   * (silent, perhaps dead) is not asked: its connection still looks ready, and asking it would wait out
   * another timeout while its replica may already have taken over.
   */
  refresh(suspectKey?: string): Promise<void>;
  connect(): Promise<void>;
  close(): Promise<void>;
}

/**
 * How long one Sentinel may take to connect and answer (at most the contract's connect timeout). They are
 * asked all at once, so this is what a dead instance's Sentinel costs a failover.
 */
const SENTINEL_QUERY_TIMEOUT_MS = 500;

/** A degraded command waiting this long on its node has the slots re-read until it answers or moves. */
const SLOT_WATCH_MS = 250;

/**
 * Watches commands that wait on a node: every SLOT_WATCH_MS, while one has waited that long, the slots are
 * re-read (without asking the nodes waited on), and a command whose slot now has another master is given
 * up with TopologyChangedError, to be retried there at once. Without it, a command sent to a silent master
 * learnt of the promoted replica only when its attempt timed out: the write gap was the cluster's failover
 * rounded up to the next whole attempt timeout (1 s), 5.31 s p95 where the cluster took 4.47 s.
 */
export function slotWatch(o: {
  masterOf: (slot: number) => string | undefined;
  rediscover: (waitedOn: Set<string>) => Promise<unknown>;
  everyMs?: number;
}) {
  const everyMs = o.everyMs ?? SLOT_WATCH_MS;
  interface Waiting {
    slot: number;
    master: string;
    since: number;
    give: (e: Error) => void;
  }
  const waiting = new Set<Waiting>();
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  const tick = async () => {
    const now = Date.now();
    const late = [...waiting].filter((w) => now - w.since >= everyMs);
    if (ticking || late.length === 0) return;
    ticking = true;
    try {
      await o.rediscover(new Set(late.map((w) => w.master))).catch(() => undefined);
    } finally {
      ticking = false;
    }
    for (const w of late) {
      const master = o.masterOf(w.slot);
      if (master !== undefined && master !== w.master && waiting.delete(w)) w.give(new TopologyChangedError(master));
    }
  };
  return {
    run<T>(slot: number | undefined, send: () => Promise<T>): Promise<T> {
      const master = slot === undefined ? undefined : o.masterOf(slot);
      if (slot === undefined || master === undefined) return send();
      return new Promise<T>((resolve, reject) => {
        const w: Waiting = { slot, master, since: Date.now(), give: reject };
        waiting.add(w);
        if (!timer) {
          timer = setInterval(() => void tick(), everyMs);
          timer.unref();
        }
        send()
          .then(resolve, reject)
          .finally(() => {
            waiting.delete(w);
            if (waiting.size === 0 && timer) {
              clearInterval(timer);
              timer = undefined;
            }
          });
      });
    },
    /** Commands being watched (for tests). */
    get size(): number {
      return waiting.size;
    },
  };
}

/** How long after a transient failure attempts keep carrying abort signals (a failover lasts seconds). */
const DEGRADED_MS = 30_000;

const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

function nodeRedisBackend(c: Contract, o: CreateClientOptions, counters: ClientCounters): Backend {
  const onError = o.onError ?? (() => undefined);
  const reconnect = reconnectStrategy({ ...(o.backoff ?? CLIENT_DEFAULTS.backoff), maxRetries: c.maxRetries });
  const socket = {
    connectTimeout: c.connectTimeoutMs,
    socketTimeout: o.socketTimeoutMs ?? CLIENT_DEFAULTS.socketTimeoutMs,
    reconnectStrategy: (retries: number, cause: Error) => {
      counters.reconnects++;
      return reconnect(retries, cause);
    },
    // Verification is never off: the contract's CA, and node's default hostname/IP SAN check.
    ...(c.tls ? { tls: true as const, ca: c.caPem, rejectUnauthorized: true } : {}),
  };
  const auth = {
    username: c.username,
    password: c.password,
    pingInterval: o.pingIntervalMs ?? CLIENT_DEFAULTS.pingIntervalMs,
  };
  if (c.clusterMode) {
    const cluster = createCluster({
      rootNodes: c.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
      // node-redis builds the discovered nodes' connections from `defaults` only: credentials and TLS
      // must be here, or a discovered node is dialled without them.
      defaults: { ...auth, socket },
      maxCommandRedirections: 16,
      // Values as Buffers (compressed ones are bytes), set once: per-command options cost node-redis time.
      // No node-redis command timeout (its cluster default is 5 s, an AbortSignal.timeout per command):
      // the attempt deadlines above replace it.
      commandOptions: { typeMapping: BUFFERS, timeout: 0 },
      // Refresh the slots soon after a node starts reconnecting (node-redis waits 5 s by default).
      topologyRefreshOnReconnectionAttemptStrategy: 500,
    });
    cluster.on("error", onError);
    const masterOf = (slot: number): string | undefined => cluster._slots.slots[slot]?.master?.address;
    const watch = slotWatch({
      masterOf,
      // Re-read the slots without asking the nodes the watched commands wait on (silent, perhaps dead).
      rediscover: (waitedOn) => cluster._slots.rediscover(undefined, waitedOn),
    });
    return {
      // Degraded (a signal): the command is watched, and cut short if its slot moves while it waits.
      send: (key, readonly, args, abortSignal) =>
        abortSignal
          ? watch.run(key === undefined ? undefined : calculateSlot(key), () =>
              cluster.sendCommand(key, readonly, args, { abortSignal }),
            )
          : cluster.sendCommand(key, readonly, args),
      refresh: (suspectKey) => {
        const suspect = suspectKey === undefined ? undefined : cluster._slots.slots[calculateSlot(suspectKey)]?.master;
        return cluster._slots.rediscover(undefined, suspect ? new Set([suspect.address]) : undefined);
      },
      connect: async () => void (await cluster.connect()),
      close: async () => cluster.destroy(),
    };
  }
  if (c.sentinel) {
    // The primary is whichever node the Sentinels name: asked of them all at once, followed on their
    // +switch-master and re-asked before a retry (client/src/sentinel.ts). Reads go to the primary too:
    // a replica may lag, and this client promises read-your-writes.
    return sentinelBackend({
      masterName: c.sentinel.masterName,
      sentinels: c.sentinel.sentinels,
      node: { ...auth, socket, commandOptions: { typeMapping: BUFFERS } },
      sentinelAuth: { username: c.username, password: c.password, ...(c.tls ? { tls: { ca: c.caPem } } : {}) },
      queryTimeoutMs: Math.min(c.connectTimeoutMs, SENTINEL_QUERY_TIMEOUT_MS),
      onError,
      onMove: (how) => void (how === "announced" ? counters.primaryMovesAnnounced++ : counters.primaryMovesFound++),
    });
  }
  const client = createNodeClient({
    ...auth,
    socket: { ...socket, host: c.nodes[0].host, port: c.nodes[0].port },
    commandOptions: { typeMapping: BUFFERS },
  });
  client.on("error", onError);
  return {
    send: (_key, _readonly, args, abortSignal) =>
      abortSignal ? client.sendCommand(args, { abortSignal }) : client.sendCommand(args),
    refresh: async () => undefined,
    connect: async () => void (await client.connect()),
    close: async () => client.destroy(),
  };
}

const text = (v: Reply): string | null => {
  const d = decodeValue(v as Buffer | null, "string");
  return d === null ? null : String(d);
};

export class StackClient {
  readonly counters: ClientCounters = newCounters();
  readonly contract: Contract;
  private readonly backend: Backend;
  private readonly o: CreateClientOptions;
  private readonly deadlines: Deadlines;
  private readonly cache?: FallbackCache;
  private readonly buffer?: OutageWriteBuffer;
  private down = false;
  /** Keys with buffered writes not yet replayed, and how many. */
  private readonly pending = new Map<string, number>();
  private probe?: NodeJS.Timeout;
  private closed = false;

  constructor(contract: Contract, options: CreateClientOptions = {}, backend?: Backend) {
    this.contract = contract;
    this.o = options;
    this.backend = backend ?? nodeRedisBackend(contract, options, this.counters);
    this.deadlines = new Deadlines({ timeoutMs: options.commandTimeoutMs ?? CLIENT_DEFAULTS.commandTimeoutMs });
    if (options.fallback) {
      this.cache = new FallbackCache(options.fallback);
      if (options.fallback.writes === "buffer")
        this.buffer = new OutageWriteBuffer({
          maxEntries: options.fallback.bufferMaxEntries ?? 10_000,
          maxBytes: options.fallback.bufferMaxBytes ?? 16 * 1024 * 1024,
        });
    }
  }

  async connect(): Promise<this> {
    await this.backend.connect();
    return this;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probe) clearInterval(this.probe);
    await this.backend.close();
  }

  /** Whether the client currently treats Redis as unreachable (the fallback serves reads). */
  get unreachable(): boolean {
    return this.down;
  }

  async get(key: string): Promise<string | null> {
    return (await this.read(key)).value;
  }

  /** GET, with whether the value is stale (served by the fallback during an outage). */
  async read(key: string): Promise<ReadResult> {
    // A key with a buffered write not yet replayed: Redis still holds the older value, so the app's own
    // acknowledged write (remembered in memory) is the answer until the replay applies it.
    if ((this.down || this.pending.has(key)) && this.cache) {
      const hit = this.cache.recall(key);
      if (hit) return this.stale(hit.value);
    }
    try {
      const raw = await this.run(key, true, ["GET", key], true);
      const value = text(raw);
      this.cache?.remember(key, value);
      return { value, stale: false };
    } catch (e) {
      const hit = this.cache && this.transient(rootCause(e)) ? this.cache.recall(key) : undefined;
      if (hit) return this.stale(hit.value);
      throw e;
    }
  }

  /** SET (idempotent: retried across a failover). With compression, large values are stored gzip'd. */
  async set(key: string, value: string | Buffer, opts: { ttlSeconds?: number } = {}): Promise<void> {
    const stored = this.encode(value);
    const args: Arg[] = ["SET", key, stored];
    if (opts.ttlSeconds !== undefined) args.push("EX", String(opts.ttlSeconds));
    await this.write(key, args, true);
    this.cache?.remember(key, typeof value === "string" ? value : value.toString("utf8"));
  }

  async del(key: string): Promise<void> {
    await this.write(key, ["DEL", key], true);
    this.cache?.forget(key);
  }

  /** INCRBY: not idempotent, so it is never repeated once it may have reached Redis. */
  async incrBy(key: string, by: number): Promise<number> {
    return Number(await this.write(key, ["INCRBY", key, String(by)], false));
  }

  /** Any command: `idempotent` decides whether it may be repeated after it may have been applied. */
  async command(args: string[], o: { key?: string; readonly?: boolean; idempotent: boolean }): Promise<Reply> {
    return this.run(o.key, o.readonly ?? false, args, o.idempotent);
  }

  private stale(value: Buffer | string): ReadResult {
    this.counters.fallbackHits++;
    this.counters.staleReads++;
    return { value: typeof value === "string" ? value : value.toString("utf8"), stale: true };
  }

  private encode(value: string | Buffer): string | Buffer {
    if (!this.o.compression) return value;
    const r = encodeValue(value, {
      thresholdBytes: CLIENT_DEFAULTS.compressionThresholdBytes,
      ...this.o.compression,
    });
    if (r.compressed) {
      this.counters.compressedValues++;
      this.counters.compressionInBytes += r.inBytes;
      this.counters.compressionOutBytes += r.outBytes;
    }
    return r.stored;
  }

  private async write(key: string, args: Arg[], idempotent: boolean): Promise<Reply> {
    const command = String(args[0]);
    if (this.down && this.cache) {
      if (this.buffer) return this.enqueue(key, args, command);
      throw new WriteFailedError(command, "Redis is unreachable (fallback: writes fail fast)");
    }
    try {
      return await this.run(key, false, args, idempotent);
    } catch (e) {
      if (this.buffer && this.down && (idempotent || e instanceof WriteFailedError))
        return this.enqueue(key, args, command);
      throw e;
    }
  }

  private enqueue(key: string, args: Arg[], command: string): Reply {
    if (!this.buffer?.push({ command, key, args }))
      throw new WriteFailedError(command, "Redis is unreachable and the write buffer is full");
    this.counters.bufferedWrites++;
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    return null;
  }

  /** One command through the retry policy; marks the outage when the budget runs out on a dead connection. */
  private async run(key: string | undefined, readonly: boolean, args: Arg[], idempotent: boolean): Promise<Reply> {
    // The common case first, without the retry machinery's allocations.
    try {
      const reply = await this.attempt(key, readonly, args);
      if (this.down) this.markUp();
      return reply;
    } catch (first) {
      return this.retry(first, key, readonly, args, idempotent);
    }
  }

  /** After a first attempt failed with `first`: the retry policy, within the budget from now. */
  private async retry(
    first: unknown,
    key: string | undefined,
    readonly: boolean,
    args: Arg[],
    idempotent: boolean,
  ): Promise<Reply> {
    const budgetMs = this.o.retryBudgetMs ?? CLIENT_DEFAULTS.retryBudgetMs;
    const timeout = this.o.commandTimeoutMs ?? CLIENT_DEFAULTS.commandTimeoutMs;
    const command = String(args[0]);
    let failed: unknown = first;
    const op = () => {
      if (failed === undefined) return this.attempt(key, readonly, args);
      const e = failed;
      failed = undefined;
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the first attempt's own rejection
      return Promise.reject(e);
    };
    try {
      const reply = await withRetry(op, {
        budgetMs,
        backoff: this.o.backoff ?? CLIENT_DEFAULTS.backoff,
        // A command that may have been applied is repeated only when repeating it is harmless. One that
        // never reached Redis, or that Redis refused (READONLY, TRYAGAIN, CLUSTERDOWN...), was not applied.
        isRetryable: (e) => this.transient(e) && (idempotent || wasSent(e) !== "unknown"),
        // A refresh asks the nodes for the slots: bounded like an attempt, or a frozen node would hold
        // the retry loop past its budget.
        beforeRetry: async (e) => {
          // The client has just learnt where the command goes now: nothing to re-read.
          if (rootCause(e) instanceof TopologyChangedError) return;
          const silent = key !== undefined && rootCause(e) instanceof TimeoutError;
          await withTimeout(this.backend.refresh(silent ? key : undefined), timeout).catch(() => undefined);
        },
        // A timed-out attempt already waited `timeout`, and a command cut off by a move to the new
        // primary has somewhere to go: refresh and retry at once. With the backoff on top (up to 1 s by
        // then), the client found a promoted replica up to 1.4 s after the cluster had converged
        // (bench:failover, silent instance loss).
        retryAtOnce: (e) => rootCause(e) instanceof TimeoutError || rootCause(e) instanceof TopologyChangedError,
        onRetry: () => {
          this.counters.retries++;
          this.degradedUntil = Date.now() + DEGRADED_MS;
        },
      });
      this.markUp();
      return reply;
    } catch (e) {
      const cause = rootCause(e);
      if (e instanceof RetryBudgetExceededError && this.transient(cause)) this.markDown();
      if (readonly || !this.transient(cause)) throw e;
      if (wasSent(cause) === "unknown")
        throw new WriteOutcomeUnknownError(command, "the connection failed after the command was sent", cause);
      throw new WriteFailedError(command, `not applied within the ${budgetMs} ms retry budget`, cause);
    }
  }

  /**
   * Transient, or a node connection node-redis closed by itself: a cluster node whose reconnects ran out
   * (a dead master) is destroyed and its queued commands fail with ClientClosedError or
   * DisconnectsClientError; the cluster then dials a fresh one. Only our own close() is final.
   */
  private transient(e: unknown): boolean {
    return (
      isTransientRedisError(e) ||
      // Our own attempt's abort: the command was never written.
      e instanceof AbortError ||
      (!this.closed && (e instanceof ClientClosedError || e instanceof DisconnectsClientError))
    );
  }

  /**
   * One attempt, limited to `timeout`: a command still queued then (node-redis holds commands while it
   * redials a node) is aborted and surely not sent (AbortError: retryable even when not idempotent); one
   * already written that has no reply a moment later gives up with TimeoutError (outcome unknown).
   */
  private attempt(key: string | undefined, readonly: boolean, args: Arg[]): Promise<Reply> {
    // Abort signals only while degraded: node-redis adds and removes a listener per command that carries
    // one, a cost every command would pay for what matters only around a failure.
    const degraded = Date.now() < this.degradedUntil;
    return this.deadlines.run((signal) => this.backend.send(key, readonly, args, signal), degraded);
  }

  /** Until when attempts carry abort signals: DEGRADED_MS after the last transient failure. */
  private degradedUntil = 0;

  private markDown(): void {
    if (this.down || this.closed || !this.cache) return;
    this.down = true;
    this.probe = setInterval(() => void this.probeOnce(), CLIENT_DEFAULTS.probeMs);
    this.probe.unref();
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = false;
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
    void this.replay();
  }

  private probing = false;
  private async probeOnce(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const timeout = this.o.commandTimeoutMs ?? CLIENT_DEFAULTS.commandTimeoutMs;
      await withTimeout(this.backend.refresh(), timeout).catch(() => undefined);
      await this.attempt(undefined, true, ["PING"]);
      this.markUp();
    } catch {
      // still down
    } finally {
      this.probing = false;
    }
  }

  /** Buffered writes, in order; one that fails stays first in the buffer for the next recovery. */
  private async replay(): Promise<void> {
    if (!this.buffer || this.buffer.length === 0) return;
    const r = await this.buffer.drain(async (op) => {
      await this.run(op.key, false, op.args, true);
      const key = op.key ?? "";
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left > 0) this.pending.set(key, left);
      else this.pending.delete(key);
    });
    this.counters.replayedWrites += r.applied;
  }

  /** Resolves once every buffered write has been replayed (or Redis went away again). */
  async flushed(timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.buffer && this.buffer.length > 0 && Date.now() < until) {
      if (!this.down) await this.replay();
      await new Promise((r) => setTimeout(r, 50));
    }
    return !this.buffer || this.buffer.length === 0;
  }
}

function rootCause(e: unknown): unknown {
  return e instanceof RetryBudgetExceededError ? e.cause : e;
}

/** Reads the contract from `env` (default: this process's) and connects. */
export async function createClient(
  env: Record<string, string | undefined> = process.env,
  options: CreateClientOptions = {},
): Promise<StackClient> {
  return new StackClient(readContract(env), options).connect();
}

export { backoffDelay };
