/** The README documents every config key the stack reads (and no other) and every output of the contract. */
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../../components/config";

const readme = fs.readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
/** First-column keys of the table in the section with this heading. */
function tableKeys(heading: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith(heading)) ?? "";
  return [...section.matchAll(/^\| `([A-Za-z0-9]+)` \|/gm)].map((m) => m[1]);
}

test("the configuration table lists exactly the keys the stack reads", () => {
  expect(tableKeys("Configuration").sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
});

test("the outputs table lists the whole contract", () => {
  expect(tableKeys("Outputs")).toEqual([
    "target",
    "redisUrl",
    "clusterMode",
    "nodes",
    "tls",
    "caCertificate",
    "env",
    "clientSecurityGroupId",
    "monitoring",
  ]);
});
