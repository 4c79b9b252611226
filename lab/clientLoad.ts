/**
 * An app on the lab's client network: it reads the stack's env contract from its environment, opens
 * redis-stack-client's `createClient()` and runs a steady paced load for LOAD_SECONDS, then checks what it
 * was told against what Redis holds. Run by the client scenarios (tests/integration/clientScenarios.ts)
 * inside the client namespace, while the test kills, fails over or freezes nodes.
 *
 * Each round: SET k<i> (idempotent write: retried across a failover), GET of an acknowledged key (read;
 * the value must be the last one acknowledged, or a stale one flagged so by the fallback), INCRBY counter
 * (not idempotent: it either succeeds or fails with a typed error). Prints one JSON line: every op's
 * [ms since start, latency ms, kind, outcome], the client's counters, and the verification.
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
  rounds: number;
  /** [ms since the load started, latency ms, kind, outcome] */
  ops: [number, number, OpKind, Outcome][];
  errors: string[];
  counters: Record<string, number>;
  verify: {
    /** Acknowledged SETs whose key does not hold the last acknowledged value. */
    lostWrites: number;
    /** Fresh (not stale) GETs older than the value acknowledged before they began. */
    wrongReads: number;
    counter: number;
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
    const key = `${prefix}:k${i % 500}`;
    const value = `v${i}`;
    const readKey = `${prefix}:k${Math.floor(Math.random() * Math.min(i + 1, 500))}`;
    return Promise.all([
      timed("set", async () => {
        await client.set(key, value);
        acked.set(key, value);
        return "ok";
      }),
      timed("get", async () => {
        const expected = acked.get(readKey);
        const r = await client.read(readKey);
        if (r.stale) return "stale";
        // Never older than what was acknowledged before the read began (a SET in flight may be newer).
        const seq = (v: string | null | undefined) => (v ? Number(v.slice(1)) : -1);
        if (seq(r.value) < seq(expected)) wrongReads++;
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

  // Verification with the client itself, after the load (the cluster is whole again by then).
  let lostWrites = 0;
  for (const [key, value] of acked) if ((await client.get(key)) !== value) lostWrites++;
  const counter = Number((await client.get(counterKey)) ?? "0");
  const report: LoadReport = {
    rounds: round,
    ops,
    errors,
    counters: { ...client.counters },
    verify: { lostWrites, wrongReads, counter, incrAcked, incrUnknown },
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
