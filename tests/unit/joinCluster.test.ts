/**
 * lib-cluster.sh join_cluster on bash with a recorded stand-in for redis-cli: what a booting node does once
 * it found a healthy cluster. The case that failed a 12-shard loopback formation (`npm run bench:scale`):
 * a planned master whose own "am I a member?" check said no (it timed out on a busy machine, or node 0 added
 * it just after) found its shard already served by itself, with its replica following it, and tried
 * CLUSTER REPLICATE on its own id for 30 s before it gave up (FATAL).
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const LIB = path.join(__dirname, "../../components/ec2/node/lib-cluster.sh");
const ME = "a".repeat(40);
const OTHER = "b".repeat(40);
const MY_REPLICA = "c".repeat(40);
const PLAN = [
  "shard0-0 10.0.0.1 6379 master 0 0 8191",
  "shard1-0 10.0.0.2 6379 master 1 8192 16383",
  "shard0-1 10.0.0.3 6379 replica 0 0 8191",
  "shard1-1 10.0.0.4 6379 replica 1 8192 16383",
].join("\n");

/**
 * Runs `body` after sourcing lib-cluster.sh with the plan above, the rcli calls recorded to $CALLS; returns
 * them, the output and the exit code.
 */
function runLib(body: string, env: Record<string, string>): { calls: string[]; out: string; code: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lib-cluster-"));
  const calls = path.join(dir, "calls");
  fs.writeFileSync(calls, "");
  let out = "";
  let code = 0;
  try {
    out = execFileSync("bash", ["-c", `set -euo pipefail\n. "$LIB"\n${body}`], {
      env: { PATH: process.env.PATH, LIB, CALLS: calls, CLUSTER_PLAN: PLAN, REDIS_PORT: "6379", ...env },
      stdio: "pipe",
      timeout: 20_000,
    }).toString();
  } catch (e) {
    code = (e as { status: number }).status;
  }
  try {
    return { calls: fs.readFileSync(calls, "utf8").split("\n").filter(Boolean), out, code };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** join_cluster as shard0-0 through 10.0.0.2, the cluster answering NODES; returns the rcli calls and the log. */
function join(nodes: string[]): { calls: string[]; log: string } {
  const r = runLib(
    `rcli() {
      shift 2
      echo "$*" >>"$CALLS"
      case "$*" in
      "cluster myid") echo "$MYID" ;;
      "cluster nodes") printf '%s\\n' "$NODES" ;;
      "cluster replicate "*) echo "ERR Can't replicate myself" ;;
      *) echo OK ;;
      esac
    }
    sleep() { :; }
    join_cluster 10.0.0.2 6379`,
    { MYID: ME, NODES: nodes.join("\n"), NODE_NAME: "shard0-0", NODE_IP: "10.0.0.1", PEER_WAIT_SECONDS: "1" },
  );
  if (r.code !== 0) throw new Error(`join_cluster exited with ${r.code}`);
  return { calls: r.calls, log: r.out };
}

const line = (id: string, addr: string, flags: string, master = "-", slots = "") =>
  `${id} ${addr}:6379@16379 ${flags} ${master} 0 1700000000000 1 connected${slots ? ` ${slots}` : ""}`;

test("a planned master that already serves its shard (its replica follows it) stays as it is", () => {
  const r = join([
    line(ME, "10.0.0.1", "master", "-", "0-8191"),
    line(OTHER, "10.0.0.2", "myself,master", "-", "8192-16383"),
    line(MY_REPLICA, "10.0.0.3", "slave", ME),
  ]);
  expect(r.log).toMatch(/part of the cluster \(added by the creating node/);
  expect(r.calls.filter((c) => c.startsWith("cluster replicate"))).toEqual([]);
  expect(r.calls.filter((c) => c.startsWith("cluster meet"))).toEqual([]);
});

/**
 * cluster_converge as shard1-1 (a replica) while no cluster exists yet, the peer at MEMBER_IP (if any)
 * answering as a member of a healthy cluster and the one at DEAD_IP not at all; returns "host command" per
 * rcli call and the exit code.
 */
function converge(memberIp = "", deadIp = ""): { calls: string[]; code: number } {
  const r = runLib(
    `rcli() {
      local host=$1
      shift 2
      echo "$host $*" >>"$CALLS"
      case "$host $*" in
      "$DEAD_IP "*) return 1 ;;
      "$MEMBER_IP cluster info") printf 'cluster_state:ok\\r\\ncluster_slots_assigned:16384\\r\\ncluster_known_nodes:4\\r\\n' ;;
      *"cluster info") printf 'cluster_state:fail\\r\\ncluster_slots_assigned:0\\r\\ncluster_known_nodes:1\\r\\n' ;;
      *ping) echo PONG ;;
      *) return 1 ;;
      esac
    }
    join_cluster() { echo "joined through $*"; }
    sleep() { SECONDS=$((SECONDS + 1)); } # a round a second, whatever the machine
    cluster_converge`,
    {
      MEMBER_IP: memberIp,
      DEAD_IP: deadIp || "none",
      NODE_NAME: "shard1-1",
      NODE_INDEX: "3",
      NODE_IP: "10.0.0.4",
      PEER_WAIT_SECONDS: "25",
    },
  );
  return { calls: r.calls, code: r.code };
}

test("a waiting node asks itself, node 0 and one other peer in turn per round, one CLUSTER INFO each", () => {
  const r = converge();
  expect(r.code).toBe(1); // no cluster within PEER_WAIT_SECONDS
  const asked = (ip: string) => r.calls.filter((c) => c === `${ip} cluster info`).length;
  // About a round a second of the 25 (the script's own time counts too).
  const rounds = asked("10.0.0.1");
  expect(rounds).toBeGreaterThanOrEqual(12);
  expect(asked("10.0.0.4")).toBe(rounds + 1); // itself: once before the loop, then every round
  // shard1-1's peers in plan order: 10.0.0.1 (node 0), .2, .3; round k also asks peer k % 4 (0: none more).
  const turns = (k: number) => Array.from({ length: rounds }, (_, r) => r % 4).filter((x) => x === k).length;
  expect([asked("10.0.0.1"), asked("10.0.0.2"), asked("10.0.0.3")]).toEqual([rounds, turns(1), turns(2)]);
  // Nothing else is sent: one PING to itself (is the local Redis up?), no second CLUSTER INFO to anyone.
  expect(r.calls.filter((c) => !c.endsWith(" cluster info"))).toEqual(["10.0.0.4 ping"]);
});

test("a cluster whose node 0 is gone is found through the other peers in turn", () => {
  const r = converge("10.0.0.3", "10.0.0.1");
  expect(r.code).toBe(0);
  // One CLUSTER INFO to judge it, one more for node_in_cluster.
  expect(r.calls.filter((c) => c.startsWith("10.0.0.3 "))).toEqual(Array(2).fill("10.0.0.3 cluster info"));
});
