/**
 * `npm run local -- --config KEY=VALUE`: the same keys and validation as `pulumi config set`, and the
 * applied config remembered so a second run with the same one changes nothing.
 */
import { parseConfigArgs } from "../../local/local";
import { sameConfig } from "../../local/localHosts";
import { stackSettings } from "../../lab/stackFiles";

test("--config pairs are read like pulumi config set (repeatable, project prefix optional)", () => {
  expect(
    parseConfigArgs(["--config", "maxmemoryPolicy=allkeys-lfu", "--config=redis-stack:nodeGeneration=1", "up"]),
  ).toEqual({ command: "up", config: { maxmemoryPolicy: "allkeys-lfu", nodeGeneration: "1" } });
  expect(parseConfigArgs([])).toEqual({ command: "up", config: {} });
  expect(() => parseConfigArgs(["--config", "shards"])).toThrow(/KEY=VALUE/);
});

test("overrides go through the stack's own validation, naming the key and the fix", () => {
  expect(stackSettings("prod", "redis-stack", { maxmemoryPolicy: "allkeys-lfu" }).maxmemoryPolicy).toBe("allkeys-lfu");
  expect(stackSettings("prod", "redis-stack", { nodeGeneration: "2" }).ec2?.nodeGeneration).toBe(2);
  expect(() => stackSettings("prod", "redis-stack", { maxmemoryPolicy: "lru" })).toThrow(
    /redis-stack:maxmemoryPolicy = "lru"[\s\S]*fix:/,
  );
});

test("the same overrides in another order are the same config (a rerun touches nothing)", () => {
  expect(sameConfig({ a: "1", b: "2" }, { b: "2", a: "1" })).toBe(true);
  expect(sameConfig({ a: "1" }, { a: "2" })).toBe(false);
  expect(sameConfig(undefined, {})).toBe(true);
});
