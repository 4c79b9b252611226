/**
 * redis-stack-client against the real cluster: an app process on the lab's client network reads the
 * stack's env contract and runs a steady load (lab/clientLoad.ts) while a master is killed, a failover is
 * asked for, or every node freezes. What the app saw (errors by type, latency, stale reads) and what Redis
 * holds afterwards judge the client. Runs on the fault suite's lab after its own tests.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ClusterLab, labContractEnv, masterOfSlot, missingKeys, role } from "../../lab/clusterLab";
import { LoadReport, OpKind, Outcome } from "../../lab/clientLoad";
import { APP_USER } from "../../components/ec2/node/redisConf";
import { COMPRESSION_MAGIC } from "../../client/src/index";
import { NodeAddress } from "../../components/ec2/topology";
import calculateSlot from "cluster-key-slot";

export { labContractEnv };

const TS_NODE = require.resolve("ts-node/register/transpile-only");
/** ts-node in the client namespace (cwd unknown there) compiles with the repository's own tsconfig. */
export const TS_NODE_ENV = { TS_NODE_PROJECT: path.resolve(__dirname, "../../tsconfig.json") };
const LOAD_SCRIPT = path.resolve(__dirname, "../../lab/clientLoad.ts");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LoadRun {
  seconds: number;
  rate: number;
  prefix: string;
  options?: object;
  env?: Record<string, string>;
}

export async function runClientLoad(c: ClusterLab, run: LoadRun): Promise<LoadReport> {
  const r = await c.lab.client.exec(["node", "-r", TS_NODE, LOAD_SCRIPT], {
    env: {
      ...labContractEnv(c),
      ...TS_NODE_ENV,
      ...run.env,
      LOAD_SECONDS: String(run.seconds),
      LOAD_RATE: String(run.rate),
      LOAD_PREFIX: run.prefix,
      LOAD_OPTIONS: JSON.stringify(run.options ?? {}),
    },
    timeoutMs: (run.seconds + 120) * 1000,
  });
  if (r.code !== 0) throw new Error(`client load (${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as LoadReport;
}

/**
 * What Redis holds after a load, read by outside clients (ioredis for the writes, redis-cli for the
 * counter), never by the client under test: the acknowledged SETs that are missing, and the counter.
 */
export async function judgeLoad(
  c: ClusterLab,
  r: LoadReport,
): Promise<{ lost: Array<[string, string, number]>; counter: number }> {
  const missing = new Set(
    await missingKeys(
      c,
      r.acked.map(([k, v]) => [k, v] as [string, string]),
    ),
  );
  const owner = await masterOfSlot(c, calculateSlot(r.verify.counterKey));
  const counter = Number((await c.cli(owner, ["get", r.verify.counterKey])).stdout.trim() || "0");
  return { lost: r.acked.filter(([k]) => missing.has(k)), counter };
}

const count = (r: LoadReport, kind: OpKind, outcome: Outcome) =>
  r.ops.filter(([, , k, o]) => k === kind && o === outcome).length;

/** Latency of the ops that started in [fromMs, toMs) of the load: max and p99. */
export function latencyIn(r: LoadReport, fromMs: number, toMs: number): { ops: number; max: number; p99: number } {
  const l = r.ops
    .filter(([t]) => t >= fromMs && t < toMs)
    .map(([, ms]) => ms)
    .sort((a, b) => a - b);
  return { ops: l.length, max: l[l.length - 1] ?? 0, p99: l[Math.floor(l.length * 0.99)] ?? 0 };
}

export function clientScenarios(lab: () => ClusterLab): void {
  const admin = (c: ClusterLab, n: NodeAddress, args: string[]) => c.cli(n, args);

  test("client: a steady load through a master's silent instance loss and a planned failover loses nothing acknowledged; reads and idempotent writes see no error", async () => {
    const c = lab();
    const victim = await masterOfSlot(c, 0);
    const host = c.hosts[victim.node.index];
    const started = Date.now();
    const load = runClientLoad(c, { seconds: 30, rate: 60, prefix: "failover" });
    await sleep(6000);
    // The instance dies as EC2's do: its packets vanish (no RST), then its processes die.
    const killedAt = await host.instanceLoss();
    try {
      await c.waitConverged(
        60_000,
        c.nodes.filter((n) => n !== victim),
      );
      // A planned failover in another shard, once the first is over: its replica takes over on request.
      await sleep(Math.max(0, 18_000 - (Date.now() - started)));
      const other = await masterOfSlot(c, 16383);
      const replica = c.nodes.find((n) => n.node.shard === other.node.shard && n !== other);
      if (!replica) throw new Error("no replica in the last shard");
      const failoverEpoch = Date.now();
      expect((await admin(c, replica, ["cluster", "failover"])).stdout).toMatch(/OK/);
      const r = await load;
      // On the load's own clock (it starts once its process is up).
      const killAt = killedAt - r.startedAt;
      const failoverAt = failoverEpoch - r.startedAt;
      const kill = latencyIn(r, killAt, killAt + 10_000);
      const planned = latencyIn(r, failoverAt, failoverAt + 5_000);
      console.log(
        `client through an instance loss (at ${(killAt / 1000).toFixed(1)} s) and a planned failover (at ${(failoverAt / 1000).toFixed(1)} s): ` +
          `${r.rounds} rounds; kill window max ${kill.max} ms p99 ${kill.p99} ms; failover window max ${planned.max} ms p99 ${planned.p99} ms; ` +
          `incr ok ${count(r, "incr", "ok")} failed ${count(r, "incr", "failed")} unknown ${count(r, "incr", "unknown")}; ` +
          `counters ${JSON.stringify(r.counters)}; errors ${JSON.stringify(r.errors)}`,
      );
      expect(await role(c, replica)).toBe("master");
      expect(r.rounds).toBeGreaterThan(1500);
      // The promises, at their numbers: an instance loss costs the app under 5 s, a planned failover under 1 s.
      expect(kill.max).toBeLessThan(5_000);
      expect(planned.max).toBeLessThan(1_000);
      // Reads and idempotent writes: no error reached the app, within the retry budget.
      expect(count(r, "get", "error") + count(r, "get", "failed")).toBe(0);
      expect(count(r, "set", "error") + count(r, "set", "failed") + count(r, "set", "unknown")).toBe(0);
      // INCRBY is never repeated blindly: each one either succeeded or failed with a typed error.
      expect(count(r, "incr", "error")).toBe(0);
      expect(r.counters.retries).toBeGreaterThan(0);
      const judged = await judgeLoad(c, r);
      // Replication is asynchronous: what the dead master acknowledged in its last moments and had not sent
      // to its replica is the one documented loss. Anything else lost is a bug.
      console.log(
        `client: ${judged.lost.length} acknowledged SETs lost, acknowledged at ${JSON.stringify(judged.lost.map(([, , at]) => at - killAt))} ms from the loss`,
      );
      expect(judged.lost.filter(([, , at]) => at < killAt - 1000 || at > killAt + 100)).toEqual([]);
      expect(r.verify.wrongReads).toBe(0);
      expect(judged.counter).toBeGreaterThanOrEqual(r.verify.incrAcked);
      expect(judged.counter).toBeLessThanOrEqual(r.verify.incrAcked + r.verify.incrUnknown);
    } finally {
      // The dead instance boots again and rejoins as a replica, for the scenarios after this one (also when
      // an assertion above failed: the next scenarios need the whole cluster).
      await host.start();
      await c.waitConverged(120_000);
    }
  }, 300_000);

  test("client: every node frozen for 10 s: the fallback serves stale reads, writes fail fast or replay in order, nothing is lost", async () => {
    const c = lab();
    const quick = { retryBudgetMs: 1500, commandTimeoutMs: 500 };
    const fallback = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024, ttlMs: 120_000 };
    const freezeAll = (signal: "STOP" | "CONT") =>
      Promise.all(c.hosts.map((h) => h.sh(`kill -${signal} $(systemctl show -p MainPID --value redis-node)`)));
    const started = Date.now();
    const loads = Promise.all([
      runClientLoad(c, {
        seconds: 28,
        rate: 20,
        prefix: "{outage-buffer}",
        options: { ...quick, fallback: { ...fallback, writes: "buffer" } },
      }),
      runClientLoad(c, { seconds: 28, rate: 20, prefix: "{outage-fast}", options: { ...quick, fallback } }),
    ]);
    await sleep(8000);
    const frozenAt = Date.now() - started;
    await freezeAll("STOP");
    await sleep(10_000);
    await freezeAll("CONT");
    const [buffered, fast] = await loads;
    for (const [name, r] of [
      ["buffer", buffered],
      ["fail-fast", fast],
    ] as const)
      console.log(
        `client, every node frozen 10 s from ${(frozenAt / 1000).toFixed(1)} s, writes ${name}: ${r.rounds} rounds; ` +
          `reads ok ${count(r, "get", "ok")} stale ${count(r, "get", "stale")} error ${count(r, "get", "error")}; ` +
          `sets ok ${count(r, "set", "ok")} failed ${count(r, "set", "failed")}; counters ${JSON.stringify(r.counters)}; ` +
          `errors ${JSON.stringify(r.errors)}`,
      );
    const judged = await Promise.all([judgeLoad(c, buffered), judgeLoad(c, fast)]);
    for (const [i, r] of [buffered, fast].entries()) {
      expect(count(r, "get", "stale")).toBeGreaterThan(0);
      expect(r.counters.staleReads).toBe(count(r, "get", "stale"));
      expect(judged[i].lost).toEqual([]);
      expect(r.verify.wrongReads).toBe(0);
    }
    // Buffered: every write was acknowledged, replayed in order once the nodes came back.
    expect(buffered.counters.bufferedWrites).toBeGreaterThan(0);
    expect(buffered.counters.replayedWrites).toBe(buffered.counters.bufferedWrites);
    expect(count(buffered, "set", "failed") + count(buffered, "set", "error")).toBe(0);
    // An INCRBY whose reply never came (frozen mid-flight) is WriteOutcomeUnknownError, never repeated.
    for (const [i, r] of [buffered, fast].entries()) {
      expect(judged[i].counter).toBeGreaterThanOrEqual(r.verify.incrAcked);
      expect(judged[i].counter).toBeLessThanOrEqual(r.verify.incrAcked + r.verify.incrUnknown);
    }
    // Fail fast: writes during the outage failed with WriteFailedError (typed), none buffered.
    expect(count(fast, "set", "failed")).toBeGreaterThan(0);
    expect(count(fast, "set", "error")).toBe(0);
    expect(fast.counters.bufferedWrites).toBe(0);
    await c.waitConverged(60_000);
  }, 300_000);

  test("client: a wrong CA is refused; compressed values round-trip and redis-cli reads them with the documented format", async () => {
    const c = lab();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wrong-ca-"));
    const wrong = await c.lab.client.exec([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=not-the-stack-ca",
      "-days",
      "1",
      "-keyout",
      path.join(dir, "k.pem"),
      "-out",
      path.join(dir, "ca.pem"),
    ]);
    expect(wrong.code).toBe(0);
    const refused = await c.lab.client.exec(["node", "-r", TS_NODE, "-e", connectOnly], {
      env: {
        ...labContractEnv(c),
        ...TS_NODE_ENV,
        REDIS_CA_PEM: fs.readFileSync(path.join(dir, "ca.pem"), "utf8"),
        REDIS_MAX_RETRIES: "1",
        CLIENT_INDEX: path.resolve(__dirname, "../../client/src/index.ts"),
      },
      timeoutMs: 60_000,
    });
    expect(refused.stdout).toMatch(/^refused: .*(certificate|self.signed|verify)/im);
    // The right CA connects (same script), so the refusal above is the CA's doing.
    const accepted = await c.lab.client.exec(["node", "-r", TS_NODE, "-e", connectOnly], {
      env: { ...labContractEnv(c), ...TS_NODE_ENV, CLIENT_INDEX: path.resolve(__dirname, "../../client/src/index.ts") },
      timeoutMs: 60_000,
    });
    expect(accepted.stdout).toMatch(/^connected/m);
    expect(accepted.stdout).toMatch(/^compressed \d+ -> \d+ bytes; read back equal$/m);

    // The stored bytes, read by redis-cli (not by the client): the marker, then gzip.
    const key = "{codec}:doc";
    const target = await masterOfSlot(c, slotOf(key));
    const raw = await c.lab.client.exec(
      [
        "bash",
        "-c",
        `redis-cli -h ${target.ip} -p ${target.port} --user ${APP_USER} --tls --cacert ${c.clientCa} --raw GET '${key}' | head -c -1 > ${dir}/v && ` +
          `head -c ${COMPRESSION_MAGIC.length} ${dir}/v | od -An -tx1 && tail -c +${COMPRESSION_MAGIC.length + 1} ${dir}/v | gunzip | sha256sum`,
      ],
      { env: { REDISCLI_AUTH: c.passwords.app } },
    );
    expect(raw.code).toBe(0);
    const [magic, sha] = raw.stdout.trim().split("\n");
    expect(magic.trim().split(/\s+/).join("")).toBe(COMPRESSION_MAGIC.toString("hex"));
    expect(sha.split(" ")[0]).toBe(crypto.createHash("sha256").update(DOC).digest("hex"));
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** A 10 KiB JSON-ish document (compressible, like most cached values). */
const DOC = JSON.stringify(
  Array.from({ length: 120 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ["a", "b"], price: i * 1.5 })),
);

function slotOf(key: string): number {
  return calculateSlot(key);
}

const connectOnly = `
const { createClient } = require(process.env.CLIENT_INDEX);
const DOC = ${JSON.stringify(DOC)};
(async () => {
  let client;
  const seen = [];
  try {
    client = await createClient(process.env, { compression: {}, onError: (e) => seen.push(e.message) });
  } catch (e) {
    const chain = [];
    for (let x = e; x; x = x.cause) chain.push(x.name + ": " + x.message);
    console.log("refused: " + chain.concat(seen).join(" / "));
    process.exit(0);
  }
  console.log("connected");
  await client.set("{codec}:doc", DOC);
  const back = await client.get("{codec}:doc");
  console.log("compressed " + client.counters.compressionInBytes + " -> " + client.counters.compressionOutBytes + " bytes; read back " + (back === DOC ? "equal" : "DIFFERENT"));
  await client.close();
})().catch((e) => { console.error(e); process.exit(1); });
`;
