/** The README documents every config key the stack reads (and no other) and every output of the contract. */
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../../components/config/keys";
import { REDIS_CLOUD_CA_DOCS } from "../../components/config/cloud";
import { ENV_NAMES } from "../../components/contract/connection";

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
    "vpcId",
    "subnetIds",
    "monitoring",
  ]);
});

test("the CA's download page the config problem cites is the README's too", () => {
  expect(readme).toContain(REDIS_CLOUD_CA_DOCS);
});

test("the env names listed are the contract's", () => {
  const row = readme.split("\n").find((l) => l.startsWith("| `env` |")) ?? "";
  expect([...row.matchAll(/`(REDIS_[A-Z_]+)`/g)].map((m) => m[1]).sort()).toEqual([...ENV_NAMES].sort());
});
