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

/** Where the provider's schema lives, relative to the project root (vendored: reference/README.md). */
export const SCHEMA_RELATIVE_PATH = "reference/rediscloud/schema-v1.3.5.json";
/** The same provider's full schema: every resource (SubscriptionPeering among them); the above is its subset. */
export const FULL_SCHEMA_RELATIVE_PATH = "reference/rediscloud/schema-v1.3.5-full.json";
/** The values the provider accepts at check time, beyond the schema's types (vendored likewise). */
export const VALIDATION_RELATIVE_PATH = "reference/rediscloud/validation-v1.3.5.json";

const PROJECT_ROOT = path.resolve(__dirname, "../..");

/** Absolute location of a schema (the subset the stack started with, unless told). */
export function schemaPath(relativePath: string = SCHEMA_RELATIVE_PATH): string {
  return path.join(PROJECT_ROOT, relativePath);
}

/** Reads a provider schema; a file that is not a package schema is an error. */
export function loadSchema(relativePath: string = SCHEMA_RELATIVE_PATH): ProviderSchema {
  const file = schemaPath(relativePath);
  const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!isPlainObject(parsed) || typeof parsed["name"] !== "string" || !isPlainObject(parsed["resources"])) {
    throw new Error(`${relativePath} is not a Pulumi package schema (no name / resources)`);
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

// ---------------------------------------------------------------------------------------------------
// The provider's check-time validation lists

/** One field's rule: a closed list, a pattern, a CIDR, a numeric range, a length, or fields it excludes. */
export interface FieldRule {
  oneOf?: string[];
  pattern?: string;
  format?: string;
  min?: number;
  max?: number;
  maxLength?: number;
  conflictsWith?: string[];
}

/** Per resource token, per field path (`a.b`, `list[]`, `list[].field`): the rule the provider enforces. */
export type ValidationLists = Record<string, Record<string, FieldRule>>;

export function loadValidation(): ValidationLists {
  const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, VALIDATION_RELATIVE_PATH), "utf8")) as Record<
    string,
    unknown
  >;
  const lists: ValidationLists = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key.includes(":") && isPlainObject(value)) lists[key] = value as Record<string, FieldRule>;
  }
  return lists;
}

/** Every value at a field path (`a.b`, `list[]`, `list[].c`) of an inputs bag; absent fields give none. */
export function valuesAt(inputs: unknown, fieldPath: string): unknown[] {
  let current: unknown[] = [inputs];
  for (const part of fieldPath.split(".")) {
    const isList = part.endsWith("[]");
    const key = isList ? part.slice(0, -2) : part;
    const next: unknown[] = [];
    for (const c of current) {
      if (!isPlainObject(c) || c[key] === undefined || c[key] === null) continue;
      const v = c[key];
      if (isList) {
        if (Array.isArray(v)) next.push(...(v as unknown[]));
      } else next.push(v);
    }
    current = next;
  }
  return current;
}

function isIpv4Cidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}

/** Problems of an inputs bag against the provider's validation lists (empty when it would pass the check). */
export function checkInputsAgainstValidation(
  lists: ValidationLists,
  token: string,
  inputs: Record<string, unknown>,
): string[] {
  const rules = lists[token];
  if (!rules) return [`${token}: no validation lists for this token`];
  const problems: string[] = [];
  for (const [field, rule] of Object.entries(rules)) {
    const values = valuesAt(inputs, field);
    for (const v of values) {
      const text = typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
      if (rule.oneOf && (text === undefined || !rule.oneOf.includes(text)))
        problems.push(`${field}: ${JSON.stringify(v)} is not one of ${rule.oneOf.join(", ")}`);
      if (rule.pattern && (text === undefined || !new RegExp(rule.pattern).test(text)))
        problems.push(`${field}: ${JSON.stringify(v)} does not match ${rule.pattern}`);
      if (rule.format === "CIDR" && (text === undefined || !isIpv4Cidr(text)))
        problems.push(`${field}: ${JSON.stringify(v)} is not a CIDR`);
      if (rule.min !== undefined && Number(v) < rule.min) problems.push(`${field}: ${String(v)} < ${rule.min}`);
      if (rule.max !== undefined && Number(v) > rule.max) problems.push(`${field}: ${String(v)} > ${rule.max}`);
      if (rule.maxLength !== undefined && text !== undefined && text.length > rule.maxLength)
        problems.push(`${field}: longer than ${rule.maxLength}`);
    }
    if (values.length > 0) {
      for (const other of rule.conflictsWith ?? []) {
        if (valuesAt(inputs, other).length > 0) problems.push(`${field}: conflicts with ${other}`);
      }
    }
  }
  return problems;
}
