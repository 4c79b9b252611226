/**
 * Reads values out of stack config or component arguments, collecting problems instead of throwing.
 */
import { ConfigKey } from "./keys";
import { ConfigProblem } from "./settings";

/**
 * What the parsers read: Pulumi's config (every value a string; lists as JSON) or a component's arguments
 * (numbers, booleans, arrays). Keys are the config keys, plus `aws:region`.
 */
export type ConfigInput = Readonly<Record<string, unknown>>;

/**
 * A value as the config would hold it: strings as they are, numbers and booleans as their text, lists as
 * JSON. So one set of rules and messages serves config and arguments alike, and a value that is not what
 * the key takes is shown as given.
 */
export function asConfigText(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  return JSON.stringify(value);
}

/** Reads values out of config or arguments, collecting problems instead of throwing. */
export class Reader {
  readonly problems: ConfigProblem[] = [];
  constructor(private readonly input: ConfigInput) {}

  get(key: ConfigKey): string | undefined {
    return this.text(key);
  }

  /** Any key's value as text, the keys outside the project's namespace (`aws:region`) included. */
  text(key: string): string | undefined {
    return asConfigText(this.input[key]);
  }

  fail(key: string, value: string | undefined, problem: string, fix: string): void {
    this.problems.push({ key, value, problem, fix });
  }

  int(key: ConfigKey, dflt: number, min: number, max: number, why: string): number {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.fail(key, v, `must be a whole number from ${min} to ${max} (${why})`, `pulumi config set ${key} ${dflt}`);
      return dflt;
    }
    return n;
  }

  number(key: ConfigKey, dflt: number, isOk: (n: number) => boolean, problem: string, fix: string): number {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || !isOk(n)) {
      this.fail(key, v, problem, fix);
      return dflt;
    }
    return n;
  }

  bool(key: ConfigKey, dflt: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if (v === "true" || v === "false") return v === "true";
    this.fail(key, v, "must be true or false", `pulumi config set ${key} ${dflt}`);
    return dflt;
  }

  oneOf<T extends string>(key: ConfigKey, allowed: readonly T[], dflt: T): T {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.fail(key, v, `must be one of ${allowed.join(", ")}`, `pulumi config set ${key} ${dflt}`);
    return dflt;
  }

  /** A list: a YAML/JSON array in the stack file, or a comma-separated string on the command line. */
  list(key: ConfigKey): string[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (v.trim().startsWith("[")) {
      try {
        const parsed: unknown = JSON.parse(v);
        // An empty list is unset (Pulumi.yaml's default for list keys).
        if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string"))
          return parsed.length === 0 ? undefined : parsed.map((s) => s.trim());
      } catch {
        // fall through to the problem below
      }
      this.fail(key, v, "must be a list of strings", `pulumi config set --path '${key}[0]' <value>`);
      return undefined;
    }
    return v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  }
}
