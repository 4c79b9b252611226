/**
 * The cluster backend's watch over commands that wait on a silent master (client/src/index.ts slotWatch):
 * a command whose slot moves while it waits is given up at once, to be retried on the new master.
 */
import { slotWatch } from "../../../client/src/index";
import { TopologyChangedError } from "../../../client/src/errors";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cluster(initial: Record<number, string>) {
  const masters = new Map(Object.entries(initial).map(([k, v]) => [Number(k), v]));
  const asked: string[][] = [];
  let next: Record<number, string> | undefined;
  return {
    masters,
    asked,
    /** What the next re-read of the slots will find. */
    failover: (to: Record<number, string>) => (next = to),
    watch: slotWatch({
      masterOf: (slot) => masters.get(slot),
      rediscover: async (waitedOn) => {
        asked.push([...waitedOn]);
        if (next) for (const [k, v] of Object.entries(next)) masters.set(Number(k), v);
      },
      everyMs: 20,
    }),
  };
}

test("a command waiting on a master whose slot moves is given up with the new master, the others are not", async () => {
  const c = cluster({ 1: "10.0.0.1:6379", 2: "10.0.0.2:6379" });
  const silent = c.watch.run(1, () => new Promise<string>(() => undefined));
  const slowButFine = c.watch.run(2, () => sleep(120).then(() => "OK"));
  await sleep(50);
  // The slots were re-read without asking the nodes waited on.
  expect(c.asked.length).toBeGreaterThan(0);
  expect(c.asked[0].sort()).toEqual(["10.0.0.1:6379", "10.0.0.2:6379"]);
  c.failover({ 1: "10.0.1.1:6379" });
  const err = await silent.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TopologyChangedError);
  expect((err as TopologyChangedError).to).toBe("10.0.1.1:6379");
  await expect(slowButFine).resolves.toBe("OK");
  expect(c.watch.size).toBe(0);
});

test("a quick command is never re-read for, and a keyless or unmapped one is not watched", async () => {
  const c = cluster({ 1: "10.0.0.1:6379" });
  await expect(c.watch.run(1, async () => "OK")).resolves.toBe("OK");
  await expect(c.watch.run(undefined, async () => "PONG")).resolves.toBe("PONG");
  await expect(c.watch.run(9, async () => "unmapped")).resolves.toBe("unmapped");
  await sleep(60);
  expect(c.asked).toEqual([]);
  expect(c.watch.size).toBe(0);
});

test("the command's own failure still comes through, and the watch ends with the last command", async () => {
  const c = cluster({ 1: "10.0.0.1:6379" });
  const failing = c.watch.run(1, () => sleep(60).then(() => Promise.reject(new Error("READONLY"))));
  await expect(failing).rejects.toThrow("READONLY");
  expect(c.asked.length).toBeGreaterThan(0);
  const before = c.asked.length;
  await sleep(80);
  expect(c.asked.length).toBe(before);
});
