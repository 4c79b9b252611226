/**
 * Writes components/ec2/node/redisCommands.json: every command and subcommand of the redis-server the nodes
 * run (Debian 12's 7.0) with its ACL categories, and the categories themselves, as that server reports them
 * (COMMAND, ACL CAT). Preview checks a team's `appAclGrants` against it; tests/unit/appAcl.test.ts checks it
 * against this machine's redis-server. Run after a Redis major upgrade of the nodes:
 *   npx ts-node --transpile-only lab/vendorRedisCommands.ts
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import Redis from "ioredis";

/** One COMMAND reply entry: name, arity, flags, first, last, step, categories, tips, key specs, subcommands. */
type CommandEntry = [string, number, string[], number, number, number, string[], unknown, unknown, CommandEntry[]];

export interface RedisCommandTable {
  redisVersion: string;
  categories: string[];
  /** "get", "config|set": the command's ACL categories, without the @. */
  commands: Record<string, string[]>;
}

export const COMMANDS_FILE = path.join(__dirname, "..", "components", "ec2", "node", "redisCommands.json");

/** The table as the redis-server at host:port reports it. */
export async function readCommandTable(port: number): Promise<RedisCommandTable> {
  const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
  await r.connect();
  try {
    const info = String(await r.info("server"));
    const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
    const categories = ((await r.call("acl", "cat")) as string[]).sort();
    const commands: Record<string, string[]> = {};
    const add = (e: CommandEntry) => {
      commands[e[0].toLowerCase()] = e[6].map((c) => c.replace(/^@/, "")).sort();
      for (const sub of e[9] ?? []) add(sub);
    };
    for (const e of (await r.call("command")) as CommandEntry[]) add(e);
    const sorted = Object.fromEntries(Object.entries(commands).sort(([a], [b]) => a.localeCompare(b)));
    return { redisVersion, categories, commands: sorted };
  } finally {
    r.disconnect();
  }
}

/** A throwaway redis-server on `port` (no persistence), stopped by the returned function. */
export async function startScratchRedis(port: number): Promise<() => void> {
  const p = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"], {
    stdio: "ignore",
  });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.connect().then(
        () => (r.disconnect(), resolve(true)),
        () => (r.disconnect(), resolve(false)),
      );
    });
    if (up) return () => p.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 100));
  }
  p.kill("SIGKILL");
  throw new Error(`redis-server did not start on port ${port}`);
}

if (require.main === module) {
  (async () => {
    const port = 16400 + (process.pid % 1000);
    const stop = await startScratchRedis(port);
    try {
      const table = await readCommandTable(port);
      fs.writeFileSync(COMMANDS_FILE, JSON.stringify(table, null, 1) + "\n");
      console.log(`${COMMANDS_FILE}: redis ${table.redisVersion}, ${Object.keys(table.commands).length} commands`);
    } finally {
      stop();
    }
  })().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
