/**
 * `npm run bench:client`: what redis-stack-client costs an app.
 *
 * 1. Compression (this machine, no lab): gzip encode and decode time per value and the ratio, on JSON
 *    documents of 1, 10 and 100 KiB (the kind of value apps cache) and on random bytes (incompressible:
 *    stored raw).
 * 2. Overhead (needs root: six real Debian hosts booted from the prod user-data, TLS on): ops/s and
 *    latency of plain node-redis (createCluster configured by hand from the contract, with and without
 *    its per-command timeout) against createClient() with the layers off, on the same cluster from the same client network,
 *    BENCH_ROUNDS alternating runs of BENCH_SECONDS each (defaults 3 x 15 s), 32 loops in flight.
 * Prints a table, writes bench-results/client.json.
 */
import * as crypto from "crypto";
import * as path from "path";
import { canRunLab } from "../lab/hosts/hostLab";
import { createClusterLab } from "../lab/clusterLab";
import { labContractEnv, TS_NODE_ENV } from "../tests/integration/clientScenarios";
import { decodeValue, encodeValue } from "../client/src/index";
import { stackSettings } from "../lab/stackFiles";
import { machine, stats, writeResults } from "./benchUtil";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const TS_NODE = require.resolve("ts-node/register/transpile-only");
const SCRIPT = path.resolve(__dirname, "../lab/clientThroughput.ts");

function jsonDoc(bytes: number): string {
  const items: object[] = [];
  let text = "[]";
  for (let i = 0; text.length < bytes; i++) {
    items.push({
      id: i,
      sku: `SKU-${(i * 7919) % 100000}`,
      name: `Item number ${i}`,
      price: (i % 97) + 0.99,
      tags: ["a", "b"],
    });
    text = JSON.stringify(items);
  }
  return text.slice(0, bytes);
}

function compression(): Record<string, { bytes: number; ratio: number; encodeUs: number; decodeUs: number }> {
  const samples: Record<string, Buffer> = {
    "json 1 KiB": Buffer.from(jsonDoc(1024)),
    "json 10 KiB": Buffer.from(jsonDoc(10 * 1024)),
    "json 100 KiB": Buffer.from(jsonDoc(100 * 1024)),
    "random 10 KiB": crypto.randomBytes(10 * 1024),
  };
  const out: Record<string, { bytes: number; ratio: number; encodeUs: number; decodeUs: number }> = {};
  for (const [name, v] of Object.entries(samples)) {
    const runs = v.length > 50_000 ? 200 : 2000;
    const enc: number[] = [];
    const dec: number[] = [];
    let stored: Buffer | string = v;
    for (let i = 0; i < runs; i++) {
      let t = process.hrtime.bigint();
      const r = encodeValue(v, { thresholdBytes: 1024 });
      enc.push(Number(process.hrtime.bigint() - t) / 1000);
      stored = r.stored;
      t = process.hrtime.bigint();
      decodeValue(Buffer.isBuffer(stored) ? stored : Buffer.from(stored), "buffer");
      dec.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    const size = Buffer.isBuffer(stored) ? stored.length : Buffer.byteLength(stored);
    out[name] = { bytes: v.length, ratio: v.length / size, encodeUs: stats(enc).median, decodeUs: stats(dec).median };
  }
  return out;
}

interface Run {
  client: string;
  ops: number;
  opsPerSecond: number;
  /** The client process's own CPU per command, us (not moved by the servers sharing the cores). */
  cpuUsPerOp: number;
  p50: number;
  p99: number;
  max: number;
}

async function main(): Promise<void> {
  const comp = compression();
  console.log("compression (median per value):");
  for (const [name, r] of Object.entries(comp))
    console.log(
      `  ${name.padEnd(14)} ratio ${r.ratio.toFixed(2).padStart(6)}  encode ${r.encodeUs.toFixed(0).padStart(6)} us  decode ${r.decodeUs.toFixed(0).padStart(5)} us`,
    );
  const can = canRunLab();
  if (!can.ok) {
    console.error(`bench:client's overhead part needs the hosts lab: ${can.reason}`);
    writeResults("client", { machine: machine(), compression: comp });
    process.exit(2);
  }
  const c = await createClusterLab(stackSettings("prod"), { log: (l) => console.log(l) });
  const runs: Run[] = [];
  try {
    await c.boot();
    await c.waitConverged(120_000);
    for (let round = 0; round < ROUNDS; round++)
      for (const client of ["plain", "plain-no-timeout", "stack"]) {
        const r = await c.lab.client.exec(["node", "-r", TS_NODE, SCRIPT], {
          env: { ...labContractEnv(c), ...TS_NODE_ENV, THROUGHPUT_CLIENT: client, THROUGHPUT_SECONDS: String(SECONDS) },
          timeoutMs: (SECONDS + 120) * 1000,
        });
        if (r.code !== 0) throw new Error(`${client}: ${r.stderr.slice(-1000)}`);
        const run = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as Run;
        runs.push(run);
        console.log(
          `  round ${round + 1} ${client.padEnd(5)} ${run.opsPerSecond.toFixed(0)} ops/s  cpu ${run.cpuUsPerOp.toFixed(1)} us/op  p50 ${run.p50.toFixed(2)} ms  p99 ${run.p99.toFixed(2)} ms`,
        );
      }
  } finally {
    await c.destroy();
  }
  const of = (client: string) => runs.filter((r) => r.client === client);
  const summary = (client: string) => ({
    opsPerSecond: stats(of(client).map((r) => r.opsPerSecond)).median,
    cpuUsPerOp: stats(of(client).map((r) => r.cpuUsPerOp)).median,
    p99: stats(of(client).map((r) => r.p99)).median,
  });
  const plain = summary("plain");
  const bare = summary("plain-no-timeout");
  const stack = summary("stack");
  const overheadAgainst = (base: { opsPerSecond: number; p99: number }) => ({
    throughputPercent: (100 * (base.opsPerSecond - stack.opsPerSecond)) / base.opsPerSecond,
    p99Percent: (100 * (stack.p99 - base.p99)) / base.p99,
  });
  const overhead = { vsDefaults: overheadAgainst(plain), vsNoTimeout: overheadAgainst(bare) };
  const line = (name: string, r: { opsPerSecond: number; cpuUsPerOp: number; p99: number }) =>
    `${name} ${r.opsPerSecond.toFixed(0)} ops/s ${r.cpuUsPerOp.toFixed(1)} us CPU/op p99 ${r.p99.toFixed(2)} ms`;
  console.log(
    `median of ${ROUNDS}: ${line("node-redis", plain)}; ${line("node-redis without its command timeout", bare)}; ` +
      `${line("redis-stack-client", stack)}; overhead vs node-redis ${overhead.vsDefaults.throughputPercent.toFixed(1)} % ` +
      `throughput, vs node-redis without timeout ${overhead.vsNoTimeout.throughputPercent.toFixed(1)} %`,
  );
  const file = writeResults("client", { machine: machine(), compression: comp, runs, plain, bare, stack, overhead });
  console.log(`wrote ${file}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
