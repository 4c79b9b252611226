/**
 * Attempt deadlines without a timer or an AbortController per command (each costs microseconds, which a
 * client doing tens of thousands of commands a second notices): attempts started within the same `tickMs`
 * share one epoch, with one AbortController, and one interval timer sweeps the epochs while any exist.
 *
 * When an epoch's deadline passes, its signal (made only if an attempt asked for one: node-redis adds a
 * listener per command that carries one, which costs) aborts: node-redis rejects those of its commands
 * still queued with AbortError (never written). Those already written ignore the abort; if they still have no
 * reply `graceMs` later they are rejected with TimeoutError (outcome unknown). Deadlines are therefore
 * `timeoutMs` to `timeoutMs + tickMs` after an attempt starts.
 */
import { setMaxListeners } from "events";
import { TimeoutError } from "redis";

interface Pending {
  reject(e: Error): void;
}

interface Epoch {
  startedAt: number;
  abort?: AbortController;
  aborted: boolean;
  pending: Set<Pending>;
}

export interface DeadlineOptions {
  timeoutMs: number;
  tickMs?: number;
  graceMs?: number;
  now?: () => number;
}

export class Deadlines {
  private readonly epochs: Epoch[] = [];
  private timer?: NodeJS.Timeout;
  private readonly tickMs: number;
  private readonly graceMs: number;
  private readonly now: () => number;

  constructor(private readonly o: DeadlineOptions) {
    this.tickMs = o.tickMs ?? 50;
    this.graceMs = o.graceMs ?? 50;
    this.now = o.now ?? Date.now;
  }

  /**
   * Runs `send` (with the epoch's abort signal when `withSignal`); rejects with TimeoutError once the
   * deadline and grace pass.
   */
  run<T>(send: (signal: AbortSignal | undefined) => Promise<T>, withSignal = false): Promise<T> {
    const epoch = this.current();
    let signal: AbortSignal | undefined;
    if (withSignal) {
      if (!epoch.abort) {
        epoch.abort = new AbortController();
        setMaxListeners(0, epoch.abort.signal); // one listener per queued command of the epoch
      }
      signal = epoch.abort.signal;
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { reject };
      epoch.pending.add(entry);
      send(signal).then(
        (v) => {
          epoch.pending.delete(entry);
          resolve(v);
        },
        (e: unknown) => {
          epoch.pending.delete(entry);
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- node-redis's rejection, passed on as is
          reject(e);
        },
      );
    });
  }

  /** Expires what is due now (the interval timer calls this; tests call it with their clock). */
  sweep(): void {
    const now = this.now();
    while (this.epochs.length > 0) {
      const e = this.epochs[0];
      const due = e.startedAt + this.o.timeoutMs;
      if (now < due) break;
      if (!e.aborted) {
        e.aborted = true;
        e.abort?.abort();
      }
      if (e.pending.size > 0 && now < due + this.graceMs) break;
      for (const p of e.pending) p.reject(new TimeoutError("no reply within the command timeout"));
      e.pending.clear();
      this.epochs.shift();
    }
    if (this.epochs.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Attempts not yet settled (for tests and shutdown). */
  get inFlight(): number {
    return this.epochs.reduce((n, e) => n + e.pending.size, 0);
  }

  private current(): Epoch {
    const now = this.now();
    const last = this.epochs[this.epochs.length - 1];
    if (last && !last.aborted && now - last.startedAt < this.tickMs) return last;
    const epoch: Epoch = { startedAt: now, aborted: false, pending: new Set() };
    this.epochs.push(epoch);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.tickMs);
      this.timer.unref();
    }
    return epoch;
  }
}

/** The attempt's promise, or node-redis's TimeoutError after `ms` (the command may still be applied later). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError("no reply within the command timeout")), ms);
  });
  p.catch(() => undefined); // a late failure of an abandoned attempt is nobody's to handle
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}
