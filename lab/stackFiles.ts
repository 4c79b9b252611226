/**
 * The repository's checked-in stacks (Pulumi.<stack>.yaml) as the lab, the local mode, the benches and the
 * tests read them: raw config, and settings validated exactly as `pulumi preview` validates them.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigError } from "../components/config/problems";
import { Settings } from "../components/config/settings";
import { parseSettings } from "../components/config/parse";

export const ROOT = path.resolve(__dirname, "..");

/** Pulumi.<stack>.yaml in Pulumi's flat form: `project:key` -> string (lists and maps as JSON). */
export function stackConfig(stack: string): Record<string, string> {
  const doc = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as {
    config?: Record<string, unknown>;
  };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    out[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

/**
 * A stack's settings from its checked-in Pulumi.<stack>.yaml, with `overrides` on top (keys as in
 * `pulumi config set`, without the project prefix). Invalid values throw the stack's own problem list.
 */
export function stackSettings(
  stack: string,
  project = "redis-stack",
  overrides: Record<string, string> = {},
): Settings {
  const raw: Record<string, string> = {};
  for (const [key, value] of Object.entries(stackConfig(stack))) {
    raw[key.startsWith(`${project}:`) ? key.slice(project.length + 1) : key] = value;
  }
  Object.assign(raw, overrides);
  const { settings, problems } = parseSettings(raw);
  if (!settings || problems.length > 0) throw new ConfigError(problems, project);
  return settings;
}
