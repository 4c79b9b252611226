/**
 * The `app` user's ACL: what apps may run on the EC2 target's nodes, and the grants a team may add
 * (`appAclGrants`). Pure: preview validates the grants against the command table of the Redis the nodes
 * run (redisCommands.json, written by lab/vendorRedisCommands.ts from Debian 12's redis-server 7.0 and
 * checked against it by tests/unit/appAcl.test.ts), and the node applies the rules live (node.sh
 * apply_app_acl), so a grant needs no restart.
 */
import table from "./redisCommands.json";

/**
 * Data commands, scripting, pub/sub, transactions, INFO and the cluster reads clients need; nothing that
 * destroys, ships out or administers data. `-@admin -@dangerous` removes CONFIG, DEBUG, SHUTDOWN, ACL,
 * REPLICAOF, FAILOVER, MODULE, MONITOR, SAVE/BGSAVE, the CLUSTER writes, CLIENT KILL/PAUSE/LIST and also
 * FLUSHALL, FLUSHDB, KEYS, MIGRATE, RESTORE, SWAPDB. Given back: INFO (ioredis's ready check, Sentinel
 * clients) and SORT/SORT_RO (data commands Redis files as dangerous for their cost). Taken away besides,
 * though outside those categories: SCRIPT FLUSH, FUNCTION FLUSH (wipe every script), FUNCTION RESTORE (a
 * payload like RESTORE's) and SCRIPT DEBUG (its sync mode blocks the server).
 */
export const APP_ACL_RULES =
  "~* &* +@all -@admin -@dangerous +info +sort +sort_ro -script|flush -script|debug -function|flush -function|restore";

const COMMANDS: Readonly<Record<string, readonly string[]>> = table.commands;
const CATEGORIES: readonly string[] = table.categories;

/** The Redis version the command table was read from. */
export const COMMAND_TABLE_VERSION: string = table.redisVersion;

/** The ACL categories of a command or `command|subcommand` (lower case), or undefined if Redis has none such. */
export function commandCategories(name: string): readonly string[] | undefined {
  return COMMANDS[name.toLowerCase()];
}

/**
 * Commands no grant gives the app user, even named: each lets it change its own rights or the server's
 * files, or run code of its choosing on the node.
 */
export const NEVER_GRANTED = [
  "acl|setuser",
  "acl|deluser",
  "acl|load",
  "acl|save",
  "config|set",
  "config|rewrite",
  "module|load",
  "module|loadex",
  "debug",
] as const;

/** The @admin or @dangerous commands the default gives back by name (INFO, SORT, SORT_RO). */
const GIVEN_BACK = APP_ACL_RULES.split(" ")
  .filter((r) => /^\+[a-z]/.test(r))
  .map((r) => r.slice(1));

const isRisky = (c: string) =>
  !GIVEN_BACK.includes(c) && (COMMANDS[c].includes("admin") || COMMANDS[c].includes("dangerous"));

/**
 * The @admin and @dangerous commands a `+` rule would give at once, without naming them: those of a
 * category (`@all` holds every command), or the subcommands of a container (`+client` grants CLIENT KILL).
 * A command named alone is not in it: naming it is the spelling out.
 */
export function riskyCommandsGranted(target: string): string[] {
  const lower = target.toLowerCase();
  if (lower.startsWith("@")) {
    const category = lower.slice(1);
    return Object.keys(COMMANDS).filter((c) => (category === "all" || COMMANDS[c].includes(category)) && isRisky(c));
  }
  return lower.includes("|") ? [] : Object.keys(COMMANDS).filter((c) => c.startsWith(`${lower}|`) && isRisky(c));
}

const upper = (names: readonly string[]) =>
  names
    .slice(0, 3)
    .map((n) => n.replace("|", " ").toUpperCase())
    .join(", ") + (names.length > 3 ? ` and ${names.length - 3} more` : "");

/**
 * Why one `appAclGrants` rule is refused, or undefined if it is accepted. Only command rules: `+cmd`,
 * `-cmd`, `+cmd|sub`, `-cmd|sub`, `+@category`, `-@category`; keys, channels, passwords and flags stay the
 * stack's. An @admin or @dangerous command is granted only by its name (a category or a container that
 * holds one is refused), and never one of NEVER_GRANTED.
 */
export function appAclGrantProblem(rule: string): string | undefined {
  const m = /^([+-])(@?)([a-z0-9_|-]+)$/i.exec(rule);
  if (!m) {
    return `'${rule}' is not a command rule (+command, -command, +command|subcommand or +@category); keys, channels, passwords and user flags are the stack's`;
  }
  const [, sign, isCategory, name] = m;
  const lower = name.toLowerCase();
  if (isCategory && lower !== "all" && !CATEGORIES.includes(lower)) {
    return `'${rule}': Redis ${COMMAND_TABLE_VERSION} has no ACL category @${lower}`;
  }
  if (!isCategory && commandCategories(lower) === undefined) {
    const [cmd, sub] = lower.split("|");
    return sub !== undefined && commandCategories(cmd) !== undefined
      ? `'${rule}': ${cmd.toUpperCase()} has no subcommand ${sub.toUpperCase()} in Redis ${COMMAND_TABLE_VERSION}`
      : `'${rule}': Redis ${COMMAND_TABLE_VERSION} has no command ${cmd.toUpperCase()}`;
  }
  if (sign === "-") return undefined;
  const risky = riskyCommandsGranted(`${isCategory}${lower}`);
  if (risky.length > 0) {
    return `'${rule}' would give the app user ${risky.length} admin or dangerous command${risky.length > 1 ? "s" : ""} at once (${upper(risky)}); name each one it needs instead (for example +flushdb, +client|setname)`;
  }
  const never = NEVER_GRANTED.find((c) => c === lower);
  if (never !== undefined) {
    return `'${rule}': ${upper([never])} would let the app user change its own rights, the server's files or the code it runs; that is the admin user's (docs/runbook.md)`;
  }
  return undefined;
}

/** The grants as the config key holds them: rules separated by spaces. */
export function parseAppAclGrants(text: string): string[] {
  return text.split(/\s+/).filter((r) => r !== "");
}

/** The app user's full rule list: the default, then the team's grants in their order. */
export function appAclRules(grants: readonly string[]): string {
  return [APP_ACL_RULES, ...grants].join(" ");
}

/**
 * Every `+` rule preview refuses although Redis has its target: the categories and containers that hold
 * @admin or @dangerous commands, and NEVER_GRANTED. The node refuses the same list (user-data
 * APP_ACL_REFUSED) in settings that did not come through preview.
 */
export function refusedGrants(): string[] {
  const categories = ["all", ...CATEGORIES].map((c) => `+@${c}`);
  const commands = Object.keys(COMMANDS).map((c) => `+${c}`);
  return [...categories, ...commands].filter((rule) => appAclGrantProblem(rule) !== undefined);
}
