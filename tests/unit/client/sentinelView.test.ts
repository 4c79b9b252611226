/**
 * How the client reads the Sentinels (client/src/sentinel.ts): SENTINEL MASTER in both protocols, which
 * answer it follows while they disagree, and +switch-master. The backend itself runs against real
 * Sentinels in sentinel.test.ts (kill -9) and in the lab's Sentinel suite (a silent primary).
 */
import {
  choosePrimary,
  parseSentinelMaster,
  parseSwitchMaster,
  SentinelView,
  worthFollowing,
} from "../../../client/src/sentinel";

const fields = { name: "app", ip: "10.0.1.5", port: "6379", flags: "master", "config-epoch": "3" };

test("SENTINEL MASTER: RESP3's map (object or Map) and RESP2's flat list give the same view", () => {
  const want: SentinelView = { host: "10.0.1.5", port: 6379, epoch: 3, flags: ["master"] };
  expect(parseSentinelMaster(fields)).toEqual(want);
  expect(parseSentinelMaster(new Map(Object.entries(fields)))).toEqual(want);
  expect(parseSentinelMaster(Object.entries(fields).flat())).toEqual(want);
  expect(parseSentinelMaster({ ...fields, flags: "s_down,o_down,master" })?.flags).toEqual([
    "s_down",
    "o_down",
    "master",
  ]);
});

test("SENTINEL MASTER: anything without an address is no view", () => {
  expect(parseSentinelMaster(null)).toBeUndefined();
  expect(parseSentinelMaster("ERR No such master with that name")).toBeUndefined();
  expect(parseSentinelMaster({ ...fields, ip: "" })).toBeUndefined();
  expect(parseSentinelMaster({ ...fields, port: "x" })).toBeUndefined();
  expect(parseSentinelMaster([])).toBeUndefined();
});

test("the newest config epoch wins: a Sentinel that missed the failover still names the old primary", () => {
  const old: SentinelView = { host: "10.0.1.5", port: 6379, epoch: 3, flags: ["s_down", "o_down", "master"] };
  const promoted: SentinelView = { host: "10.0.2.7", port: 6379, epoch: 4, flags: ["master"] };
  expect(choosePrimary([old, undefined, promoted])).toEqual(promoted);
  expect(choosePrimary([promoted, old])).toEqual(promoted);
});

test("at the same epoch a primary no Sentinel sees down comes first; no answer is no primary", () => {
  const down: SentinelView = { host: "10.0.1.5", port: 6379, epoch: 3, flags: ["s_down", "master"] };
  const up: SentinelView = { ...down, flags: ["master"] };
  expect(choosePrimary([down, up])).toBe(up);
  expect(choosePrimary([down])).toBe(down);
  expect(choosePrimary([undefined, undefined, undefined])).toBeUndefined();
  expect(choosePrimary([])).toBeUndefined();
});

test("+switch-master: the new address for our name only", () => {
  expect(parseSwitchMaster("app 10.0.1.5 6379 10.0.2.7 6379", "app")).toEqual({ host: "10.0.2.7", port: 6379 });
  expect(parseSwitchMaster("other 10.0.1.5 6379 10.0.2.7 6379", "app")).toBeUndefined();
  expect(parseSwitchMaster("app 10.0.1.5 6379", "app")).toBeUndefined();
  expect(parseSwitchMaster("app 10.0.1.5 6379 10.0.2.7 zero", "app")).toBeUndefined();
});

test("a refresh does not move back to a primary the Sentinels see down, nor to an older epoch", () => {
  const old: SentinelView = { host: "10.0.1.5", port: 6379, epoch: 3, flags: ["s_down", "o_down", "master"] };
  // Told by +switch-master, then asked a majority that had not heard of the failover yet: stay.
  expect(worthFollowing(old, 3)).toBe(false);
  expect(worthFollowing({ ...old, flags: ["s_down", "master"] }, 3)).toBe(false);
  expect(worthFollowing({ ...old, flags: ["master"] }, 4)).toBe(false);
  expect(worthFollowing(undefined, 0)).toBe(false);
  // The promoted primary, at the failover's epoch: move.
  expect(worthFollowing({ host: "10.0.2.7", port: 6379, epoch: 4, flags: ["master"] }, 3)).toBe(true);
  expect(worthFollowing({ ...old, flags: ["master"] }, 3)).toBe(true);
});
