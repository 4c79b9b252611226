/**
 * Configuration problems as users read them: each names the key (or argument), the bad value, what is wrong
 * and the fix. Stack config gets `pulumi config` commands; the library's components get the argument
 * spelled as code (`argumentFix`).
 */
import { ConfigProblem } from "./settings";

export class ConfigError extends Error {
  constructor(
    readonly problems: ConfigProblem[],
    namespace: string,
  ) {
    super(formatProblems(problems, namespace));
    this.name = "ConfigError";
  }
}

export function formatProblems(problems: ConfigProblem[], namespace: string): string {
  const lines = problems.map((p) => {
    const shown = p.value === undefined ? "(not set)" : JSON.stringify(p.value);
    const key = p.key.includes(":") ? p.key : `${namespace}:${p.key}`;
    return `  - ${key} = ${shown}: ${p.problem}\n    fix: ${p.fix}`;
  });
  const n = problems.length;
  return `invalid stack configuration (${n} problem${n === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}
