/**
 * node.sh's SSM reads on bash, with a recording stand-in for awscli that answers GetParameters from a
 * table: prepare reads what a boot needs (boot_parameters) in one ssm_get_batch (ten names per call), and
 * the steps after it (install_shipped_scripts, fetch_desired, refresh_secrets) find their values read
 * instead of calling aws again. The suites run the real awscli against the lab's endpoint.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const NODE_SH = fs.readFileSync(path.join(__dirname, "../../components/ec2/node/node.sh"), "utf8");

/** A top-level definition of node.sh: a function (one line, or up to its closing brace) or a readonly. */
function definition(name: string): string {
  const lines = NODE_SH.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`${name}() {`) || l.startsWith(`readonly ${name}=`));
  if (start < 0) throw new Error(`${name} is not defined in node.sh`);
  if (lines[start].endsWith("}")) return lines[start];
  // A function ends at its closing brace, a quoted multi-line value at its closing quote.
  const closing = lines[start].startsWith("readonly") ? /'$/ : /^}$/;
  const end = lines.findIndex((l, i) => i > start && closing.test(l));
  return lines.slice(start, end + 1).join("\n");
}

const SCRIPT = [
  "declare -A SSM_VALUES=()",
  'SSM_MISSING=""',
  definition("SSM_PAIRS_PY"),
  ...["ssm_get_batch", "script_current", "boot_parameters", "write_file", "fetch_desired"].map(definition),
].join("\n");

const STORE: Record<string, string> = {
  "/s/settings": "version 7\nset maxmemory-policy noeviction",
  "/s/app": "app-pass",
  "/s/admin": "admin-pass",
  "/s/repl": "repl-pass",
  "/s/monitor": "monitor-pass",
  "/s/ca": "CA",
  "/s/cert": "CERT",
  "/s/key": "KEY",
  "/s/new/0": "x",
  "/s/new/1": "y",
  "/s/extra": "z",
};

/** Runs `steps` after node.sh's definitions; returns its stdout and the names of each aws call. */
function run(steps: string, store = STORE): { out: string; calls: string[][] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "boot-reads-"));
  const current = path.join(dir, "current.sh");
  fs.writeFileSync(current, "echo current\n");
  const sum = crypto.createHash("sha256").update("echo current\n").digest("hex");
  const calls = path.join(dir, "calls");
  fs.writeFileSync(calls, "");
  const script = `
    set -euo pipefail
    log() { echo "log: $*"; }
    aws() {
      local names=() on=""
      for a in "$@"; do
        case $a in --names) on=1 ;; --*) on="" ;; *) [ -z "$on" ] || names+=("$a") ;; esac
      done
      echo "\${names[*]}" >>"$CALLS"
      python3 -c 'import json, os, sys
store = json.loads(os.environ["STORE"])
print(json.dumps({"Parameters": [{"Name": n, "Value": store[n]} for n in sys.argv[1:] if n in store]}))' "\${names[@]}"
    }
    ${SCRIPT}
    ${steps}`;
  try {
    const out = execFileSync("bash", ["-c", script], {
      env: {
        PATH: process.env.PATH,
        CALLS: calls,
        STORE: JSON.stringify(store),
        AWS_REGION: "us-east-1",
        TLS: "yes",
        SHIPPED_SCRIPTS: `${current} 0644 ${sum} /s/old/0 /s/old/1\n${path.join(dir, "absent.sh")} 0644 ${"0".repeat(64)} /s/new/0 /s/new/1`,
        SSM_SETTINGS: "/s/settings",
        SSM_APP_PASSWORD: "/s/app",
        SSM_ADMIN_PASSWORD: "/s/admin",
        SSM_REPLICATION_PASSWORD: "/s/repl",
        SSM_MONITOR_PASSWORD: "/s/monitor",
        SSM_TLS_CA: "/s/ca",
        SSM_TLS_CERT: "/s/cert",
        SSM_TLS_KEY: "/s/key",
        DESIRED_FILE: path.join(dir, "desired"),
      },
      stdio: "pipe",
    }).toString();
    return {
      out,
      calls: fs
        .readFileSync(calls, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("a boot's parameters: the scripts not yet installed, the desired settings, the secrets and TLS material", () => {
  const { out } = run("boot_parameters | tr ' ' '\\n'");
  expect(out.trim().split("\n")).toEqual([
    "/s/new/0",
    "/s/new/1",
    "/s/settings",
    "/s/app",
    "/s/admin",
    "/s/repl",
    "/s/monitor",
    "/s/ca",
    "/s/cert",
    "/s/key",
  ]);
});

test("read at once (ten names per call), then every step finds its values: no second call for them", () => {
  const { out, calls } = run(`
    ssm_get_batch $(boot_parameters) /s/extra
    fetch_desired
    ssm_get_batch /s/app /s/admin /s/repl /s/monitor /s/ca /s/cert /s/key
    echo "app=\${SSM_VALUES[/s/app]} key=\${SSM_VALUES[/s/key]}"`);
  expect(calls.map((c) => c.length)).toEqual([10, 1]);
  expect(out).toContain("changed");
  expect(out).toContain("app=app-pass key=KEY");
});

test("a name not read yet is read alone; a missing one fails naming it, and is asked again when retried", () => {
  const store = { ...STORE };
  delete store["/s/extra"];
  const { out, calls } = run(
    `ssm_get_batch /s/app
     ssm_get_batch /s/app /s/extra || echo "missing: $SSM_MISSING"
     ssm_get_batch /s/app /s/extra || echo "missing: $SSM_MISSING"`,
    store,
  );
  expect(calls).toEqual([["/s/app"], ["/s/extra"], ["/s/extra"]]);
  expect(out).toBe("missing: /s/extra\nmissing: /s/extra\n");
});

test("desired settings without a version line are refused and read again on the retry, not kept", () => {
  const { out, calls } = run(
    `fetch_desired || echo refused
     fetch_desired || echo refused`,
    { ...STORE, "/s/settings": "set maxmemory-policy noeviction" },
  );
  expect(out).toMatch(/no version line; ignoring it\nrefused\n.*no version line; ignoring it\nrefused\n/s);
  expect(calls).toEqual([["/s/settings", "/s/ca", "/s/cert"], ["/s/settings"]]);
});
