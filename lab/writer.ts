/**
 * A write load that records every acknowledged write: run inside the lab's client namespace (or a host)
 * during a fault, then asked which acknowledged writes are missing. Config comes as JSON in the file named by
 * WRITER_CONFIG_FILE (or in WRITER_CONFIG itself);
 * the result is printed as JSON on stdout.
 *
 *   mode "write":  SET {tag}:<seq> <seq> one after another until `stopFile` exists or `durationMs` passes
 *   mode "verify": MGET the given seqs and report the missing ones
 *   mode "load":   SET <tag>:<i> <i> for i < count, spread over every slot (a data set to reshard)
 *   mode "check":  GET <tag>:<i> for i < count and report the missing ones
 *   mode "verify-keys": GET each of `pairs` ([key, value]) and report the keys that do not hold their value
 * `direct: true` talks to the first node only, without cluster redirections (a writer on an isolated master).
 * `client` picks the library mode "write" drives (ioredis unless told; redis-py is lab/writer.py, with the same
 * config and result); the other modes, being the outside judges, always use ioredis.
 */
import * as fs from "fs";
import Redis, { Cluster, RedisOptions } from "ioredis";
import { createClient } from "../client/src/index";

/** The client libraries a writer can drive: each one as an app would configure it (docs/clients.md). */
export const WRITER_CLIENTS = ["ioredis", "redis-stack-client", "redis-py"] as const;
export type WriterClient = (typeof WRITER_CLIENTS)[number];

export interface WriterConfig {
  mode: "write" | "verify" | "load" | "check" | "verify-keys";
  /** verify-keys: each acknowledged write as [key, the value it must hold]. */
  pairs?: Array<[string, string]>;
  /** load/check: how many keys. */
  count?: number;
  nodes: string[];
  user: string;
  password: string;
  ca?: string;
  tag: string;
  direct?: boolean;
  /** The Sentinel topology: the client asks these Sentinels (host:port) for the primary of `name`. */
  sentinel?: { name: string; sentinels: string[] };
  stopFile?: string;
  durationMs?: number;
  /** Pause after an acknowledged write (ms). */
  intervalMs?: number;
  seqs?: number[];
  /** mode "write": which client library writes (ioredis by default). */
  client?: WriterClient;
  /** redis-stack-client: the stack's env contract (its `env` output) the client reads, as an app's would. */
  contractEnv?: Record<string, string>;
}

export interface WriteResult {
  attempts: number;
  /** [seq, epoch ms when acknowledged] */
  acked: Array<[number, number]>;
  /** [epoch ms, message] of the first error of each unavailability window */
  errors: Array<[number, string]>;
  /** Unavailability windows: first failed write to the next acknowledged one. */
  gaps: Array<{ start: number; end: number; ms: number }>;
}

export interface VerifyResult {
  checked: number;
  missing: number[];
}

export interface VerifyKeysResult {
  checked: number;
  /** Keys that do not hold the value acknowledged for them (absent, or another value). */
  missing: string[];
}

/**
 * The longest time between two consecutive acknowledged writes: the worst stop of a write load that never
 * pauses by itself (a roll, a reboot, a reshard), whether or not a write failed meanwhile.
 */
export function longestSilence(acked: ReadonlyArray<readonly [number, number]>): number {
  let longest = 0;
  for (let i = 1; i < acked.length; i++) longest = Math.max(longest, acked[i][1] - acked[i - 1][1]);
  return longest;
}

/**
 * How long writes stopped around a fault at `faultAt` (epoch ms): from the last write acknowledged before it
 * to the first acknowledged after it. Undefined `firstAfterAt` (and NaN ms) when none came after.
 */
export function writeGap(
  acked: ReadonlyArray<readonly [number, number]>,
  faultAt: number,
): { lastBeforeAt: number; firstAfterAt?: number; ms: number } {
  const before = acked.filter(([, t]) => t <= faultAt).map(([, t]) => t);
  const after = acked.filter(([, t]) => t > faultAt).map(([, t]) => t);
  if (before.length === 0) throw new Error("writeGap: no write was acknowledged before the fault");
  const lastBeforeAt = Math.max(...before);
  const firstAfterAt = after.length > 0 ? Math.min(...after) : undefined;
  return { lastBeforeAt, firstAfterAt, ms: firstAfterAt === undefined ? Number.NaN : firstAfterAt - lastBeforeAt };
}

function client(cfg: WriterConfig): Redis | Cluster {
  const [host, port] = (cfg.nodes[0] ?? "").split(":");
  const base: RedisOptions = {
    username: cfg.user,
    password: cfg.password,
    tls: cfg.ca ? { ca: fs.readFileSync(cfg.ca) } : undefined,
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    retryStrategy: () => 100,
    // Closing a connection to a silent node sends a FIN nobody acknowledges: ioredis then waits
    // disconnectTimeout (default 2 s) before it destroys the socket and reconnects elsewhere.
    disconnectTimeout: 20,
  };
  if (cfg.direct) return new Redis({ ...base, host, port: Number(port) });
  if (cfg.sentinel) {
    const ca = cfg.ca ? fs.readFileSync(cfg.ca) : undefined;
    return new Redis({
      ...base,
      name: cfg.sentinel.name,
      sentinels: cfg.sentinel.sentinels.map((s) => ({ host: s.split(":")[0], port: Number(s.split(":")[1]) })),
      sentinelUsername: cfg.user,
      sentinelPassword: cfg.password,
      enableTLSForSentinelMode: ca !== undefined,
      sentinelTLS: ca ? { ca } : undefined,
      sentinelRetryStrategy: () => 100,
      // After +switch-master ioredis asks the Sentinels in turn, the one that named the dead primary first
      // (often on the dead instance): its connect and query give up in 250 ms, and the next try starts
      // 20 ms later, so the detour costs about 0.3 s (0.7 s with 500 ms and 100 ms).
      connectTimeout: 250,
      sentinelCommandTimeout: 250,
      retryStrategy: () => 20,
      // A silent primary (its instance dead) never closes the connection, so ioredis would keep sending to
      // it: follow the Sentinels' +switch-master instead, and reconnect to whichever primary they name.
      failoverDetector: true,
      // A primary that became a replica answers READONLY: reconnect and ask the Sentinels again.
      reconnectOnError: (err) => err.message.startsWith("READONLY"),
    });
  }
  return new Cluster(
    cfg.nodes.map((n) => ({ host: n.split(":")[0], port: Number(n.split(":")[1]) })),
    {
      redisOptions: base,
      clusterRetryStrategy: () => 100,
      retryDelayOnFailover: 50,
      retryDelayOnClusterDown: 50,
      retryDelayOnTryAgain: 50,
      slotsRefreshTimeout: 500,
      slotsRefreshInterval: 500,
      maxRedirections: 16,
    },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long a Sentinel writer's commands fail before it asks the Sentinels again by itself. */
const SENTINEL_REASK_MS = 5000;

/** A write that neither acknowledges nor fails within `ms` counts as failed (a cluster client may queue it). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** What the write loop needs of a client library. */
interface Setter {
  set(key: string, value: string): Promise<unknown>;
  /** How long one SET may take before it counts as failed (the library's own retries run inside it). */
  answerMs: number;
  /** Called on each failed SET with how long SETs have been failing. */
  failing(failingMs: number): void;
  close(): Promise<void>;
}

function ioredisSetter(cfg: WriterConfig): Setter {
  const r = client(cfg);
  r.on("error", () => undefined);
  let lastReconnect = 0;
  return {
    set: (key, value) => r.set(key, value),
    answerMs: 1000,
    failing(failingMs) {
      // Sentinel: the failover detector reconnects on the Sentinels' +switch-master. A safety net for a
      // message it missed (ioredis's command timeout alone never reconnects): after SENTINEL_REASK_MS of
      // failures ask the Sentinels again. Not sooner: a reconnect before the failover ends drops the
      // detector's subscriptions, and the retry loop through a dead Sentinel and the dead primary then
      // costs more than waiting for the message (5.1 s gaps with a 2 s re-ask). Only a ready connection
      // is dropped: disconnect() while ioredis is still asking the Sentinels ends the client for good
      // (status "end", no retry), and a client that ended is started again.
      const now = Date.now();
      if (!cfg.sentinel || cfg.direct || failingMs < SENTINEL_REASK_MS || now - lastReconnect < SENTINEL_REASK_MS)
        return;
      lastReconnect = now;
      if (r.status === "ready") r.disconnect(true);
      else if (r.status === "end") r.connect().catch(() => undefined);
    },
    close: async () => r.disconnect(),
  };
}

/**
 * The repository's client with its defaults, from the stack's env contract: nothing set for the fault. Its
 * own retries decide when a SET fails (its retry budget), so the loop waits longer than for ioredis.
 */
async function stackSetter(cfg: WriterConfig): Promise<Setter> {
  if (!cfg.contractEnv) throw new Error("writer: client redis-stack-client needs contractEnv");
  const c = await createClient(cfg.contractEnv);
  return {
    set: (key, value) => c.set(key, value),
    answerMs: 30_000,
    failing: () => undefined,
    close: () => c.close(),
  };
}

async function write(cfg: WriterConfig): Promise<WriteResult> {
  const client = cfg.client ?? "ioredis";
  if (client === "redis-py") throw new Error("writer: redis-py runs lab/writer.py, not this file");
  const r = client === "redis-stack-client" ? await stackSetter(cfg) : ioredisSetter(cfg);
  const result: WriteResult = { attempts: 0, acked: [], errors: [], gaps: [] };
  const deadline = Date.now() + (cfg.durationMs ?? 600000);
  let seq = 0;
  // The first write waits for the client to connect (not an outage): retry it until it lands.
  for (;;) {
    try {
      await within(r.set(`{${cfg.tag}}:0`, "0"), r.answerMs);
      break;
    } catch {
      await sleep(50);
    }
  }
  if (cfg.stopFile) fs.writeFileSync(`${cfg.stopFile}.ready`, "");
  let failingSince: number | undefined;
  let stopRequested = false;
  process.once("SIGTERM", () => {
    stopRequested = true;
  });
  while (!stopRequested && Date.now() < deadline && !(cfg.stopFile && fs.existsSync(cfg.stopFile))) {
    seq++;
    result.attempts++;
    try {
      await within(r.set(`{${cfg.tag}}:${seq}`, String(seq)), r.answerMs);
      const now = Date.now();
      result.acked.push([seq, now]);
      if (failingSince !== undefined) {
        result.gaps.push({ start: failingSince, end: now, ms: now - failingSince });
        failingSince = undefined;
      }
      if (cfg.intervalMs) await sleep(cfg.intervalMs);
    } catch (e) {
      const now = Date.now();
      if (failingSince === undefined) {
        failingSince = now;
        result.errors.push([now, (e as Error).message]);
      }
      r.failing(now - failingSince);
      await sleep(20);
    }
  }
  if (failingSince !== undefined) result.gaps.push({ start: failingSince, end: Number.NaN, ms: Number.NaN });
  await r.close();
  return result;
}

async function verify(cfg: WriterConfig): Promise<VerifyResult> {
  const r = client(cfg);
  r.on("error", () => undefined);
  const seqs = cfg.seqs ?? [];
  const missing: number[] = [];
  for (let i = 0; i < seqs.length; i += 500) {
    const chunk = seqs.slice(i, i + 500);
    let values: (string | null)[] | undefined;
    let lastError = "";
    for (let attempt = 0; attempt < 15 && values === undefined; attempt++) {
      try {
        values = await within(r.mget(...chunk.map((s) => `{${cfg.tag}}:${s}`)), 2000);
      } catch (e) {
        lastError = (e as Error).message;
        await sleep(200);
      }
    }
    if (values === undefined)
      throw new Error(`verify: the cluster did not answer MGET for 15 tries (last error: ${lastError})`);
    values.forEach((v, j) => {
      if (v !== String(chunk[j])) missing.push(chunk[j]);
    });
  }
  r.disconnect();
  return { checked: seqs.length, missing };
}

/** verify-keys: each key read on its own (they spread over every slot), answered or retried. */
async function verifyKeys(cfg: WriterConfig): Promise<VerifyKeysResult> {
  const r = client(cfg);
  r.on("error", () => undefined);
  const pairs = cfg.pairs ?? [];
  const missing: string[] = [];
  for (let i = 0; i < pairs.length; i += 500) {
    const chunk = pairs.slice(i, i + 500);
    let values: (string | null)[] | undefined;
    let lastError = "";
    for (let attempt = 0; attempt < 15 && values === undefined; attempt++) {
      try {
        values = await within(Promise.all(chunk.map(([key]) => r.get(key))), 5000);
      } catch (e) {
        lastError = (e as Error).message;
        await sleep(200);
      }
    }
    if (values === undefined) throw new Error(`verify-keys: no answer for 15 tries (last error: ${lastError})`);
    values.forEach((v, j) => {
      if (v !== chunk[j][1]) missing.push(chunk[j][0]);
    });
  }
  r.disconnect();
  return { checked: pairs.length, missing };
}

/** load / check: keys without a hash tag, so they land in every slot (each command answered or retried). */
async function loadOrCheck(cfg: WriterConfig): Promise<VerifyResult> {
  const r = client(cfg);
  r.on("error", () => undefined);
  const count = cfg.count ?? 0;
  const missing: number[] = [];
  const batch = 1000;
  for (let i = 0; i < count; i += batch) {
    const ids = Array.from({ length: Math.min(batch, count - i) }, (_, k) => i + k);
    let done = false;
    let lastError = "";
    for (let attempt = 0; attempt < 30 && !done; attempt++) {
      try {
        if (cfg.mode === "load") {
          await within(Promise.all(ids.map((id) => r.set(`${cfg.tag}:${id}`, String(id)))), 10000);
        } else {
          const values = await within(Promise.all(ids.map((id) => r.get(`${cfg.tag}:${id}`))), 10000);
          values.forEach((v, j) => {
            if (v !== String(ids[j])) missing.push(ids[j]);
          });
        }
        done = true;
      } catch (e) {
        lastError = (e as Error).message;
        await sleep(200);
      }
    }
    if (!done) throw new Error(`${cfg.mode}: keys ${i}-${i + batch - 1} kept failing (last error: ${lastError})`);
  }
  r.disconnect();
  return { checked: count, missing };
}

async function main(): Promise<void> {
  const file = process.env.WRITER_CONFIG_FILE;
  const cfg = JSON.parse(file ? fs.readFileSync(file, "utf8") : (process.env.WRITER_CONFIG ?? "{}")) as WriterConfig;
  const out =
    cfg.mode === "verify"
      ? await verify(cfg)
      : cfg.mode === "verify-keys"
        ? await verifyKeys(cfg)
        : cfg.mode === "load" || cfg.mode === "check"
          ? await loadOrCheck(cfg)
          : await write(cfg);
  // Exit explicitly: a cluster client can keep reconnect timers alive after disconnect(), and the
  // caller waits for this process to end.
  process.stdout.write(JSON.stringify(out), () => process.exit(0));
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`writer failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
