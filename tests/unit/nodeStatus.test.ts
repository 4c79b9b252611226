/**
 * What a node's published status says of its slots (node.sh my_slot_count), on bash with a recorded
 * stand-in for redis-cli: a Redis Cluster node counts the slots it serves; a Sentinel node serves none and
 * sends nothing (CLUSTER NODES fails there, and every failure counted in its errorstat_ERR, which the lab
 * saw grow by one per status published).
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readScript } from "../../components/ec2/node/userData";

const nodeSh = readScript("node.sh");
const myFunction = (name: string): string => {
  const m = new RegExp(`^${name}\\(\\) \\{[\\s\\S]*?^\\}$`, "m").exec(nodeSh);
  if (!m) throw new Error(`node.sh has no function ${name}`);
  return m[0];
};

function slotCount(topology: string, reply: string): { out: string; calls: string } {
  const script = `
    set -euo pipefail
    NODE_IP=10.0.0.1 REDIS_PORT=6379 TOPOLOGY=${topology}
    rcli() { echo "rcli $*" >>"$CALLS"; printf '%s\\n' "$REPLY_TEXT"; }
    ${myFunction("my_slot_count")}
    my_slot_count`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "node-status-"));
  const calls = path.join(dir, "calls");
  fs.writeFileSync(calls, "");
  const out = execFileSync("bash", ["-c", script], {
    env: { PATH: process.env.PATH, REPLY_TEXT: reply, CALLS: calls },
  })
    .toString()
    .trim();
  const recorded = fs.readFileSync(calls, "utf8");
  fs.rmSync(dir, { recursive: true, force: true });
  return { out, calls: recorded };
}

test("a cluster node counts the slots it serves from CLUSTER NODES (ranges and single slots; migrations not)", () => {
  const me = "a".repeat(40);
  const reply = [
    `${me} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-99 200 [300->-${"b".repeat(40)}]`,
    `${"b".repeat(40)} 10.0.0.2:6379@16379 master - 0 0 2 connected 100-199`,
  ].join("\n");
  const r = slotCount("cluster", reply);
  expect(r.out).toBe("101");
  expect(r.calls).toContain("cluster nodes");
});

test("a Sentinel node serves no slots and sends no CLUSTER NODES", () => {
  const r = slotCount("sentinel", "ERR This instance has cluster support disabled");
  expect(r.out).toBe("0");
  expect(r.calls).toBe("");
});

/** node.sh's exit trap after `command` exited with `rc`: the statuses it published. */
function exitStatuses(command: string, rc: number): string {
  const script = `
    set -uo pipefail
    FAILURE="" BOOT_LOG=/nonexistent
    publish_status() { echo "status: $*"; }
    ${myFunction("on_exit")}
    (exit ${rc}) || on_exit ${command}`;
  return execFileSync("bash", ["-c", script], { env: { PATH: process.env.PATH } })
    .toString()
    .trim();
}

test("a step that fails publishes the node's failure; a failed backup leaves the node's status to its health", () => {
  expect(exitStatuses("converge", 1)).toBe("status: failed converge exited with 1; see /nonexistent");
  expect(exitStatuses("settings", 3)).toBe("status: failed settings exited with 3; see /nonexistent");
  // The backup publishes its own status (the stack's backup parameter and metrics): a failed upload must not
  // make pulumi up's health wait refuse a cluster that serves every slot.
  expect(exitStatuses("backup", 1)).toBe("");
});
