/**
 * Configuration problems as users read them: each names the key (or argument), the bad value, what is wrong
 * and the fix. The parsers write every fix as the `pulumi config` command a stack's user runs; a component
 * built from a program's own arguments gets the same problems with the argument spelled as code
 * (`argumentFix`), so both read the rules and messages of one validator.
 */
import { ConfigProblem } from "./settings";

/**
 * Who reads the problems: a stack's user (keys of the project's config namespace, `pulumi config` fixes), or
 * the author of a program that builds a component (the component's arguments).
 */
export type ProblemAudience = { config: string } | { component: string };

export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
    audience: string | ProblemAudience,
  ) {
    super(formatProblems(problems, audience));
    this.name = "ConfigError";
  }
}

/** The argument a config key is, in a component's arguments (`aws:region` is `region`). */
export function argumentName(key: string): string {
  return key === "aws:region" ? "region" : key;
}

/** A value as it is written in code: numbers and booleans bare, placeholders as they are, text quoted. */
function asCode(value: string): string {
  if (/^(-?\d+(\.\d+)?|true|false|\.\.\.)$/.test(value) || /^<.*>$/.test(value)) return value;
  return JSON.stringify(value.replace(/^'(.*)'$/, "$1"));
}

/**
 * A fix written as `pulumi config` commands, for a program's author: `pulumi config set shards 3` becomes
 * `shards: 3`, `pulumi config set --path 'allowedCidrs[0]' 10.0.0.0/16` becomes `allowedCidrs: ["10.0.0.0/16"]`,
 * `pulumi config rm shards` becomes `leave shards out`; the rest of the text stays.
 */
export function argumentFix(fix: string): string {
  return fix
    .replace(
      /pulumi config set (?:--secret )?([\w:]+) -- "\$\(cat ([^)]+)\)"/g,
      (_, key: string, file: string) => `${argumentName(key)}: <the text of ${file}>`,
    )
    .replace(
      /pulumi config set --path '(\w+)\[\d+\]' (<[^>]*>|\S+)/g,
      (_, key: string, value: string) => `${argumentName(key)}: [${asCode(value)}]`,
    )
    .replace(
      /pulumi config set (?:--secret )?([\w:]+) (<[^>]*>|\S+)/g,
      (_, key: string, value: string) => `${argumentName(key)}: ${asCode(value)}`,
    )
    .replace(/pulumi config rm ([\w:]+)/g, (_, key: string) => `leave ${argumentName(key)} out`);
}

export function formatProblems(problems: ConfigProblem[], audience: string | ProblemAudience): string {
  const to: ProblemAudience = typeof audience === "string" ? { config: audience } : audience;
  const lines = problems.map((p) => {
    const shown = p.value === undefined ? "(not set)" : JSON.stringify(p.value);
    if ("component" in to) return `  - ${argumentName(p.key)} = ${shown}: ${p.problem}\n    fix: ${argumentFix(p.fix)}`;
    const key = p.key.includes(":") ? p.key : `${to.config}:${p.key}`;
    return `  - ${key} = ${shown}: ${p.problem}\n    fix: ${p.fix}`;
  });
  const n = problems.length;
  const what = "component" in to ? `invalid arguments of ${to.component}` : "invalid stack configuration";
  return `${what} (${n} problem${n === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}
