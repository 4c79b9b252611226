/**
 * The tree's shape, as a reader relies on it: no module of the product imports another in a circle, the
 * lab (the test hosts) does not depend on the local mode built on top of it, the components import nothing
 * from the lab, the local mode, the benches or the tests, and comments say what code does, never which
 * ticket asked for it.
 */
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const SOURCE_DIRS = ["components", "lab", "local", "bench", "tests", "examples", "client/src"];

function sourceFiles(dir: string, ext = /\.ts$/): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && entry.name !== "dist") out.push(...sourceFiles(rel, ext));
    } else if (ext.test(entry.name)) out.push(rel);
  }
  return out;
}

/** Relative imports of a TypeScript file, resolved to repository paths (without extension). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\(|require\()"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]);
  return specs.map((s) => {
    const target = path.normalize(path.join(path.dirname(file), s));
    return fs.existsSync(path.join(ROOT, `${target}.ts`)) ? target : path.join(target, "index");
  });
}

function graphOf(files: string[]): Map<string, string[]> {
  return new Map(files.map((f) => [f.replace(/\.ts$/, ""), importsOf(f)]));
}

/** Every import circle in the graph, each as the list of modules around it. */
export function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === "open") found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

test("the circle finder finds a circle when there is one", () => {
  const g = new Map([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a"]],
    ["d", ["a"]],
  ]);
  expect(circles(g)).toEqual([["a", "b", "c", "a"]]);
  expect(
    circles(
      new Map([
        ["a", ["b"]],
        ["b", []],
      ]),
    ),
  ).toEqual([]);
});

test("no module imports another in a circle", () => {
  const files = SOURCE_DIRS.flatMap((d) => sourceFiles(d)).concat(["index.ts"]);
  expect(circles(graphOf(files))).toEqual([]);
});

test("the lab does not import the local mode, and the components import only components", () => {
  const graph = graphOf([...sourceFiles("lab"), ...sourceFiles("components")]);
  const offending = [...graph.entries()].flatMap(([from, targets]) =>
    targets
      .filter((t) => (from.startsWith("lab/") ? t.startsWith("local/") : !t.startsWith("components/")))
      .map((t) => `${from} -> ${t}`),
  );
  expect(offending).toEqual([]);
});

test("no comment names a ticket instead of saying what the code does", () => {
  const files = [...SOURCE_DIRS, "monitoring", ".github", ".ci"].flatMap((d) =>
    sourceFiles(d, /\.(ts|sh|py|ya?ml|mjs)$|^run$|^shellcheck$/),
  );
  const hits = files.flatMap((f) =>
    fs
      .readFileSync(path.join(ROOT, f), "utf8")
      .split("\n")
      .map((line, i) => ({ f, i: i + 1, line }))
      .filter(({ line }) => /\bissues? ?#?\d+\b|\(#\d+\)/i.test(line)),
  );
  expect(hits.map(({ f, i, line }) => `${f}:${i}: ${line.trim()}`)).toEqual([]);
});
