/** The in-memory fallback (bounded LRU of last-seen values) and the bounded outage write buffer. */
import { BufferedWrite, FallbackCache, OutageWriteBuffer } from "../../../client/src/fallback";

function clock(start = 0) {
  const t = { now: start };
  return { t, now: () => t.now };
}

describe("FallbackCache", () => {
  const cache = (o: Partial<ConstructorParameters<typeof FallbackCache>[0]> = {}) =>
    new FallbackCache({ maxEntries: 100, maxBytes: 1_000_000, ttlMs: 60_000, now: clock().now, ...o });

  test("recalls what it remembered, with its age", () => {
    const c = clock(5000);
    const f = cache({ now: c.now });
    expect(f.remember("a", "alpha")).toBe(true);
    c.t.now += 1500;
    expect(f.recall("a")).toEqual({ value: "alpha", ageMs: 1500 });
    expect(f.recall("missing")).toBeUndefined();
  });

  test("evicts the least recently used entry first; a recall counts as a use", () => {
    const f = cache({ maxEntries: 3 });
    f.remember("a", "1");
    f.remember("b", "2");
    f.remember("c", "3");
    expect(f.recall("a")?.value).toBe("1");
    f.remember("d", "4");
    expect(f.recall("b")).toBeUndefined();
    expect(["a", "c", "d"].map((k) => f.recall(k)?.value)).toEqual(["1", "3", "4"]);
    f.remember("e", "5"); // a was used before c and d: it goes
    expect(f.recall("a")).toBeUndefined();
    expect(f.size).toBe(3);
  });

  test("re-remembering a key replaces its value and its age, without growing", () => {
    const c = clock();
    const f = cache({ now: c.now });
    f.remember("k", "old");
    c.t.now = 100;
    f.remember("k", "new");
    c.t.now = 130;
    expect(f.recall("k")).toEqual({ value: "new", ageMs: 30 });
    expect(f.size).toBe(1);
    expect(f.bytes).toBe(1 + 3);
  });

  test("bounded by bytes (keys plus UTF-8 values), evicting the least recently used", () => {
    const f = cache({ maxBytes: 30 });
    f.remember("k1", "0123456789"); // 12
    f.remember("k2", Buffer.alloc(10)); // 12
    expect(f.bytes).toBe(24);
    f.remember("k3", "ééé"); // 2 + 6 = 8: k1 must go
    expect(f.bytes).toBe(20);
    expect(f.recall("k1")).toBeUndefined();
    expect(f.recall("k2")?.value).toEqual(Buffer.alloc(10));
    expect(f.recall("k3")?.value).toBe("ééé");
  });

  test("an entry bigger than maxBytes is refused, and the key's older value forgotten", () => {
    const f = cache({ maxBytes: 16 });
    expect(f.remember("big", "small")).toBe(true);
    expect(f.remember("big", "x".repeat(14))).toBe(false); // 3 + 14 > 16
    expect(f.recall("big")).toBeUndefined();
    expect(f.remember("fits", "x".repeat(12))).toBe(true); // 4 + 12 = 16
    expect(f.bytes).toBe(16);
  });

  test("expires entries older than ttlMs, even on a clock that starts at 0", () => {
    const c = clock(0);
    const f = cache({ ttlMs: 1000, now: c.now });
    f.remember("k", "v");
    c.t.now = 1000;
    expect(f.recall("k")).toEqual({ value: "v", ageMs: 1000 });
    c.t.now = 1001;
    expect(f.recall("k")).toBeUndefined();
    expect(f.size).toBe(0);
  });

  test("the TTL runs from when the value was remembered, not from its last recall", () => {
    const c = clock(42);
    const f = cache({ ttlMs: 100, now: c.now });
    f.remember("k", "v");
    for (const t of [92, 122, 142]) {
      c.t.now = t;
      expect(f.recall("k")?.ageMs).toBe(t - 42);
    }
    c.t.now = 143;
    expect(f.recall("k")).toBeUndefined();
  });

  test("null means the key is gone: it is forgotten", () => {
    const f = cache();
    f.remember("k", "v");
    expect(f.remember("k", null)).toBe(false);
    expect(f.recall("k")).toBeUndefined();
    f.remember("j", "v");
    f.forget("j");
    expect(f.recall("j")).toBeUndefined();
    expect([f.size, f.bytes]).toEqual([0, 0]);
  });

  test("keeps its own copy of a Buffer", () => {
    const f = cache();
    const big = Buffer.from("0123456789abcdef");
    const slice = big.subarray(0, 4);
    f.remember("k", slice);
    slice.fill(0x21);
    expect(f.recall("k")?.value).toEqual(Buffer.from("0123"));
    expect(f.bytes).toBe(1 + 4);
  });

  test("an empty key and value still count", () => {
    const f = cache();
    expect(f.remember("", "")).toBe(true);
    expect(f.recall("")).toEqual({ value: "", ageMs: 0 });
  });

  test("defaults to the real monotonic clock", () => {
    const f = new FallbackCache({ maxEntries: 2, maxBytes: 100, ttlMs: 60_000 });
    f.remember("k", "v");
    const hit = f.recall("k");
    expect(hit?.value).toBe("v");
    expect(hit?.ageMs).toBeGreaterThanOrEqual(0);
  });

  test.each([
    { maxEntries: 0 },
    { maxEntries: 1.5 },
    { maxBytes: -1 },
    { maxBytes: Infinity },
    { ttlMs: 0 },
    { ttlMs: Number.NaN },
  ])("rejects %j", (o) => {
    expect(() => cache(o)).toThrow(RangeError);
  });
});

describe("OutageWriteBuffer", () => {
  const set = (key: string, value: string | Buffer): BufferedWrite => ({
    command: "SET",
    key,
    args: ["SET", key, value],
  });

  test("bounded by entries", () => {
    const b = new OutageWriteBuffer({ maxEntries: 2, maxBytes: 1_000_000 });
    expect(b.push(set("a", "1"))).toBe(true);
    expect(b.push(set("b", "2"))).toBe(true);
    expect(b.push(set("c", "3"))).toBe(false);
    expect(b.length).toBe(2);
  });

  test("bounded by bytes: command, key and arguments, UTF-8", () => {
    const op = set("k", "é"); // SET + k + SET + k + é = 3 + 1 + 3 + 1 + 2
    const b = new OutageWriteBuffer({ maxEntries: 100, maxBytes: 20 });
    expect(b.push(op)).toBe(true);
    expect(b.bytes).toBe(10);
    expect(b.push(op)).toBe(true);
    expect(b.bytes).toBe(20);
    expect(b.push({ command: "DEL", args: [] })).toBe(false);
    expect([b.length, b.bytes]).toEqual([2, 20]);
  });

  test("a write bigger than the whole buffer is refused, even when empty", () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 100 });
    expect(b.push(set("k", Buffer.alloc(200)))).toBe(false);
    expect([b.length, b.bytes]).toEqual([0, 0]);
  });

  test("replays in order and empties", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    for (const k of ["a", "b", "c"]) b.push(set(k, k.toUpperCase()));
    const seen: string[] = [];
    const r = await b.drain(async (op) => {
      seen.push(`${op.key}=${String(op.args[2])}`);
    });
    expect(r).toEqual({ applied: 3, failed: 0 });
    expect(seen).toEqual(["a=A", "b=B", "c=C"]);
    expect([b.length, b.bytes]).toEqual([0, 0]);
    expect(await b.drain(async () => undefined)).toEqual({ applied: 0, failed: 0 });
  });

  test("stops at the first failure and keeps it and the rest; a later drain resumes in order", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    for (const k of ["a", "b", "c", "d"]) b.push(set(k, k));
    const bytesEach = b.bytes / 4;
    const down = new Error("ECONNRESET");
    const seen: string[] = [];
    const first = await b.drain(async (op) => {
      seen.push(op.key ?? "");
      if (op.key === "c") throw down;
    });
    expect(first).toEqual({ applied: 2, failed: 1, error: down });
    expect([b.length, b.bytes]).toEqual([2, 2 * bytesEach]);

    b.push(set("e", "e"));
    const second = await b.drain(async (op) => {
      seen.push(op.key ?? "");
    });
    expect(second).toEqual({ applied: 3, failed: 0 });
    expect(seen).toEqual(["a", "b", "c", "c", "d", "e"]);
    expect(b.length).toBe(0);
  });

  test("writes pushed during a drain are replayed after the older ones, in the same drain", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    b.push(set("a", "1"));
    b.push(set("b", "1"));
    const seen: string[] = [];
    const r = await b.drain(async (op) => {
      seen.push(op.key ?? "");
      if (op.key === "a") b.push(set("c", "1"));
      await Promise.resolve();
    });
    expect(r.applied).toBe(3);
    expect(seen).toEqual(["a", "b", "c"]);
  });

  test("the write being replayed still counts against the bounds", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 1, maxBytes: 1000 });
    b.push(set("a", "1"));
    let pushedDuringReplay: boolean | undefined;
    await b.drain(async () => {
      pushedDuringReplay = b.push(set("b", "2"));
    });
    expect(pushedDuringReplay).toBe(false);
  });

  test("a drain called while one runs joins it: nothing is applied twice", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    for (const k of ["a", "b"]) b.push(set(k, k));
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const apply = async (op: BufferedWrite) => {
      seen.push(op.key ?? "");
      await gate;
    };
    const one = b.drain(apply);
    const two = b.drain(apply);
    expect(two).toBe(one);
    release();
    expect(await one).toEqual({ applied: 2, failed: 0 });
    expect(seen).toEqual(["a", "b"]);
    // Once finished, a new drain is a new one.
    b.push(set("c", "c"));
    expect(await b.drain(apply)).toEqual({ applied: 1, failed: 0 });
  });

  test("keeps its own copy of Buffer arguments", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    const value = Buffer.from("value");
    b.push(set("k", value));
    value.fill(0);
    let replayed: (string | Buffer)[] = [];
    await b.drain(async (op) => {
      replayed = op.args;
    });
    expect(replayed).toEqual(["SET", "k", Buffer.from("value")]);
  });

  test("a write without a key keeps none", async () => {
    const b = new OutageWriteBuffer({ maxEntries: 10, maxBytes: 1000 });
    b.push({ command: "FLUSHALL", args: ["FLUSHALL"] });
    await b.drain(async (op) => {
      expect(op).toEqual({ command: "FLUSHALL", args: ["FLUSHALL"] });
    });
  });

  test.each([{ maxEntries: 0 }, { maxBytes: 0 }, { maxEntries: 2.5 }])("rejects %j", (o) => {
    expect(() => new OutageWriteBuffer({ maxEntries: 10, maxBytes: 10, ...o })).toThrow(RangeError);
  });
});
