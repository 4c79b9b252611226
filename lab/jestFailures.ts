/**
 * Prints each failed test of one or more jest `--json` result files, with the first lines of its message:
 * run.sh calls it after the per-suite summary, so the end of a CI log (often the only part anyone sees)
 * names what failed and why, not just which suite.
 *
 *   ts-node --transpile-only lab/jestFailures.ts results1.json [results2.json ...]
 */
import * as fs from "fs";

/** The part of jest's `--json` output read here. */
interface JestJson {
  testResults: {
    name: string;
    message: string;
    assertionResults: { fullName: string; status: string; failureMessages: string[] }[];
  }[];
}

const MESSAGE_LINES = 12;

/** A failure message's first lines, without ANSI colours or jest's stack frames into node_modules. */
export function shortMessage(message: string, lines = MESSAGE_LINES): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = message.replace(/\u001b\[[0-9;]*m/g, "");
  return plain
    .split("\n")
    .filter((l) => l.trim() !== "" && !/^\s+at .*(node_modules|\(<anonymous>\)|node:internal)/.test(l))
    .slice(0, lines);
}

/** One line per failed test, each followed by its message's first lines (indented). */
export function failureReport(results: JestJson[]): string[] {
  const out: string[] = [];
  for (const r of results)
    for (const file of r.testResults) {
      const failed = file.assertionResults.filter((a) => a.status === "failed");
      // A suite that failed outside any test (a hook, a compile error) has only the file's message.
      if (failed.length === 0 && file.message.trim() !== "") {
        out.push(`FAILED ${file.name} (outside a test)`);
        out.push(...shortMessage(file.message).map((l) => `    ${l}`));
      }
      for (const a of failed) {
        out.push(`FAILED ${a.fullName}`);
        out.push(...shortMessage(a.failureMessages.join("\n")).map((l) => `    ${l}`));
      }
    }
  return out;
}

if (require.main === module) {
  const results = process.argv
    .slice(2)
    .filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0)
    .map((f) => JSON.parse(fs.readFileSync(f, "utf8")) as JestJson);
  for (const line of failureReport(results)) console.log(line);
}
