/**
 * Attempt deadlines shared by epoch: an attempt still pending past its deadline plus the grace fails with
 * node-redis's TimeoutError; the epoch's abort signal fires at the deadline, and exists only when asked for.
 */
import { TimeoutError } from "redis";
import { Deadlines } from "../../../client/src/deadlines";

test("a pending attempt is aborted at its deadline and rejected after the grace; settled ones are untouched", async () => {
  let now = 1000;
  const d = new Deadlines({ timeoutMs: 100, tickMs: 10, graceMs: 20, now: () => now });
  let signal: AbortSignal | undefined;
  const hung = d.run((s) => {
    signal = s;
    return new Promise<string>(() => undefined);
  }, true);
  const quick = d.run(async () => "ok");
  await expect(quick).resolves.toBe("ok");
  expect(signal).toBeDefined();
  now = 1099;
  d.sweep();
  expect(signal?.aborted).toBe(false);
  now = 1100;
  d.sweep();
  expect(signal?.aborted).toBe(true);
  expect(d.inFlight).toBe(1);
  now = 1120;
  d.sweep();
  await expect(hung).rejects.toBeInstanceOf(TimeoutError);
  expect(d.inFlight).toBe(0);
});

test("attempts that do not ask for a signal get none, and a later epoch keeps its own deadline", async () => {
  let now = 0;
  const d = new Deadlines({ timeoutMs: 100, tickMs: 10, graceMs: 0, now: () => now });
  let seen: AbortSignal | undefined = new AbortController().signal;
  const first = d.run((s) => {
    seen = s;
    return new Promise<void>(() => undefined);
  });
  expect(seen).toBeUndefined();
  now = 50;
  const second = d.run(() => new Promise<void>(() => undefined));
  now = 100;
  d.sweep();
  await expect(first).rejects.toBeInstanceOf(TimeoutError);
  expect(d.inFlight).toBe(1);
  now = 150;
  d.sweep();
  await expect(second).rejects.toBeInstanceOf(TimeoutError);
});
