/**
 * The docs document every config key the stack reads (and no other) and every output of the contract; the
 * README stays a front page, and no link in it or in docs/ points at a file that does not exist.
 */
import * as fs from "fs";
import * as path from "path";
import { CONFIG_KEYS } from "../../components/config/keys";
import { REDIS_CLOUD_CA_DOCS } from "../../components/config/cloud";
import { ENV_NAMES } from "../../components/contract/connection";

const ROOT = path.resolve(__dirname, "../..");
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");
const readme = read("README.md");
const configuration = read("docs/configuration.md");
const contract = read("docs/contract.md");
const pages = [
  "README.md",
  ...fs
    .readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** First-column keys of the tables in the text (or in its section with this heading). */
function tableKeys(text: string, heading?: string): string[] {
  const section = heading === undefined ? text : (text.split(/^## /m).find((s) => s.startsWith(heading)) ?? "");
  return [...section.matchAll(/^\| `([A-Za-z0-9]+)` \|/gm)].map((m) => m[1]);
}

test("the configuration table lists exactly the keys the stack reads", () => {
  expect(tableKeys(configuration).sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
});

test("the outputs table lists the whole contract", () => {
  expect(tableKeys(contract, "Outputs")).toEqual([
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

test("the CA's download page the config problem cites is the docs' too", () => {
  expect(configuration).toContain(REDIS_CLOUD_CA_DOCS);
  // Wherever the docs send users to download the CA, it is that same page.
  for (const page of pages) {
    for (const m of read(page).matchAll(/`redis_ca\.pem` \(\[how\]\(([^)]+)\)\)/g))
      expect(m[1]).toBe(REDIS_CLOUD_CA_DOCS);
  }
});

test("the env names listed are the contract's", () => {
  const row = contract.split("\n").find((l) => l.startsWith("| `env` |")) ?? "";
  expect([...row.matchAll(/`(REDIS_[A-Z_]+)`/g)].map((m) => m[1]).sort()).toEqual([...ENV_NAMES].sort());
});

test("the README is a front page: at most 160 lines", () => {
  expect(readme.trimEnd().split("\n").length).toBeLessThanOrEqual(160);
});

test("every relative link in the README and docs/ points to an existing file", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    // Links outside code: fenced blocks and inline code spans can hold text that only looks like a link.
    const text = read(page)
      .replace(/^```[\s\S]*?^```/gm, "")
      .replace(/`[^`\n]*`/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("#")) continue; // https:, mailto:, same page
      const file = decodeURIComponent(target.split("#")[0]);
      checked++;
      if (!fs.existsSync(path.resolve(ROOT, path.dirname(page), file))) broken.push(`${page}: ${target}`);
    }
  }
  expect(broken).toEqual([]);
  expect(checked).toBeGreaterThan(10);
});
