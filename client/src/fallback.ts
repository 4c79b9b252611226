/**
 * The opt-in in-memory fallback: while Redis is unreachable, reads can be served from the last values
 * this process saw (stale, with their age, for the app to judge) and writes can wait in a bounded
 * buffer to be replayed once Redis is back. Both are bounded by entries and bytes, so an outage
 * cannot grow the process without limit.
 */
import { performance } from "node:perf_hooks";
import { LRUCache } from "lru-cache";

export interface FallbackOptions {
  /** Most entries kept; the least recently remembered or recalled go first. */
  maxEntries: number;
  /** Most bytes kept (keys plus values, UTF-8 for strings); a single larger entry is not kept at all. */
  maxBytes: number;
  /** An entry older than this (since it was remembered) is never recalled, ms. */
  ttlMs: number;
  /** Monotonic clock, ms; performance.now by default. Injected by tests. */
  now?: () => number;
}

interface Remembered {
  value: Buffer | string;
  at: number;
}

/**
 * Last-seen values, recalled with their age. Built on lru-cache with its clock (`perf`) set to `now`,
 * read afresh on every check (`ttlResolution: 0`) so that an injected clock is obeyed exactly.
 */
export class FallbackCache {
  readonly #cache: LRUCache<string, Remembered>;
  readonly #now: () => number;

  constructor(o: FallbackOptions) {
    for (const [name, value] of [
      ["maxEntries", o.maxEntries],
      ["maxBytes", o.maxBytes],
      ["ttlMs", o.ttlMs],
    ] as const) {
      if (!Number.isInteger(value) || value <= 0)
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
    const now = o.now ?? (() => performance.now());
    this.#now = now;
    // lru-cache reads a start time of 0 as "no TTL": count time from 1 at construction instead.
    const origin = now();
    this.#cache = new LRUCache<string, Remembered>({
      max: o.maxEntries,
      maxSize: o.maxBytes,
      sizeCalculation: (entry, key) => Math.max(1, Buffer.byteLength(key, "utf8") + byteLength(entry.value)),
      ttl: o.ttlMs,
      ttlResolution: 0,
      perf: { now: () => now() - origin + 1 },
    });
  }

  /**
   * Records the value Redis holds for `key`; `null` (the key is gone) forgets it. Returns whether it is
   * kept: an entry bigger than maxBytes is not, and then the key's older value is forgotten too, so it
   * cannot be recalled in its place. A Buffer is copied: it may be a slice that pins a larger buffer.
   */
  remember(key: string, value: Buffer | string | null): boolean {
    if (value === null) {
      this.forget(key);
      return false;
    }
    const stored = typeof value === "string" ? value : Buffer.from(value);
    this.#cache.set(key, { value: stored, at: this.#now() });
    return this.#cache.has(key);
  }

  /**
   * The last value remembered for `key` and how old it is, or undefined if none is younger than ttlMs.
   * A recall counts as a use for the LRU order. Do not modify a returned Buffer: it is the cached one.
   */
  recall(key: string): { value: Buffer | string; ageMs: number } | undefined {
    const entry = this.#cache.get(key);
    if (entry === undefined) return undefined;
    return { value: entry.value, ageMs: Math.max(0, this.#now() - entry.at) };
  }

  forget(key: string): void {
    this.#cache.delete(key);
  }

  /** Entries kept, expired ones not yet swept included. */
  get size(): number {
    return this.#cache.size;
  }

  /** Bytes kept (keys plus values), as bounded by maxBytes. */
  get bytes(): number {
    return this.#cache.calculatedSize;
  }
}

/**
 * A write waiting for Redis to come back: its command name, the key that routes it in a cluster, and
 * its arguments as sent to node-redis (the name included, if that is how the caller sends them).
 */
export interface BufferedWrite {
  command: string;
  key?: string;
  args: (string | Buffer)[];
}

/** What a drain did: writes applied, then 1 failed (its error kept) if it stopped early, else 0. */
export interface DrainResult {
  applied: number;
  failed: number;
  error?: unknown;
}

export interface OutageWriteBufferOptions {
  maxEntries: number;
  /** Most bytes held (command name, key and arguments, UTF-8 for strings). */
  maxBytes: number;
}

/**
 * Writes made during an outage, replayed in order once Redis is back. Bounded: `push` refuses what
 * does not fit, and the caller fails that write (WriteFailedError), rather than dropping older ones.
 *
 * Replay is at least once: a write whose replay fails stays first in line, so one that failed after
 * reaching Redis is replayed again on the next drain. Buffer only writes that are safe to repeat
 * (SET, DEL, HSET...), or accept that.
 */
export class OutageWriteBuffer {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #ops: { op: BufferedWrite; bytes: number }[] = [];
  #bytes = 0;
  #draining: Promise<DrainResult> | undefined;

  constructor(o: OutageWriteBufferOptions) {
    for (const [name, value] of [
      ["maxEntries", o.maxEntries],
      ["maxBytes", o.maxBytes],
    ] as const) {
      if (!Number.isInteger(value) || value <= 0)
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
    this.#maxEntries = o.maxEntries;
    this.#maxBytes = o.maxBytes;
  }

  /**
   * Queues a write; false, and nothing queued, when it would exceed maxEntries or maxBytes. The
   * arguments are copied, so the caller may reuse its Buffers.
   */
  push(op: BufferedWrite): boolean {
    const bytes = [op.command, op.key ?? "", ...op.args].reduce((n, a) => n + byteLength(a), 0);
    if (this.length >= this.#maxEntries || this.#bytes + bytes > this.#maxBytes) return false;
    const args = op.args.map((a) => (typeof a === "string" ? a : Buffer.from(a)));
    const copy: BufferedWrite =
      op.key === undefined ? { command: op.command, args } : { command: op.command, key: op.key, args };
    this.#ops.push({ op: copy, bytes });
    this.#bytes += bytes;
    return true;
  }

  /**
   * Replays the queued writes in order with `apply`, including those pushed while it runs, until the
   * buffer is empty or one fails: that one and those after it stay queued for the next drain
   * (`failed` is then 1 and `error` what `apply` threw). Keep pushing while a drain runs, rather than
   * writing to Redis directly, or a new write can land before an older one. A drain called while one
   * is running returns that one (its `apply` is not used).
   */
  drain(apply: (op: BufferedWrite) => Promise<void>): Promise<DrainResult> {
    this.#draining ??= this.#drain(apply).finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  async #drain(apply: (op: BufferedWrite) => Promise<void>): Promise<DrainResult> {
    let applied = 0;
    for (let next = this.#ops[0]; next !== undefined; next = this.#ops[0]) {
      try {
        await apply(next.op);
      } catch (error) {
        return { applied, failed: 1, error };
      }
      this.#ops.shift();
      this.#bytes -= next.bytes;
      applied++;
    }
    return { applied, failed: 0 };
  }

  /** Writes queued. */
  get length(): number {
    return this.#ops.length;
  }

  /** Bytes queued, as bounded by maxBytes. */
  get bytes(): number {
    return this.#bytes;
  }
}

function byteLength(v: Buffer | string): number {
  return typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.length;
}
