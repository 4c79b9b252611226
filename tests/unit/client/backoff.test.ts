/** Capped exponential backoff with full jitter, and the node-redis reconnect strategy built on it. */
import type { RedisClientOptions } from "redis";
import { backoffDelay, reconnectStrategy } from "../../../client/src/backoff";
import { ReconnectGaveUpError } from "../../../client/src/errors";

const fixed = (r: number) => () => r;

describe("backoffDelay", () => {
  test("doubles the ceiling per attempt up to the cap, and draws below it", () => {
    const o = { baseMs: 100, capMs: 1000, random: fixed(0.5) };
    expect([0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, o))).toEqual([50, 100, 200, 400, 500, 500, 500]);
  });

  test("full jitter: the draw spans [0, ceiling)", () => {
    expect(backoffDelay(3, { baseMs: 100, capMs: 10_000, random: fixed(0) })).toBe(0);
    expect(backoffDelay(3, { baseMs: 100, capMs: 10_000, random: fixed(0.999999) })).toBe(799);
    expect(backoffDelay(20, { baseMs: 100, capMs: 10_000, random: fixed(0.999999) })).toBe(9999);
  });

  test("whole milliseconds, within bounds, with the default Math.random", () => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const d = backoffDelay(attempt % 12, { baseMs: 7, capMs: 3000 });
      expect(Number.isInteger(d)).toBe(true);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(3000, 7 * 2 ** (attempt % 12)));
    }
  });

  test("never NaN or Infinity, however large the attempt", () => {
    for (const attempt of [1022, 1023, 1024, 5000, 1e9, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Infinity]) {
      expect(backoffDelay(attempt, { baseMs: 100, capMs: 30_000, random: fixed(0.5) })).toBe(15_000);
      // 0 * 2^1024 would be NaN: a zero base stays zero.
      expect(backoffDelay(attempt, { baseMs: 0, capMs: 30_000, random: fixed(0.5) })).toBe(0);
    }
  });

  test("a negative, fractional or NaN attempt counts as its floor, at least 0", () => {
    const o = { baseMs: 100, capMs: 1000, random: fixed(0.5) };
    expect(backoffDelay(-3, o)).toBe(50);
    expect(backoffDelay(Number.NaN, o)).toBe(50);
    expect(backoffDelay(-Infinity, o)).toBe(50);
    expect(backoffDelay(2.9, o)).toBe(200);
  });

  test("a random() outside [0, 1] is clamped", () => {
    const o = { baseMs: 100, capMs: 1000 };
    expect(backoffDelay(0, { ...o, random: fixed(-1) })).toBe(0);
    expect(backoffDelay(0, { ...o, random: fixed(7) })).toBe(100);
    expect(backoffDelay(0, { ...o, random: fixed(Number.NaN) })).toBe(0);
  });

  test("a cap below the base wins", () => {
    expect(backoffDelay(0, { baseMs: 500, capMs: 100, random: fixed(0.5) })).toBe(50);
  });

  test.each([
    { baseMs: -1, capMs: 10 },
    { baseMs: 1, capMs: -10 },
    { baseMs: Number.NaN, capMs: 10 },
    { baseMs: 1, capMs: Infinity },
  ])("rejects options %j", (o) => {
    expect(() => backoffDelay(0, o)).toThrow(RangeError);
  });
});

describe("reconnectStrategy", () => {
  test("gives node-redis the backoff for the first maxRetries calls, then a ReconnectGaveUpError", () => {
    const o = { baseMs: 100, capMs: 1000, random: fixed(0.5), maxRetries: 4 };
    const strategy = reconnectStrategy(o);
    const cause = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    expect([0, 1, 2, 3].map((retries) => strategy(retries, cause))).toEqual([50, 100, 200, 400]);
    for (const retries of [4, 5, 100]) {
      const stop = strategy(retries, cause);
      expect(stop).toBeInstanceOf(ReconnectGaveUpError);
      expect((stop as ReconnectGaveUpError).retries).toBe(retries);
      expect((stop as ReconnectGaveUpError).cause).toBe(cause);
    }
  });

  test("maxRetries 0 never reconnects", () => {
    const strategy = reconnectStrategy({ baseMs: 100, capMs: 1000, maxRetries: 0 });
    expect(strategy(0, new Error("x"))).toBeInstanceOf(ReconnectGaveUpError);
  });

  test("reconnects after a socket timeout too (node-redis's default does not)", () => {
    const strategy = reconnectStrategy({ baseMs: 100, capMs: 1000, maxRetries: 3, random: fixed(0.5) });
    expect(strategy(0, new Error("Socket timeout timeout. Expecting data, but didn't receive any in 5ms."))).toBe(50);
  });

  test.each([-1, 1.5, Number.NaN, Infinity])("rejects maxRetries %p when created", (maxRetries) => {
    expect(() => reconnectStrategy({ baseMs: 1, capMs: 2, maxRetries })).toThrow(RangeError);
  });

  test("rejects bad backoff options when created, not when node-redis calls it", () => {
    expect(() => reconnectStrategy({ baseMs: -5, capMs: 2, maxRetries: 3 })).toThrow(RangeError);
  });

  test("fits node-redis v6's socket.reconnectStrategy option", () => {
    // Checked by tsc: the returned function is assignable to the option's function type.
    const options: RedisClientOptions = {
      socket: { reconnectStrategy: reconnectStrategy({ baseMs: 50, capMs: 2000, maxRetries: 20 }) },
    };
    expect(typeof options.socket?.reconnectStrategy).toBe("function");
  });
});
