// Checks resource inputs, as recorded by Pulumi mocks, against the Redis Cloud provider schema.
//
// The binding in sdk/rediscloud is hand-written; this helper is what keeps it honest: every input the
// binding registers must exist in the provider schema under the same name, with a value of the schema's
// type. Pure and typed (no jest here) so unit tests of any component can reuse it.

import * as fs from "fs";
import * as path from "path";
import { specialSecretSig, specialSigKey, unknownValue } from "@pulumi/pulumi/runtime";

// ---------------------------------------------------------------------------------------------------
// The subset of the Pulumi package schema (https://www.pulumi.com/docs/iac/extending-pulumi/schema/)
// that the checker reads. Other keys of the schema may be present and are ignored.

/** Primitive schema types. */
export type SchemaPrimitive = "string" | "integer" | "number" | "boolean";

/** A property's type: a primitive, an array (`items`), a map (`additionalProperties`) or a `$ref`. */
export interface PropertySpec {
  type?: SchemaPrimitive | "array" | "object";
  items?: PropertySpec;
  additionalProperties?: PropertySpec;
  /** `#/types/<token>`, or a built-in such as `pulumi.json#/Any`. */
  $ref?: string;
  oneOf?: PropertySpec[];
  description?: string;
  secret?: boolean;
  willReplaceOnChanges?: boolean;
  deprecationMessage?: string;
}

/** An object type of the schema's `types` section. */
export interface ObjectTypeSpec {
  type: "object";
  properties?: Record<string, PropertySpec>;
  required?: string[];
  description?: string;
}

/** An enum type of the schema's `types` section. */
export interface EnumTypeSpec {
  type: SchemaPrimitive;
  enum: { name?: string; value: string | number | boolean; description?: string }[];
  description?: string;
}

export type TypeSpec = ObjectTypeSpec | EnumTypeSpec;

/** A resource of the schema's `resources` section (or the `provider` section). */
export interface ResourceSpec {
  description?: string;
  properties?: Record<string, PropertySpec>;
  required?: string[];
  inputProperties?: Record<string, PropertySpec>;
  requiredInputs?: string[];
  stateInputs?: ObjectTypeSpec;
}

/** A function (data source) of the schema's `functions` section. */
export interface FunctionSpec {
  description?: string;
  inputs?: ObjectTypeSpec;
  outputs?: ObjectTypeSpec;
}

/** A Pulumi package schema, as far as the checker is concerned. */
export interface ProviderSchema {
  name: string;
  version?: string;
  pluginDownloadURL?: string;
  config?: { variables?: Record<string, PropertySpec>; defaults?: string[] };
  provider?: ResourceSpec;
  resources: Record<string, ResourceSpec>;
  functions?: Record<string, FunctionSpec>;
  types?: Record<string, TypeSpec>;
}

// ---------------------------------------------------------------------------------------------------
// Loading

/** Where the schema lives, relative to the project root (outside the repository, read-only). */
export const SCHEMA_RELATIVE_PATH = "../shared/rediscloud/schema-v1.3.5.json";

/** Absolute location of the schema: this file is two levels below the project root (tests/unit). */
export function schemaPath(): string {
  return path.resolve(__dirname, "../../../shared/rediscloud/schema-v1.3.5.json");
}

/**
 * Reads the provider schema; `undefined` when the file is absent (e.g. a checkout without the shared
 * directory). A file that exists but is not a package schema is an error, not an absence.
 */
export function loadSchema(): ProviderSchema | undefined {
  const file = schemaPath();
  if (!fs.existsSync(file)) {
    return undefined;
  }
  const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!isPlainObject(parsed) || typeof parsed["name"] !== "string" || !isPlainObject(parsed["resources"])) {
    throw new Error(`${SCHEMA_RELATIVE_PATH} is not a Pulumi package schema (no name / resources)`);
  }
  return parsed as unknown as ProviderSchema;
}

// ---------------------------------------------------------------------------------------------------
// Checking

/** Inputs and required inputs of a resource token, or undefined when the schema does not know it. */
function resourceInputsOf(
  schema: ProviderSchema,
  token: string,
): { props: Record<string, PropertySpec>; required: string[] } | undefined {
  const resource = schema.resources[token];
  if (resource) {
    return { props: resource.inputProperties ?? {}, required: resource.requiredInputs ?? [] };
  }
  // The provider resource itself: `pulumi:providers:<name>`, whose inputs are the `provider` section
  // or, in bridged schemas that omit it, the config variables (none of them required).
  if (token === `pulumi:providers:${schema.name}`) {
    if (schema.provider) {
      return { props: schema.provider.inputProperties ?? {}, required: schema.provider.requiredInputs ?? [] };
    }
    return { props: schema.config?.variables ?? {}, required: [] };
  }
  return undefined;
}

/**
 * Returns one human-readable problem per input of `inputs` that the schema does not declare for
 * resource `token`, or whose value does not have the declared type (recursing into `$ref` object types
 * and array items), plus one per missing required input / required property of a nested object.
 * An empty array means the inputs conform.
 *
 * Values are plain JSON as recorded by Pulumi mocks: secrets may arrive wrapped in the runtime's secret
 * envelope (unwrapped here), and unknown values (previews) arrive as `undefined`, which is skipped —
 * a key that is present with an `undefined` value is therefore not "missing".
 */
export function checkInputsAgainstSchema(
  schema: ProviderSchema,
  token: string,
  inputs: Record<string, unknown>,
): string[] {
  const spec = resourceInputsOf(schema, token);
  if (!spec) {
    return [`${token}: unknown resource token (not in schema ${schema.name} ${schema.version ?? ""})`.trimEnd()];
  }
  const problems: string[] = [];
  const report = (where: string, message: string): void => {
    problems.push(`${token}: ${where}: ${message}`);
  };
  checkObjectMembers(schema, spec.props, spec.required, inputs, "", "input", report);
  return problems;
}

type Report = (where: string, message: string) => void;

/**
 * Checks the members of an object (the top-level inputs or a nested object type) against `props`:
 * unknown keys, wrong types, and `required` keys that are absent or null.
 */
function checkObjectMembers(
  schema: ProviderSchema,
  props: Record<string, PropertySpec>,
  required: string[],
  value: Record<string, unknown>,
  prefix: string,
  noun: "input" | "property",
  report: Report,
): void {
  for (const [key, member] of Object.entries(value)) {
    const where = `${noun} "${prefix}${key}"`;
    const spec = props[key];
    if (!spec) {
      report(where, `unknown ${noun}; known: ${Object.keys(props).sort().join(", ") || "(none)"}`);
      continue;
    }
    checkValue(schema, spec, member, `${prefix}${key}`, noun, report);
  }
  for (const key of required) {
    if (!(key in value) || value[key] === null) {
      report(`${noun} "${prefix}${key}"`, `missing required ${noun}`);
    }
  }
}

/** Checks one value against its property spec; `at` is the dotted / indexed path for messages. */
function checkValue(
  schema: ProviderSchema,
  spec: PropertySpec,
  raw: unknown,
  at: string,
  noun: "input" | "property",
  report: Report,
): void {
  const value = unwrapSecret(raw);
  // Unknown (preview) values and explicit nulls carry no type to check; null is "unset" to Pulumi.
  if (value === undefined || value === unknownValue || value === null) {
    return;
  }
  const where = `${noun} "${at}"`;

  if (spec.$ref !== undefined) {
    checkRef(schema, spec.$ref, value, at, where, report);
    return;
  }
  if (spec.oneOf !== undefined) {
    // Accept the value when any alternative accepts it without problems.
    const fits = spec.oneOf.some((alternative) => {
      let ok = true;
      checkValue(schema, alternative, value, at, "property", () => {
        ok = false;
      });
      return ok;
    });
    if (!fits) {
      report(where, `matches none of the oneOf alternatives, got ${describe(value)}`);
    }
    return;
  }

  switch (spec.type) {
    case "string":
      if (typeof value !== "string") report(where, `expected string, got ${describe(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean") report(where, `expected boolean, got ${describe(value)}`);
      return;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value))
        report(where, `expected number, got ${describe(value)}`);
      return;
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value))
        report(where, `expected integer (a whole number), got ${describe(value)}`);
      return;
    case "array":
      if (!Array.isArray(value)) {
        report(where, `expected array, got ${describe(value)}`);
        return;
      }
      if (spec.items) {
        const items = spec.items;
        value.forEach((item, i) => checkValue(schema, items, item, `${at}[${i}]`, "property", report));
      }
      return;
    case "object":
      if (!isPlainObject(value)) {
        report(where, `expected object, got ${describe(value)}`);
        return;
      }
      if (spec.additionalProperties) {
        const valueSpec = spec.additionalProperties;
        for (const [k, v] of Object.entries(value)) {
          checkValue(schema, valueSpec, v, `${at}[${JSON.stringify(k)}]`, "property", report);
        }
      }
      return;
    case undefined:
      // No type and no $ref: the schema does not constrain the value.
      return;
  }
}

/** Checks a value against a `$ref`: a built-in pulumi.json type or a type of the schema's `types`. */
function checkRef(
  schema: ProviderSchema,
  ref: string,
  value: unknown,
  at: string,
  where: string,
  report: Report,
): void {
  if (ref.startsWith("pulumi.json#/")) {
    // Any / Json accept everything; Asset / Archive arrive in the runtime's own envelope.
    return;
  }
  const localPrefix = "#/types/";
  if (!ref.startsWith(localPrefix)) {
    // A type of another package's schema: not resolvable here, so not checked.
    return;
  }
  const typeToken = decodeURIComponent(ref.slice(localPrefix.length));
  const typeSpec = schema.types?.[typeToken];
  if (!typeSpec) {
    report(where, `schema $ref ${ref} does not resolve to a type`);
    return;
  }
  if (isEnumType(typeSpec)) {
    const allowed = typeSpec.enum.map((e) => e.value);
    if (!allowed.some((v) => v === value)) {
      report(
        where,
        `expected one of ${allowed.map((v) => JSON.stringify(v)).join(", ")} (${typeToken}), got ${describe(value)}`,
      );
    }
    return;
  }
  if (!isPlainObject(value)) {
    report(where, `expected object ${typeToken}, got ${describe(value)}`);
    return;
  }
  checkObjectMembers(schema, typeSpec.properties ?? {}, typeSpec.required ?? [], value, `${at}.`, "property", report);
}

// ---------------------------------------------------------------------------------------------------
// Small utilities

function isEnumType(spec: TypeSpec): spec is EnumTypeSpec {
  return Array.isArray((spec as Partial<EnumTypeSpec>).enum);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Mocks hand secrets over as `{ [specialSigKey]: specialSecretSig, value }`; checks apply to `value`. */
function unwrapSecret(value: unknown): unknown {
  if (isPlainObject(value) && value[specialSigKey] === specialSecretSig) {
    return value["value"];
  }
  return value;
}

/** `number 2.5`, `string "x"`, `array`, ... for messages (values truncated). */
function describe(value: unknown): string {
  const kind = Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
  const text = JSON.stringify(value) ?? String(value);
  return `${kind} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}
