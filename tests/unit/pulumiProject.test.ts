/**
 * The project files as the Pulumi CLI loads them: Pulumi.yaml is valid YAML and valid against Pulumi's
 * project schema (reference/pulumi/project.schema.json), declares every key config.ts reads with the same
 * type, and every stack file's values pass the CLI's type check against those declarations.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import Ajv2020 from "ajv/dist/2020";
import { CONFIG_KEYS, CONFIG_TYPES, ConfigKey, projectDefault } from "../../components/config/keys";
import { parseSettings } from "../../components/config/parse";

const ROOT = path.resolve(__dirname, "../..");
const PROJECT = "redis-stack";

interface Declaration {
  type: string;
  default?: unknown;
  items?: { type: string };
  description?: string;
  secret?: boolean;
}

function load(file: string): Record<string, unknown> {
  // js-yaml refuses duplicate keys and the "a: b: c" mistake the CLI also refuses.
  return yaml.load(fs.readFileSync(path.join(ROOT, file), "utf8")) as Record<string, unknown>;
}

const project = load("Pulumi.yaml");
const declared = project.config as Record<string, Declaration>;

test("Pulumi.yaml is valid against Pulumi's project schema", () => {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, "reference/pulumi/project.schema.json"), "utf8")) as object;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);
  const ok = validate(project);
  expect(validate.errors ?? []).toEqual([]);
  expect(ok).toBe(true);
  expect(project.name).toBe(PROJECT);
});

test("the schema check itself rejects a broken project file", () => {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, "reference/pulumi/project.schema.json"), "utf8")) as object;
  const validate = new Ajv2020({ strict: false }).compile(schema);
  expect(validate({ name: PROJECT, runtime: "nodejs", config: { shards: { type: "number" } } })).toBe(false);
  expect(() => yaml.load("name: a\ndescription: one `pulumi up`: two\n")).toThrow();
});

test("Pulumi.yaml declares exactly the keys config.ts reads, with their types, secrets and a description", () => {
  expect(Object.keys(declared).sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  for (const [key, d] of Object.entries(declared)) {
    expect({ key, type: d.type }).toEqual({ key, type: CONFIG_TYPES[key as ConfigKey] });
    if (d.type === "array") expect(d.items).toEqual({ type: "string" });
    // The CLI validates a defaulted value like a stack value: a plain default of a `secret: true` key fails
    // ("must be encrypted as it's secret"), so no key is declared secret (the stack reads those as secrets).
    expect({ key, secret: d.secret }).toEqual({ key, secret: undefined });
    expect({ key, default: d.default }).toEqual({ key, default: projectDefault(key as ConfigKey) });
    expect({ key, defaultPasses: passesCliTypeCheck(d, d.default) }).toEqual({ key, defaultPasses: true });
    expect(d.description?.length ?? 0).toBeGreaterThan(10);
  }
});

/** The CLI's check of one stack value against its declaration (primitives reach it as their text). */
function passesCliTypeCheck(d: Declaration, value: unknown): boolean {
  if (d.type === "array") return Array.isArray(value) && value.every((v) => typeof v === "string");
  if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") return false;
  const text = String(value);
  if (d.type === "integer") return /^-?\d+$/.test(text);
  if (d.type === "boolean") return text === "true" || text === "false";
  return true;
}

/**
 * What the CLI hands the program (pulumi's workspace.mergeConfig): the stack file's values, plus each
 * declared key's default where the stack sets none; a declared key with neither is an error ("Stack 'x' is
 * missing configuration value ..."). Primitives become their text, arrays their JSON.
 */
function cliMergedConfig(stack: Record<string, unknown>): { raw: Record<string, string>; missing: string[] } {
  const raw: Record<string, string> = {};
  const text = (v: unknown) => (Array.isArray(v) ? JSON.stringify(v) : String(v));
  for (const [k, v] of Object.entries(stack))
    raw[k.startsWith(`${PROJECT}:`) ? k.slice(PROJECT.length + 1) : k] = text(v);
  const missing: string[] = [];
  for (const [key, d] of Object.entries(declared)) {
    if (key in raw) continue;
    if (d.default === undefined) missing.push(key);
    else raw[key] = text(d.default);
  }
  return { raw, missing };
}

for (const stack of ["dev", "prod"]) {
  test(`the CLI can run Pulumi.${stack}.yaml: no declared key is missing, and the defaults it fills in mean what config.ts does without them`, () => {
    const config = load(`Pulumi.${stack}.yaml`).config as Record<string, unknown>;
    const merged = cliMergedConfig(config);
    expect(merged.missing).toEqual([]);
    const withDefaults = parseSettings(merged.raw);
    expect(withDefaults.problems).toEqual([]);
    const own: Record<string, string> = {};
    for (const [k, v] of Object.entries(config))
      own[k.startsWith(`${PROJECT}:`) ? k.slice(PROJECT.length + 1) : k] = Array.isArray(v)
        ? JSON.stringify(v)
        : String(v);
    expect(withDefaults.settings).toEqual(parseSettings(own).settings);
  });

  test(`Pulumi.${stack}.yaml sets only declared keys, each of its declared type`, () => {
    const config = load(`Pulumi.${stack}.yaml`).config as Record<string, unknown>;
    const ours = Object.entries(config).filter(([k]) => k.startsWith(`${PROJECT}:`));
    expect(ours.length).toBeGreaterThan(3);
    for (const [fullKey, value] of ours) {
      const d = declared[fullKey.slice(PROJECT.length + 1)];
      expect({ fullKey, declared: d !== undefined }).toEqual({ fullKey, declared: true });
      expect({ fullKey, value, ok: passesCliTypeCheck(d, value) }).toEqual({ fullKey, value, ok: true });
    }
  });
}
