/**
 * The app user's ACL, judged by a real redis-server 7.0 (the nodes' Debian package): the vendored command
 * table is what that server reports, and ACL DRYRUN as a user with the stack's rules refuses what
 * docs/security.md says is refused and runs what it says apps may run. appAclGrants: what preview accepts,
 * what it refuses (naming the key and the fix), and that an accepted grant does what it says on Redis.
 */
import Redis from "ioredis";
import table from "../../components/ec2/node/redisCommands.json";
import {
  APP_ACL_RULES,
  COMMAND_TABLE_VERSION,
  NEVER_GRANTED,
  riskyCommandsGranted,
  appAclGrantProblem,
  appAclRules,
  parseAppAclGrants,
} from "../../components/ec2/node/appAcl";
import { parseSettings } from "../../components/config/parse";
import { REPLICATION_ACL_RULES } from "../../components/ec2/node/redisConf";
import { readCommandTable, startScratchRedis } from "../../lab/vendorRedisCommands";

const PORT = 17400 + (process.pid % 500);
let stop: () => void;
let redis: Redis;

beforeAll(async () => {
  stop = await startScratchRedis(PORT);
  redis = new Redis({ port: PORT, maxRetriesPerRequest: 0 });
});
afterAll(() => {
  redis.disconnect();
  stop();
});

/** Sets user `name` to exactly `rules` (as node.sh apply_app_acl does) and asks ACL DRYRUN about `cmd`. */
async function dryrun(name: string, rules: string, cmd: string[]): Promise<string> {
  await redis.call(
    "acl",
    "setuser",
    name,
    "on",
    "nopass",
    "nocommands",
    "resetkeys",
    "resetchannels",
    ...rules.split(" "),
  );
  try {
    return String(await redis.call("acl", "dryrun", name, ...cmd));
  } catch (e) {
    return (e as Error).message;
  }
}

const REFUSED: string[][] = [
  ["flushall"],
  ["flushdb"],
  ["keys", "*"],
  ["swapdb", "0", "1"],
  ["migrate", "10.0.0.1", "6379", "k", "0", "1000"],
  ["restore", "k", "0", "x"],
  ["config", "get", "maxmemory"],
  ["config", "set", "maxmemory", "1"],
  ["debug", "sleep", "0"],
  ["shutdown"],
  ["acl", "setuser", "x"],
  ["acl", "list"],
  ["monitor"],
  ["replicaof", "no", "one"],
  ["failover"],
  ["module", "list"],
  ["save"],
  ["bgsave"],
  ["bgrewriteaof"],
  ["cluster", "addslots", "1"],
  ["cluster", "setslot", "1", "stable"],
  ["cluster", "forget", "abc"],
  ["cluster", "failover"],
  ["cluster", "reset"],
  ["client", "kill", "ID", "1"],
  ["client", "pause", "10"],
  ["client", "list"],
  ["script", "flush"],
  ["script", "debug", "yes"],
  ["function", "flush"],
  ["function", "restore", "x"],
];

const ALLOWED: string[][] = [
  ["get", "k"],
  ["set", "k", "v"],
  ["hset", "h", "f", "v"],
  ["lpush", "l", "v"],
  ["sadd", "s", "v"],
  ["zadd", "z", "1", "v"],
  ["xadd", "x", "*", "f", "v"],
  ["pfadd", "p", "v"],
  ["setbit", "b", "1", "1"],
  ["geoadd", "g", "0", "0", "m"],
  ["publish", "c", "m"],
  ["subscribe", "c"],
  ["multi"],
  ["exec"],
  ["eval", "return 1", "0"],
  ["fcall", "f", "0"],
  ["scan", "0"],
  ["info"],
  ["cluster", "slots"],
  ["cluster", "shards"],
  ["cluster", "nodes"],
  ["cluster", "info"],
  ["readonly"],
  ["client", "setname", "x"],
  ["sort", "l"],
  ["sort_ro", "l"],
  ["expire", "k", "10"],
  ["del", "k"],
];

describe("the app user's rules on a real redis-server", () => {
  test("the vendored command table is the one this machine's redis-server reports", async () => {
    const live = await readCommandTable(PORT);
    expect(live.redisVersion).toBe(COMMAND_TABLE_VERSION);
    expect(live).toEqual(table);
    expect(Object.keys(live.commands).length).toBeGreaterThan(300);
  });

  test.each(REFUSED.map((c) => [c.join(" "), c]))("refused: %s", async (_name, cmd) => {
    expect(await dryrun("app", APP_ACL_RULES, cmd)).toMatch(/^This user has no permissions to run/);
  });

  test.each(ALLOWED.map((c) => [c.join(" "), c]))("allowed: %s", async (_name, cmd) => {
    expect(await dryrun("app", APP_ACL_RULES, cmd)).toBe("OK");
  });

  test("the user has every key and channel, and no admin command at all", async () => {
    await dryrun("app", APP_ACL_RULES, ["get", "k"]);
    const user = (await redis.call("acl", "getuser", "app")) as unknown[];
    const field = (name: string) => String(user[user.indexOf(name) + 1]);
    expect(field("keys")).toBe("~*");
    expect(field("channels")).toBe("&*");
    const admin = Object.entries(table.commands).filter(([, cats]) => cats.includes("admin"));
    expect(admin.length).toBeGreaterThan(50);
    for (const [name] of admin) {
      // DRYRUN checks arity first: add arguments until the ACL is what answers.
      let reply = "";
      for (let extra = 0; extra <= 6; extra++) {
        reply = await dryrun("app", APP_ACL_RULES, [...name.split("|"), ...Array<string>(extra).fill("1")]);
        if (!/wrong number of arguments/.test(reply)) break;
      }
      expect([name, reply]).toEqual([name, expect.stringMatching(/^This user has no permissions to run/)]);
    }
  });
});

describe("the replication user's rules on a real redis-server", () => {
  test("a replica's handshake (PING, REPLCONF, PSYNC) and nothing else: no key, no channel, no other command", async () => {
    expect(await dryrun("replication", REPLICATION_ACL_RULES, ["ping"])).toBe("OK");
    expect(await dryrun("replication", REPLICATION_ACL_RULES, ["replconf", "listening-port", "6379"])).toBe("OK");
    expect(await dryrun("replication", REPLICATION_ACL_RULES, ["psync", "?", "-1"])).toBe("OK");
    const user = (await redis.call("acl", "getuser", "replication")) as unknown[];
    const field = (name: string) => String(user[user.indexOf(name) + 1]);
    expect(field("keys")).toBe("");
    expect(field("channels")).toBe("");
    const names = Object.keys(table.commands);
    // Every other command and subcommand answers as it does for a user with no commands at all (AUTH, HELLO
    // and QUIT need none); a container such as `acl` is judged by its subcommands.
    const others = names.filter(
      (c) => !["ping", "replconf", "psync"].includes(c) && !names.some((n) => n.startsWith(`${c}|`)),
    );
    expect(others.length).toBeGreaterThan(200);
    let refused = 0;
    for (const name of others) {
      const replies: string[] = [];
      for (const [user, rules] of [
        ["replication", REPLICATION_ACL_RULES],
        ["nothing", "-@all"],
      ]) {
        let reply = "";
        for (let extra = 0; extra <= 12; extra++) {
          reply = await dryrun(user, rules, [...name.split("|"), ...Array<string>(extra).fill("1")]);
          if (!/wrong number of arguments/.test(reply)) break;
        }
        replies.push(reply);
      }
      expect([name, replies[0]]).toEqual([name, replies[1]]);
      if (/^This user has no permissions to run/.test(replies[0])) refused++;
    }
    expect(refused).toBeGreaterThan(others.length - 5);
  });
});

describe("appAclGrants", () => {
  test("unset: no grants, the rules are the default", () => {
    const s = parseSettings({ "aws:region": "us-east-1" });
    expect(s.problems).toEqual([]);
    expect(s.settings?.ec2?.appAclGrants).toEqual([]);
    expect(appAclRules([])).toBe(APP_ACL_RULES);
    expect(parseSettings({ "aws:region": "us-east-1", appAclGrants: "" }).settings?.ec2?.appAclGrants).toEqual([]);
  });

  test("accepted grants reach the settings in their order, whatever the spacing", () => {
    const s = parseSettings({ "aws:region": "us-east-1", appAclGrants: "  +flushdb +keys\t-eval " });
    expect(s.problems).toEqual([]);
    expect(s.settings?.ec2?.appAclGrants).toEqual(["+flushdb", "+keys", "-eval"]);
    expect(appAclRules(["+flushdb", "-eval"])).toBe(`${APP_ACL_RULES} +flushdb -eval`);
  });

  test.each([
    ["+flushdb", undefined],
    ["+keys", undefined],
    ["+FLUSHALL", undefined],
    ["-eval", undefined],
    ["-@write", undefined],
    ["-@all", undefined],
    ["+@hash", undefined],
    ["+client|getname", undefined],
    ["+client|kill", undefined],
    ["+config|get", undefined],
    ["+shutdown", undefined],
    ["+@all", /would give the app user \d+ admin or dangerous commands at once/],
    ["+@admin", /admin or dangerous commands at once/],
    ["+@dangerous", /admin or dangerous commands at once/],
    ["+@keyspace", /at once \(.*FLUSHALL/],
    ["+@slow", /at once/],
    ["+config", /at once \(CONFIG GET/],
    ["+client", /at once \(CLIENT KILL/],
    ["+config|set", /CONFIG SET would let the app user change its own rights/],
    ["+acl|setuser", /ACL SETUSER would let the app user/],
    ["+module|load", /MODULE LOAD would let/],
    ["+debug", /DEBUG would let/],
    ["+nosuch", /has no command NOSUCH/],
    ["+client|nosuch", /CLIENT has no subcommand NOSUCH/],
    ["+@nosuch", /has no ACL category @nosuch/],
    ["~secret:*", /not a command rule/],
    [">password", /not a command rule/],
    ["nopass", /not a command rule/],
    ["allkeys", /not a command rule/],
  ])("%s -> %s", (rule, expected) => {
    const problem = appAclGrantProblem(rule);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });

  test("a refused grant fails preview naming the key, the rule and the fix", () => {
    const r = parseSettings({ "aws:region": "us-east-1", appAclGrants: "+flushdb +config" });
    expect(r.problems).toHaveLength(1);
    const p = r.problems[0];
    expect(p.key).toBe("appAclGrants");
    expect(p.problem).toMatch(/'\+config' would give the app user 4 admin or dangerous commands at once \(CONFIG GET/);
    expect(p.fix).toMatch(/^pulumi config set appAclGrants "\+flushdb \+keys"/);
  });

  test("every grant preview accepts is one Redis accepts, and gives exactly what it names", async () => {
    const grants = parseAppAclGrants("+flushdb +keys +@hash -eval +client|getname +config|get");
    expect(grants.map(appAclGrantProblem)).toEqual(grants.map(() => undefined));
    const rules = appAclRules(grants);
    expect(await dryrun("granted", rules, ["flushdb"])).toBe("OK");
    expect(await dryrun("granted", rules, ["keys", "*"])).toBe("OK");
    expect(await dryrun("granted", rules, ["config", "get", "maxmemory"])).toBe("OK");
    expect(await dryrun("granted", rules, ["eval", "return 1", "0"])).toMatch(/no permissions/);
    expect(await dryrun("granted", rules, ["flushall"])).toMatch(/no permissions/);
    expect(await dryrun("granted", rules, ["config", "set", "maxmemory", "1"])).toMatch(/no permissions/);
    expect(await dryrun("granted", rules, ["client", "kill", "id", "1"])).toMatch(/no permissions/);
  });

  test("the commands never granted exist in Redis, and the default grants none of them", async () => {
    for (const name of NEVER_GRANTED) {
      expect(table.commands).toHaveProperty([name]);
      expect(riskyCommandsGranted(name)).toEqual([]);
    }
    expect(riskyCommandsGranted("@hash")).toEqual([]);
    expect(riskyCommandsGranted("@all").length).toBeGreaterThan(60);
  });
});
