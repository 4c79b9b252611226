/**
 * A component's arguments as the config parser reads them: the config keys of the component's target (an
 * argument has the name of the key it mirrors), `aws:region` for `region`, and a problem, with a guess, for
 * every argument the component does not take (a key of the other target, a typo).
 */
import { closestKey, closestOf, targetKeys } from "./keys";
import { asConfigText, ConfigInput } from "./reader";
import { ConfigProblem, Target } from "./settings";

export function argumentsInput(
  target: Target,
  args: object,
  options: readonly string[],
  region: string | undefined,
  /** The arguments are a stack's config (the component's `configNamespace`): an unknown one is a stray key. */
  fromStackConfig = false,
): { input: ConfigInput; problems: ConfigProblem[] } {
  const input: Record<string, unknown> = { target, "aws:region": region };
  const problems: ConfigProblem[] = [];
  const known: readonly string[] = targetKeys(target);
  for (const [key, value] of Object.entries(args)) {
    if (options.includes(key)) continue;
    if (known.includes(key)) {
      input[key] = value;
      continue;
    }
    if (fromStackConfig) {
      const guess = closestKey(key);
      problems.push({
        key,
        value: asConfigText(value),
        problem: "is not a setting of this stack",
        fix: guess
          ? `did you mean '${guess}'? (pulumi config rm ${key}; pulumi config set ${guess} ...)`
          : `pulumi config rm ${key}`,
      });
      continue;
    }
    const guess = closestOf(key, [...known, ...options]);
    problems.push({
      key,
      value: asConfigText(value),
      problem: `is not an argument of the ${target === "ec2" ? "EC2 cluster" : "Redis Cloud database"}`,
      fix: guess ? `did you mean '${guess}'? (pulumi config rm ${key})` : `pulumi config rm ${key}`,
    });
  }
  return { input, problems };
}
