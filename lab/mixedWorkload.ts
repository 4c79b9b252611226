/**
 * What an app does, through one client library as the stack's `app` user, on the lab's client network:
 * strings, counters, hashes, lists, sets, sorted sets, streams, HyperLogLog, bitmaps, geo, expiry, a Lua
 * script, a transaction, pub/sub and the cluster topology reads clients make; then one command the default
 * rules refuse (FLUSHALL). MIXED_CLIENT=ioredis (ioredis `Cluster`), node-redis (`createCluster`) or
 * redis-stack-client (the repository's client), each configured from the stack's env contract as an app
 * would. Prints one JSON line: the client, how many operations ran, those that failed (with the error) and
 * the refused command's error. Run by the cluster suite (tests/integration/cluster.test.ts).
 */
import { Cluster } from "ioredis";
import { createCluster } from "redis";
import { createClient, readContract } from "../client/src/index";

/** One library's way to send a command to the slot of its first key (or any node without a key). */
interface Sender {
  send(args: string[], key?: string): Promise<unknown>;
  /** A message published on `channel` reaches a subscriber of this client within 5 s. */
  pubsub(channel: string): Promise<boolean>;
  /** MULTI/EXEC of two SETs on keys of one slot, as the library exposes transactions. */
  transaction(a: string, b: string): Promise<unknown>;
  close(): Promise<void>;
}

const contract = readContract(process.env);
const tls = contract.tls ? { ca: contract.caPem } : undefined;

async function ioredisSender(): Promise<Sender> {
  const options = {
    redisOptions: { username: contract.username, password: contract.password, ...(tls ? { tls } : {}) },
  };
  const nodes = contract.nodes.map((n) => ({ host: n.host, port: n.port }));
  const c = new Cluster(nodes, options);
  const sub = new Cluster(nodes, options);
  c.on("error", () => undefined);
  sub.on("error", () => undefined);
  return {
    send: (args) => c.call(args[0], ...args.slice(1)),
    pubsub: async (channel) => {
      const got = new Promise<boolean>((resolve) => {
        sub.on("message", (ch: string) => ch === channel && resolve(true));
        setTimeout(() => resolve(false), 5000);
      });
      await sub.subscribe(channel);
      await c.publish(channel, "hello");
      return got;
    },
    transaction: (a, b) => c.multi().set(a, "1").set(b, "2").exec(),
    close: async () => {
      c.disconnect();
      sub.disconnect();
    },
  };
}

async function nodeRedisSender(): Promise<Sender> {
  const c = createCluster({
    rootNodes: contract.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
    defaults: {
      username: contract.username,
      password: contract.password,
      socket: tls ? { tls: true as const, ca: tls.ca } : {},
    },
  });
  c.on("error", () => undefined);
  await c.connect();
  return {
    send: (args, key) => c.sendCommand(key, false, args),
    pubsub: async (channel) => {
      const got = new Promise<boolean>((resolve) => {
        void c.subscribe(channel, () => resolve(true));
        setTimeout(() => resolve(false), 5000);
      });
      await new Promise((r) => setTimeout(r, 200));
      await c.publish(channel, "hello");
      return got;
    },
    transaction: (a, b) => c.multi().set(a, "1").set(b, "2").exec(),
    close: async () => c.destroy(),
  };
}

async function stackSender(): Promise<Sender> {
  const c = await createClient(process.env);
  return {
    send: (args, key) => c.command(args, { key, idempotent: false }),
    // The repository's client has no subscribe: it publishes (the count of receivers is its answer).
    pubsub: async (channel) => (await c.command(["publish", channel, "hello"], { idempotent: false })) !== undefined,
    // Nor MULTI (its connections are shared): the atomic two-key write an app would use with it is a script.
    transaction: (a, b) =>
      c.command(["eval", "redis.call('set', KEYS[1], '1'); return redis.call('set', KEYS[2], '2')", "2", a, b], {
        key: a,
        idempotent: false,
      }),
    close: () => c.close(),
  };
}

/** The app's commands: [name, arguments, key for routing]. Keys share a hash tag where a command takes several. */
function workload(): Array<[string, string[], string | undefined]> {
  const t = "{mixed}";
  const ops: Array<[string, string[], string | undefined]> = [];
  for (let i = 0; i < 12; i++) {
    ops.push(["SET", ["set", `mixed:${i}`, `v${i}`], `mixed:${i}`]);
    ops.push(["GET", ["get", `mixed:${i}`], `mixed:${i}`]);
  }
  const k = (s: string) => `${t}:${s}`;
  ops.push(
    ["INCRBY", ["incrby", k("n"), "5"], k("n")],
    ["HSET", ["hset", k("h"), "a", "1", "b", "2"], k("h")],
    ["HGETALL", ["hgetall", k("h")], k("h")],
    ["LPUSH", ["lpush", k("l"), "x", "y"], k("l")],
    ["LRANGE", ["lrange", k("l"), "0", "-1"], k("l")],
    ["SADD", ["sadd", k("s"), "m1", "m2"], k("s")],
    ["SMEMBERS", ["smembers", k("s")], k("s")],
    ["ZADD", ["zadd", k("z"), "1", "one", "2", "two"], k("z")],
    ["ZRANGE", ["zrange", k("z"), "0", "-1", "withscores"], k("z")],
    ["XADD", ["xadd", k("x"), "*", "f", "v"], k("x")],
    ["XRANGE", ["xrange", k("x"), "-", "+"], k("x")],
    ["PFADD", ["pfadd", k("p"), "a", "b"], k("p")],
    ["PFCOUNT", ["pfcount", k("p")], k("p")],
    ["SETBIT", ["setbit", k("b"), "7", "1"], k("b")],
    ["BITCOUNT", ["bitcount", k("b")], k("b")],
    ["GEOADD", ["geoadd", k("g"), "13.361389", "38.115556", "Palermo"], k("g")],
    ["GEOPOS", ["geopos", k("g"), "Palermo"], k("g")],
    ["EXPIRE", ["expire", k("n"), "600"], k("n")],
    ["TTL", ["ttl", k("n")], k("n")],
    ["EVAL", ["eval", "return redis.call('incr', KEYS[1])", "1", k("e")], k("e")],
    ["MGET", ["mget", k("n"), k("e")], k("n")],
    ["SORT", ["sort", k("l"), "alpha"], k("l")],
    ["SCAN", ["scan", "0", "match", "mixed:*"], undefined],
    ["CLUSTER SLOTS", ["cluster", "slots"], undefined],
    ["CLUSTER SHARDS", ["cluster", "shards"], undefined],
    ["INFO", ["info", "server"], undefined],
    ["DEL", ["del", k("h"), k("l"), k("s")], k("h")],
  );
  return ops;
}

async function main(): Promise<void> {
  const kind = process.env.MIXED_CLIENT ?? "ioredis";
  const sender =
    kind === "node-redis"
      ? await nodeRedisSender()
      : kind === "redis-stack-client"
        ? await stackSender()
        : await ioredisSender();
  const failed: Array<{ op: string; error: string }> = [];
  let ran = 0;
  for (const [name, args, key] of workload()) {
    ran++;
    try {
      await sender.send(args, key);
    } catch (e) {
      failed.push({ op: name, error: (e as Error).message });
    }
  }
  ran++;
  try {
    await sender.transaction("{mixed}:t1", "{mixed}:t2");
  } catch (e) {
    failed.push({ op: "MULTI/EXEC", error: (e as Error).message });
  }
  ran++;
  if (!(await sender.pubsub("mixed-channel").catch(() => false)))
    failed.push({ op: "PUBLISH/SUBSCRIBE", error: "no message" });
  let refused = "";
  try {
    await sender.send(["flushall"]);
    refused = "FLUSHALL ran";
  } catch (e) {
    refused = (e as Error).message;
  }
  await sender.close();
  console.log(JSON.stringify({ client: kind, ran, failed, refused }));
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
