/**
 * The resource graph of a stack as a reviewable fixture: every resource's type and name, and a digest of
 * its inputs (secrets unwrapped, keys sorted), and its URN (engineUrn). A refactor must leave it unchanged; a deliberate change to
 * the graph rewrites it with `UPDATE_GRAPH=1 npx jest tests/unit/graph` and shows up in review.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Registered, unwrapSecrets } from "./stackHarness";

export interface GraphEntry {
  type: string;
  name: string;
  /** What a deployed stack knows the resource by: a changed URN replaces it unless aliased. */
  urn: string;
  inputs: string;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, canonical(o[k])]),
    );
  }
  return value;
}

export function graphOf(resources: Registered[]): GraphEntry[] {
  return resources
    .map((r) => ({
      type: r.type,
      name: r.name,
      urn: r.urn ?? "(none: registered before the mock monitor named it)",
      inputs: createHash("sha256")
        .update(JSON.stringify(canonical(unwrapSecrets(r.inputs))))
        .digest("hex")
        .slice(0, 16),
    }))
    .sort((a, b) => (a.type + a.name).localeCompare(b.type + b.name));
}

export function fixturePath(stack: string): string {
  return path.join(__dirname, "..", "fixtures", `graph-${stack}.json`);
}

/** The recorded graph, or (with UPDATE_GRAPH=1) records `actual` and returns it. */
export function expectedGraph(stack: string, actual: GraphEntry[]): GraphEntry[] {
  const file = fixturePath(stack);
  if (process.env.UPDATE_GRAPH === "1") fs.writeFileSync(file, JSON.stringify(actual, null, 2) + "\n");
  return JSON.parse(fs.readFileSync(file, "utf8")) as GraphEntry[];
}
