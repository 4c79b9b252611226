/**
 * An app on the lab's client network: it reads the stack's env contract from its environment, opens
 * redis-stack-client's `createClient()` and runs a steady paced load for LOAD_SECONDS, then checks what it
 * was told against what Redis holds. Run by the client scenarios (tests/integration/clientScenarios.ts)
 * inside the client namespace, while the test kills, fails over or freezes nodes.
 *
 * Each round: SET k<i> (idempotent write: retried across a failover; every round its own key, so each
 * acknowledged write can be checked on its own), GET of an acknowledged key (read; the value must be the
 * one acknowledged, or a stale one flagged so by the fallback), INCRBY counter (not idempotent: it either
 * succeeds or fails with a typed error). Prints one JSON line: every op's [ms since start, latency ms, kind,
 * outcome], every acknowledged SET, the client's counters and what the load itself saw. Whether Redis
 * still holds the acknowledged writes is for an outside client to say (lab/clusterLab.ts missingKeys).
 *
 * env: the contract (REDIS_URL, ...), LOAD_SECONDS, LOAD_RATE (rounds/s), LOAD_OPTIONS (createClient's
 * options as JSON), LOAD_PREFIX (a hash tag or key prefix for this run).
 */
import {
  createClient,
  CreateClientOptions,
  WriteFailedError,
  WriteOutcomeUnknownError,
  StackClient,
} from "../client/src/index";

export type OpKind = "set" | "get" | "incr";
export type Outcome = "ok" | "stale" | "failed" | "unknown" | "error";

export interface LoadReport {
  /** Epoch ms the load started: every other time here is ms since then. */
  startedAt: number;
  rounds: number;
  /** [ms since the load started, latency ms, kind, outcome] */
  ops: [number, number, OpKind, Outcome][];
  errors: string[];
  counters: Record<string, number>;
  /** Every acknowledged SET: [key, value, ms since the load started when acknowledged]. */
  acked: Array<[string, string, number]>;
  verify: {
    /** Fresh (not stale) GETs that did not return the value acknowledged for their key. */
    wrongReads: number;
    /** The INCRBY counter's key: an outside client reads it. */
    counterKey: string;
    incrAcked: number;
    incrUnknown: number;
  };
}

async function main(): Promise<void> {
  const seconds = Number(process.env.LOAD_SECONDS ?? "10");
  const rate = Number(process.env.LOAD_RATE ?? "50");
  const prefix = process.env.LOAD_PREFIX ?? "load";
  const options = JSON.parse(process.env.LOAD_OPTIONS ?? "{}") as CreateClientOptions;
  const client: StackClient = await createClient(process.env, options);
  const acked = new Map<string, string>();
  const ackedList: LoadReport["acked"] = [];
  const ops: LoadReport["ops"] = [];
  const errors: string[] = [];
  const sampled = new Map<string, number>();
  let incrAcked = 0;
  let incrUnknown = 0;
  let wrongReads = 0;
  const counterKey = `${prefix}:counter`;
  await client.del(counterKey);
  const startedAt = Date.now();

  const timed = async (kind: OpKind, fn: () => Promise<Outcome>): Promise<void> => {
    const t0 = Date.now();
    let outcome: Outcome;
    try {
      outcome = await fn();
    } catch (e) {
      outcome = e instanceof WriteOutcomeUnknownError ? "unknown" : e instanceof WriteFailedError ? "failed" : "error";
      // The first few of each kind and outcome, with their causes.
      const sample = `${kind}/${outcome}`;
      if ((sampled.get(sample) ?? 0) < 3) {
        sampled.set(sample, (sampled.get(sample) ?? 0) + 1);
        const chain: string[] = [];
        for (let x: unknown = e; x instanceof Error && chain.length < 4; x = (x as { cause?: unknown }).cause)
          chain.push(`${x.name}/${x.constructor.name}: ${x.message}`);
        errors.push(`${sample}: ${chain.join(" <- ") || String(e)}`);
      }
    }
    ops.push([t0 - startedAt, Date.now() - t0, kind, outcome]);
  };

  let round = 0;
  const inFlight = new Set<Promise<void>>();
  const roundOf = (i: number): Promise<void> => {
    const key = `${prefix}:k${i}`;
    const value = `v${i}`;
    const written = [...acked.keys()];
    const readKey = written.length > 0 ? written[Math.floor(Math.random() * written.length)] : key;
    return Promise.all([
      timed("set", async () => {
        await client.set(key, value);
        acked.set(key, value);
        ackedList.push([key, value, Date.now() - startedAt]);
        return "ok";
      }),
      timed("get", async () => {
        const expected = acked.get(readKey);
        const r = await client.read(readKey);
        if (r.stale) return "stale";
        // Every key is written once: a fresh read of an acknowledged key returns exactly that value.
        if (expected !== undefined && r.value !== expected) wrongReads++;
        return "ok";
      }),
      timed("incr", async () => {
        try {
          await client.incrBy(counterKey, 1);
          incrAcked++;
          return "ok";
        } catch (e) {
          if (e instanceof WriteOutcomeUnknownError) incrUnknown++;
          throw e;
        }
      }),
    ]).then(() => undefined);
  };
  while (Date.now() - startedAt < seconds * 1000) {
    const owed = Math.floor(((Date.now() - startedAt) / 1000) * rate) - round;
    for (let j = 0; j < owed; j++) {
      const p = roundOf(round++);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inFlight);
  await client.flushed(30_000);

  const report: LoadReport = {
    startedAt,
    rounds: round,
    ops,
    errors,
    counters: { ...client.counters },
    acked: ackedList,
    verify: { wrongReads, counterKey, incrAcked, incrUnknown },
  };
  await client.close();
  console.log(JSON.stringify(report));
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
