/**
 * The project files as the Pulumi CLI loads them: Pulumi.yaml is valid YAML and valid against Pulumi's
 * project schema (reference/pulumi/project.schema.json), declares every key config.ts reads with the same
 * type, and every stack file's values pass the CLI's type check against those declarations.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import Ajv2020 from "ajv/dist/2020";
import { CONFIG_KEYS, CONFIG_TYPES, ConfigKey, SECRET_KEYS } from "../../components/config";

const ROOT = path.resolve(__dirname, "../..");
const PROJECT = "redis-stack";

interface Declaration {
  type: string;
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
    expect({ key, secret: d.secret === true }).toEqual({ key, secret: SECRET_KEYS.has(key as ConfigKey) });
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

for (const stack of ["dev", "prod"]) {
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
