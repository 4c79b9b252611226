/**
 * The pipelines as their YAML says: a merge deploys nothing the tests and that stack's preview did not pass,
 * and CI's own entry point fails on a missing prerequisite instead of skipping suites.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";

const ROOT = path.resolve(__dirname, "../..");

interface Step {
  name?: string;
  run?: string;
  uses?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  steps: Step[];
}
const workflow = (file: string) =>
  yaml.load(fs.readFileSync(path.join(ROOT, ".github/workflows", file), "utf8")) as { jobs: Record<string, Job> };

test("deploy: the tests run first, and each stack is previewed before its pulumi up", () => {
  const { jobs } = workflow("deploy.yml");
  expect(jobs.test.steps.some((s) => /\.ci\/run/.test(s.run ?? ""))).toBe(true);
  expect([jobs.up.needs].flat()).toContain("test");
  const commands = jobs.up.steps.filter((s) => s.uses?.startsWith("pulumi/actions")).map((s) => s.with?.command);
  expect(commands).toEqual(["preview", "up"]);
});

test("CI's entry point sets CI=true before any test runs", () => {
  const script = fs.readFileSync(path.join(ROOT, ".ci/run"), "utf8");
  const exported = script.indexOf("export CI=true");
  expect(exported).toBeGreaterThan(0);
  expect(exported).toBeLessThan(script.indexOf("npm test"));
});
