/** withRetry on a fake clock: what it retries, how long it waits, and when it gives up. */
import { backoffDelay, BackoffOptions } from "../../../client/src/backoff";
import { RetryBudgetExceededError } from "../../../client/src/errors";
import { RetryOptions, withRetry } from "../../../client/src/retry";

class Transient extends Error {}
class Fatal extends Error {}

/** A clock that only moves when the code under test sleeps or an op "takes" time. */
function fakeTime() {
  const t = { now: 1000 };
  const sleeps: { at: number; ms: number }[] = [];
  return {
    t,
    sleeps,
    now: () => t.now,
    sleep: async (ms: number) => {
      sleeps.push({ at: t.now, ms });
      t.now += ms;
    },
  };
}

const backoff: BackoffOptions = { baseMs: 100, capMs: 1000, random: () => 0.5 };

function options(time: ReturnType<typeof fakeTime>, extra: Partial<RetryOptions> = {}): RetryOptions {
  return {
    budgetMs: 10_000,
    backoff,
    isRetryable: (e) => e instanceof Transient,
    now: time.now,
    sleep: time.sleep,
    ...extra,
  };
}

/** An op failing with the given errors in turn, then returning "ok"; each call can take time. */
function flaky(errors: unknown[], time?: ReturnType<typeof fakeTime>, takesMs = 0) {
  const op = jest.fn(async () => {
    if (time) time.t.now += takesMs;
    const next = errors.shift();
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- one test rejects with a non-Error
    if (next !== undefined) throw next;
    return "ok";
  });
  return op;
}

test("a success is returned at once", async () => {
  const time = fakeTime();
  const op = flaky([]);
  await expect(withRetry(op, options(time))).resolves.toBe("ok");
  expect(op).toHaveBeenCalledTimes(1);
  expect(time.sleeps).toEqual([]);
});

test("retries a retryable error with the backoff, counting attempts from 1", async () => {
  const time = fakeTime();
  const errors = [new Transient("a"), new Transient("b"), new Transient("c")];
  const op = flaky([...errors]);
  const onRetry = jest.fn();
  await expect(withRetry(op, options(time, { onRetry }))).resolves.toBe("ok");
  expect(op).toHaveBeenCalledTimes(4);
  expect(time.sleeps.map((s) => s.ms)).toEqual([0, 1, 2].map((n) => backoffDelay(n, backoff)));
  expect(time.sleeps.map((s) => s.ms)).toEqual([50, 100, 200]);
  expect(onRetry.mock.calls).toEqual([
    [errors[0], 1, 50],
    [errors[1], 2, 100],
    [errors[2], 3, 200],
  ]);
});

test("beforeRetry runs after the backoff and before each retry, awaited", async () => {
  const time = fakeTime();
  const log: string[] = [];
  const errors = [new Transient("a"), new Transient("b")];
  let attempts = 0;
  const op = async () => {
    log.push(`attempt ${++attempts}`);
    const e = errors.shift();
    if (e) throw e;
    return attempts;
  };
  const result = await withRetry(op, {
    ...options(time),
    sleep: async (ms) => void log.push(`sleep ${ms}`),
    beforeRetry: async (e, attempt) => {
      await Promise.resolve();
      log.push(`refresh ${attempt} after ${(e as Error).message}`);
    },
  });
  expect(result).toBe(3);
  expect(log).toEqual([
    "attempt 1",
    "sleep 50",
    "refresh 1 after a",
    "attempt 2",
    "sleep 100",
    "refresh 2 after b",
    "attempt 3",
  ]);
});

test("retryAtOnce: after such an error the retry starts without a backoff; other errors still back off", async () => {
  const time = fakeTime();
  class Timeout extends Transient {}
  const errors = [new Timeout("t1"), new Transient("a"), new Timeout("t2")];
  const op = flaky([...errors], time, 1000);
  const onRetry = jest.fn();
  const beforeRetry = jest.fn(async () => undefined);
  await expect(
    withRetry(op, options(time, { onRetry, beforeRetry, retryAtOnce: (e) => e instanceof Timeout })),
  ).resolves.toBe("ok");
  expect(op).toHaveBeenCalledTimes(4);
  expect(onRetry.mock.calls).toEqual([
    [errors[0], 1, 0],
    [errors[1], 2, 100],
    [errors[2], 3, 0],
  ]);
  // Only the other error slept; every retry still refreshed first.
  expect(time.sleeps.map((s) => s.ms)).toEqual([100]);
  expect(beforeRetry).toHaveBeenCalledTimes(3);
});

test("a failing beforeRetry does not stop the retries", async () => {
  const time = fakeTime();
  const op = flaky([new Transient("a")]);
  const beforeRetry = jest.fn(async () => {
    throw new Error("topology refresh failed: all nodes down");
  });
  await expect(withRetry(op, options(time, { beforeRetry }))).resolves.toBe("ok");
  expect(beforeRetry).toHaveBeenCalledTimes(1);
});

test("a non-retryable error is rethrown unchanged, at once", async () => {
  const time = fakeTime();
  const fatal = new Fatal("WRONGTYPE");
  const op = flaky([fatal]);
  const beforeRetry = jest.fn(async () => undefined);
  await expect(withRetry(op, options(time, { beforeRetry }))).rejects.toBe(fatal);
  expect(op).toHaveBeenCalledTimes(1);
  expect(time.sleeps).toEqual([]);
  expect(beforeRetry).not.toHaveBeenCalled();
});

test("a non-retryable error after some retries is rethrown unchanged too", async () => {
  const time = fakeTime();
  const fatal = new Fatal("closed");
  const op = flaky([new Transient("a"), fatal]);
  await expect(withRetry(op, options(time))).rejects.toBe(fatal);
  expect(op).toHaveBeenCalledTimes(2);
});

test("gives up with RetryBudgetExceededError once the budget is spent: last error, attempts, elapsed", async () => {
  const time = fakeTime();
  const start = time.t.now;
  const errors = Array.from({ length: 50 }, (_, i) => new Transient(`e${i}`));
  const op = flaky([...errors], time, 30);
  const error: unknown = await withRetry(op, options(time, { budgetMs: 1000 })).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RetryBudgetExceededError);
  const budget = error as RetryBudgetExceededError;
  // attempt k starts after the sleeps 50, 100, 200, 400 (clipped) and 30 ms per attempt.
  expect(time.sleeps.map((s) => s.ms)).toEqual([50, 100, 200, 400, 100]);
  expect(budget.attempts).toBe(6);
  expect(op).toHaveBeenCalledTimes(6);
  expect(budget.cause).toBe(errors[5]);
  expect(budget.elapsedMs).toBe(time.t.now - start);
  expect(budget.elapsedMs).toBe(1030);
});

test("never sleeps past the budget", async () => {
  for (const [budgetMs, takesMs] of [
    [250, 0],
    [1000, 7],
    [333, 40],
    [5000, 123],
  ]) {
    const time = fakeTime();
    const start = time.t.now;
    const op = flaky(
      Array.from({ length: 1000 }, () => new Transient("down")),
      time,
      takesMs,
    );
    const error: unknown = await withRetry(
      op,
      options(time, { budgetMs, backoff: { baseMs: 200, capMs: 5000, random: () => 0.99 } }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryBudgetExceededError);
    for (const s of time.sleeps) expect(s.at + s.ms).toBeLessThanOrEqual(start + budgetMs);
    // The last sleep was clipped to end exactly at the budget (attempts take no time while sleeping).
    const last = time.sleeps[time.sleeps.length - 1];
    expect(last.at + last.ms).toBe(start + budgetMs);
  }
});

test("a first backoff longer than the budget is clipped to it", async () => {
  const time = fakeTime();
  const op = flaky([new Transient("a"), new Transient("b")]);
  const error: unknown = await withRetry(
    op,
    options(time, { budgetMs: 250, backoff: { baseMs: 10_000, capMs: 10_000, random: () => 0.5 } }),
  ).catch((e: unknown) => e);
  expect(time.sleeps.map((s) => s.ms)).toEqual([250]);
  expect(error).toBeInstanceOf(RetryBudgetExceededError);
  expect((error as RetryBudgetExceededError).attempts).toBe(2);
});

test("a zero budget makes one attempt", async () => {
  const time = fakeTime();
  const first = new Transient("a");
  const op = flaky([first]);
  const error: unknown = await withRetry(op, options(time, { budgetMs: 0 })).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RetryBudgetExceededError);
  expect((error as RetryBudgetExceededError).attempts).toBe(1);
  expect((error as RetryBudgetExceededError).cause).toBe(first);
  expect(time.sleeps).toEqual([]);
});

test("a zero backoff does not sleep", async () => {
  const time = fakeTime();
  const op = flaky([new Transient("a"), new Transient("b")]);
  await expect(withRetry(op, options(time, { backoff: { baseMs: 0, capMs: 0 } }))).resolves.toBe("ok");
  expect(time.sleeps).toEqual([]);
  expect(op).toHaveBeenCalledTimes(3);
});

test("retries what isRetryable accepts, even a value that is not an Error", async () => {
  const time = fakeTime();
  const op = flaky(["ECONNRESET"]);
  await expect(withRetry(op, options(time, { isRetryable: (e) => e === "ECONNRESET" }))).resolves.toBe("ok");
  expect(op).toHaveBeenCalledTimes(2);
});

test("defaults to the real clock and timers", async () => {
  const op = flaky([new Transient("a"), new Transient("b")]);
  const result = await withRetry(op, {
    budgetMs: 5000,
    backoff: { baseMs: 2, capMs: 2 },
    isRetryable: (e) => e instanceof Transient,
  });
  expect(result).toBe("ok");
  expect(op).toHaveBeenCalledTimes(3);
});

test.each([-1, Number.NaN])("rejects a budget of %p", async (budgetMs) => {
  await expect(withRetry(async () => 1, { budgetMs, backoff, isRetryable: () => true })).rejects.toThrow(RangeError);
});
