/**
 * Throughput of one client on the lab's client network: THROUGHPUT_CLIENT=plain (node-redis's own
 * createCluster, configured by hand from the contract as an app without our package would),
 * plain-no-timeout (the same with node-redis's per-command timeout off) or stack (redis-stack-client's
 * createClient, layers off). THROUGHPUT_WORKERS loops each run GET/SET (half each,
 * 100-byte values over 1,000 keys) back to back for THROUGHPUT_SECONDS. Prints one JSON line: ops, ops/s,
 * the client's CPU per op in us, p50/p99/max latency in ms. Run by `npm run bench:client`.
 */
import { createClient as createNodeClient, createCluster } from "redis";
import { createClient, readContract } from "../client/src/index";

interface Ops {
  get(key: string): Promise<unknown>;
  set(key: string, value: string): Promise<unknown>;
  close(): Promise<void>;
}

/** node-redis configured by hand; `noTimeout` turns off its per-command timeout (cluster default 5 s). */
async function plain(noTimeout = false): Promise<Ops> {
  const c = readContract(process.env);
  if (!c.clusterMode) {
    const client = createNodeClient({
      username: c.username,
      password: c.password,
      socket: { host: c.nodes[0].host, port: c.nodes[0].port, ...(c.tls ? { tls: true as const, ca: c.caPem } : {}) },
    });
    client.on("error", () => undefined);
    await client.connect();
    return { get: (k) => client.get(k), set: (k, v) => client.set(k, v), close: async () => client.destroy() };
  }
  const cluster = createCluster({
    rootNodes: c.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
    defaults: {
      username: c.username,
      password: c.password,
      socket: c.tls ? { tls: true as const, ca: c.caPem } : {},
    },
    ...(noTimeout ? { commandOptions: { timeout: 0 } } : {}),
  });
  cluster.on("error", () => undefined);
  await cluster.connect();
  return {
    get: (k) => cluster.get(k),
    set: (k, v) => cluster.set(k, v),
    close: async () => cluster.destroy(),
  };
}

async function stack(): Promise<Ops> {
  const client = await createClient(process.env);
  return { get: (k) => client.get(k), set: (k, v) => client.set(k, v), close: () => client.close() };
}

async function main(): Promise<void> {
  const kind = process.env.THROUGHPUT_CLIENT ?? "plain";
  const seconds = Number(process.env.THROUGHPUT_SECONDS ?? "15");
  const workers = Number(process.env.THROUGHPUT_WORKERS ?? "32");
  const ops = kind === "stack" ? await stack() : await plain(kind === "plain-no-timeout");
  const value = "v".repeat(100);
  for (let i = 0; i < 1000; i++) await ops.set(`tp:${i}`, value);
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  let n = 0;
  const started = process.hrtime.bigint();
  // The client's own CPU per command (user + system, this process): what the client costs, unlike ops/s
  // not moved by the servers sharing the machine's cores.
  const cpuBefore = process.cpuUsage();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (Date.now() < until) {
        const key = `tp:${(n * 7919) % 1000}`;
        const t0 = process.hrtime.bigint();
        await (n++ % 2 === 0 ? ops.get(key) : ops.set(key, value));
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  await ops.close();
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(
    JSON.stringify({
      client: kind,
      ops: latencies.length,
      opsPerSecond: latencies.length / elapsed,
      cpuUsPerOp: (cpu.user + cpu.system) / latencies.length,
      p50: at(0.5),
      p99: at(0.99),
      max: latencies[latencies.length - 1],
    }),
  );
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
