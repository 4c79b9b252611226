/** The README's config table documents every key the stack reads, and only those. */
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../../components/config";

test("every config key is in the README table", () => {
  const readme = fs.readFileSync(path.resolve(__dirname, "../../README.md"), "utf8");
  const documented = [...readme.matchAll(/^\| `([A-Za-z0-9]+)` \|/gm)].map((m) => m[1]);
  const outputs = ["target", "redisUrl", "clusterMode", "nodes", "tls", "caCertificate", "env", "clientSecurityGroupId", "monitoring"];
  const configKeys = [...new Set(documented.filter((k) => !outputs.includes(k) || k === "target"))];
  expect(configKeys.sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  for (const k of outputs) expect(documented).toContain(k);
});
