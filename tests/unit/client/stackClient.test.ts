/**
 * StackClient's policy over a scripted backend (the node-redis wiring is proven against the real cluster
 * in tests/integration/clientScenarios.ts): what is retried, what surfaces as which typed error, when the
 * fallback serves and when buffered writes replay. The errors are node-redis's own classes.
 */
import {
  ClientClosedError,
  ConnectionTimeoutError,
  SimpleError,
  SocketClosedUnexpectedlyError,
  TimeoutError,
} from "redis";
import {
  Backend,
  COMPRESSION_MAGIC,
  CreateClientOptions,
  readContract,
  RetryBudgetExceededError,
  StackClient,
  WriteFailedError,
  WriteOutcomeUnknownError,
} from "../../../client/src/index";

type Arg = string | Buffer;

/** A Redis in a Map, whose next replies can be replaced by errors (a queue) or by an outage (down). */
class ScriptedBackend implements Backend {
  readonly data = new Map<string, Buffer>();
  readonly sent: string[][] = [];
  readonly failures: Error[] = [];
  refreshes = 0;
  /** The suspect key each refresh was given (undefined: none). */
  readonly suspects: Array<string | undefined> = [];
  down?: () => Error;
  /** While set, SETs wait for it (a replay caught mid-way). */
  gate?: Promise<void>;
  async send(_key: string | undefined, _ro: boolean, args: Arg[]): Promise<unknown> {
    if (this.down) throw this.down();
    if (this.gate && String(args[0]) === "SET") await this.gate;
    const next = this.failures.shift();
    const [cmd, key, value] = args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(a)));
    this.sent.push(args.map((a) => (Buffer.isBuffer(a) ? `<${a.length} bytes>` : a)));
    if (next && next.message !== "APPLIED-THEN-LOST") throw next;
    const name = cmd.toString().toUpperCase();
    let reply: unknown = "OK";
    if (name === "GET") reply = this.data.get(key.toString()) ?? null;
    else if (name === "SET") this.data.set(key.toString(), value);
    else if (name === "DEL") reply = Number(this.data.delete(key.toString()));
    else if (name === "INCRBY") {
      const n = Number(this.data.get(key.toString())?.toString() ?? "0") + Number(value.toString());
      this.data.set(key.toString(), Buffer.from(String(n)));
      reply = n;
    } else if (name === "PING") reply = "PONG";
    // The reply is lost after the command was applied: what a connection reset looks like to the client.
    if (next) throw new SocketClosedUnexpectedlyError();
    return reply;
  }
  async refresh(suspectKey?: string): Promise<void> {
    this.refreshes++;
    this.suspects.push(suspectKey);
  }
  async connect(): Promise<void> {}
  async close(): Promise<void> {}
}

const CONTRACT = readContract({ REDIS_URL: "redis://app:pw@10.0.0.1:6379", REDIS_CLUSTER_MODE: "true" });
const fast = { retryBudgetMs: 300, backoff: { baseMs: 1, capMs: 5 } };
const make = (o: CreateClientOptions = {}) => {
  const b = new ScriptedBackend();
  return { b, c: new StackClient(CONTRACT, { ...fast, ...o }, b) };
};

test("an idempotent command is retried across transient errors, after a topology refresh each time", async () => {
  const { b, c } = make();
  b.failures.push(new SocketClosedUnexpectedlyError(), new SimpleError("CLUSTERDOWN The cluster is down"));
  await c.set("k", "v");
  expect(b.data.get("k")?.toString()).toBe("v");
  expect(c.counters.retries).toBe(2);
  expect(b.refreshes).toBe(2);
  expect(await c.get("k")).toBe("v");
});

test("an attempt that got no reply in time names its key's node as a suspect the refresh skips; a reset does not", async () => {
  const { b, c } = make();
  b.failures.push(new TimeoutError(), new SocketClosedUnexpectedlyError());
  await c.set("k", "v");
  expect(b.suspects).toEqual(["k", undefined]);
});

test("a non-idempotent write that may have been applied is not repeated: WriteOutcomeUnknownError", async () => {
  const { b, c } = make();
  b.failures.push(new Error("APPLIED-THEN-LOST"));
  const e = await c.incrBy("n", 1).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(WriteOutcomeUnknownError);
  expect((e as WriteOutcomeUnknownError).applied).toBe("unknown");
  // It was applied once and never sent again.
  expect(b.data.get("n")?.toString()).toBe("1");
  expect(b.sent.filter((a) => a[0] === "INCRBY")).toHaveLength(1);
});

test("a non-idempotent write that Redis refused or that never left is retried (it was not applied)", async () => {
  const { b, c } = make();
  b.failures.push(
    new SimpleError("READONLY You can't write against a read only replica."),
    new ConnectionTimeoutError(),
  );
  expect(await c.incrBy("n", 5)).toBe(5);
  expect(c.counters.retries).toBe(2);
});

test("a write that stays refused for the whole budget fails with WriteFailedError; a non-transient error passes through", async () => {
  const { b, c } = make();
  b.down = () => new SimpleError("CLUSTERDOWN Hash slot not served");
  const e = await c.set("k", "v").catch((x: unknown) => x);
  expect(e).toBeInstanceOf(WriteFailedError);
  expect((e as WriteFailedError).applied).toBe(false);
  b.down = undefined;
  b.failures.push(new SimpleError("WRONGTYPE Operation against a key holding the wrong kind of value"));
  const wrong = await c.incrBy("k", 1).catch((x: unknown) => x);
  expect(wrong).toBeInstanceOf(SimpleError);
  expect(c.counters.retries).toBeGreaterThan(0);
});

test("reads that outlast the budget throw RetryBudgetExceededError without a fallback", async () => {
  const { b, c } = make();
  b.down = () => new SocketClosedUnexpectedlyError();
  const e = await c.get("k").catch((x: unknown) => x);
  expect(e).toBeInstanceOf(RetryBudgetExceededError);
  expect(c.unreachable).toBe(false);
});

test("with the fallback, an outage serves the last known values flagged stale; writes fail fast by default", async () => {
  const { b, c } = make({ fallback: { maxEntries: 100, maxBytes: 10_000, ttlMs: 60_000 } });
  await c.set("a", "1");
  expect(await c.read("a")).toEqual({ value: "1", stale: false });
  b.down = () => new SocketClosedUnexpectedlyError();
  expect(await c.read("a")).toEqual({ value: "1", stale: true });
  expect(c.unreachable).toBe(true);
  // Now known to be down: served at once, without waiting for a budget.
  const sentBefore = b.sent.length;
  expect(await c.read("a")).toEqual({ value: "1", stale: true });
  expect(b.sent.length).toBe(sentBefore);
  await expect(c.set("a", "2")).rejects.toBeInstanceOf(WriteFailedError);
  // A key it never saw is not invented.
  await expect(c.get("never")).rejects.toBeInstanceOf(RetryBudgetExceededError);
  expect(c.counters.staleReads).toBe(2);
  await c.close();
});

test("buffered writes are acknowledged during the outage and replayed in order when Redis answers again", async () => {
  const { b, c } = make({ fallback: { maxEntries: 100, maxBytes: 10_000, ttlMs: 60_000, writes: "buffer" } });
  await c.set("seed", "x");
  b.down = () => new SocketClosedUnexpectedlyError();
  await expect(c.get("seed")).resolves.toBe("x");
  await c.set("a", "1");
  await c.set("a", "2");
  await c.incrBy("n", 3);
  await c.del("seed");
  expect(c.counters.bufferedWrites).toBe(4);
  expect(b.data.get("a")).toBeUndefined();
  b.down = undefined;
  expect(await c.flushed(5_000)).toBe(true);
  expect(b.data.get("a")?.toString()).toBe("2");
  expect(b.data.get("n")?.toString()).toBe("3");
  expect(b.data.has("seed")).toBe(false);
  expect(c.counters.replayedWrites).toBe(4);
  expect(c.unreachable).toBe(false);
  await c.close();
});

test("a full write buffer refuses further writes with WriteFailedError", async () => {
  const { b, c } = make({
    fallback: { maxEntries: 100, maxBytes: 10_000, ttlMs: 60_000, writes: "buffer", bufferMaxEntries: 1 },
  });
  await c.set("seed", "x");
  b.down = () => new SocketClosedUnexpectedlyError();
  await c.get("seed");
  await c.set("a", "1");
  await expect(c.set("b", "2")).rejects.toBeInstanceOf(WriteFailedError);
  await c.close();
});

test("compression: large values are stored with the marker and read back; small and foreign values pass as they are", async () => {
  const { b, c } = make({ compression: {} });
  const doc = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })));
  await c.set("doc", doc);
  const stored = b.data.get("doc") ?? Buffer.alloc(0);
  expect(stored.subarray(0, COMPRESSION_MAGIC.length).equals(COMPRESSION_MAGIC)).toBe(true);
  expect(stored.length).toBeLessThan(doc.length / 3);
  expect(await c.get("doc")).toBe(doc);
  await c.set("small", "tiny");
  expect(b.data.get("small")?.toString()).toBe("tiny");
  b.data.set("foreign", Buffer.from("written by another app"));
  expect(await c.get("foreign")).toBe("written by another app");
  expect(c.counters.compressedValues).toBe(1);
  expect(c.counters.compressionInBytes).toBe(Buffer.byteLength(doc));
});

test("after an outage, a key whose buffered write is not replayed yet reads the app's own write, not Redis's older value", async () => {
  const { b, c } = make({ fallback: { maxEntries: 100, maxBytes: 10_000, ttlMs: 60_000, writes: "buffer" } });
  await c.set("a", "1");
  b.down = () => new SocketClosedUnexpectedlyError();
  await c.get("a");
  await c.set("a", "2");
  let open = () => undefined as void;
  b.gate = new Promise<void>((r) => (open = r));
  b.down = undefined;
  while (c.unreachable) await new Promise((r) => setTimeout(r, 20));
  // Redis answers again and the replay has begun, but the buffered SET is held at the gate.
  expect(b.data.get("a")?.toString()).toBe("1");
  expect(await c.read("a")).toEqual({ value: "2", stale: true });
  open();
  expect(await c.flushed(5_000)).toBe(true);
  expect(await c.read("a")).toEqual({ value: "2", stale: false });
  await c.close();
});

test("a node connection node-redis closed by itself (reconnects ran out) is retried; after close() nothing is", async () => {
  const { b, c } = make();
  b.failures.push(new ClientClosedError());
  await c.set("k", "v");
  expect(c.counters.retries).toBe(1);
  await c.close();
  b.failures.push(new ClientClosedError());
  await expect(c.get("k")).rejects.toBeInstanceOf(ClientClosedError);
});
