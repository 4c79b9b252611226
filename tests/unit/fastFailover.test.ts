/**
 * The node's fast failover paths (lib-live.sh), their decisions judged on bash with the real awk and a
 * recorded stand-in for redis-cli; the integration suites (faults, sentinel) run them on real hosts.
 *   failed_master_events: which CLUSTER NODES replies make the watcher act;
 *   crash_takeover: after a crash (ExecStopPost), which replica is asked to take over, and when nothing is.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const LIB = path.join(__dirname, "../../components/ec2/node/lib-live.sh");

const A = "a".repeat(40);
const B = "b".repeat(40);
const C = "c".repeat(40);
const ME = "d".repeat(40);

/** One CLUSTER NODES line. */
const line = (id: string, addr: string, flags: string, master = "-", slots = "") =>
  `${id} ${addr}:6379@16379 ${flags} ${master} 0 1700000000000 1 connected${slots ? ` ${slots}` : ""}`;

function events(replies: string[][]): string[] {
  const out = execFileSync("bash", ["-c", `set -euo pipefail; . "$LIB"; failed_master_events`], {
    env: { PATH: process.env.PATH, LIB },
    input: replies.map((r) => r.join("\n")).join("\n") + "\n",
  }).toString();
  return out.split("\n").filter((x) => x !== "");
}

describe("failed_master_events: the watcher acts once per FAIL of its own master", () => {
  const healthy = [line(A, "10.0.0.1", "master", "-", "0-5460"), line(ME, "10.0.0.2", "myself,slave", A)];
  const suspected = [line(A, "10.0.0.1", "master,fail?", "-", "0-5460"), line(ME, "10.0.0.2", "myself,slave", A)];
  const failed = [line(A, "10.0.0.1", "master,fail", "-", "0-5460"), line(ME, "10.0.0.2", "myself,slave", A)];

  test("nothing while the master is healthy or only suspected by this node (fail?)", () => {
    expect(events([healthy, suspected, suspected, healthy])).toEqual([]);
  });

  test("the master id once when the cluster flags it FAIL, however many replies repeat it", () => {
    expect(events([healthy, suspected, failed, failed, failed])).toEqual([A]);
  });

  test("its own line may come before or after the master's: the order within a reply does not matter", () => {
    expect(events([healthy, [...failed].reverse()])).toEqual([A]);
  });

  test("again after the flag cleared (the master came back) and was set once more", () => {
    expect(events([failed, healthy, failed])).toEqual([A, A]);
  });

  test("nothing once this node is a master itself, nor for another master's failure", () => {
    const promoted = [line(A, "10.0.0.1", "master,fail", "-"), line(ME, "10.0.0.2", "myself,master", "-", "0-5460")];
    const otherFails = [...healthy, line(B, "10.0.0.3", "master,fail", "-", "5461-10922")];
    expect(events([promoted, promoted, otherFails])).toEqual([]);
  });

  test("a new master (after a failover elsewhere in the shard) is watched from then on", () => {
    const followsB = [
      line(A, "10.0.0.1", "master,fail"),
      line(B, "10.0.0.3", "master", "-", "0-5460"),
      line(ME, "10.0.0.2", "myself,slave", B),
    ];
    const bFails = [
      line(A, "10.0.0.1", "master,fail"),
      line(B, "10.0.0.3", "master,fail", "-", "0-5460"),
      line(ME, "10.0.0.2", "myself,slave", B),
    ];
    expect(events([followsB, followsB, bFails])).toEqual([B]);
  });
});

describe("failover_watch: only a node id reaches the takeover", () => {
  /**
   * One round of the watcher loop under an ERR trap that writes to stdout (the worst case: node.sh's once
   * did, and its text reached this pipe). The stand-in redis-cli prints REPLY and fails, as it does when
   * Redis dies under it; EXTRA may replace a function; `sleep` ends the loop. Returns the arguments
   * fast_takeover was called with.
   */
  function watchOnce(reply: string[], extra = ""): string[] {
    const script = `
      set -Eeuo pipefail
      . "$LIB"
      trap 'echo "FATAL: \\"$BASH_COMMAND\\" failed"' ERR
      NODE_IP=10.0.0.2 REDIS_PORT=6379
      log() { :; }
      ctl_open() { :; }
      rcli() { printf '%s\\n' "$REPLY_LINES"; return 1; }
      fast_takeover() { echo "takeover $1"; }
      sleep() { exit 0; }
      ${extra}
      failover_watch`;
    const out = execFileSync("bash", ["-c", script], {
      env: { PATH: process.env.PATH, LIB, REPLY_LINES: reply.join("\n") },
      stdio: ["ignore", "pipe", "pipe"],
    }).toString();
    return out
      .split("\n")
      .filter((x) => x.startsWith("takeover "))
      .map((x) => x.slice("takeover ".length));
  }

  test("a failed master's id is acted on once; redis-cli dying under it puts nothing else on the pipe", () => {
    const failed = [line(A, "10.0.0.1", "master,fail", "-", "0-5460"), line(ME, "10.0.0.2", "myself,slave", A)];
    expect(watchOnce(failed)).toEqual([A]);
  });

  test("a line that is not a node id (an error message) is never taken for a failed master", () => {
    const noisy = `failed_master_events() { cat >/dev/null; echo "shard1-1: FATAL: x failed"; echo "${B}"; echo "${A}x"; }`;
    expect(watchOnce([], noisy)).toEqual([B]);
  });
});

describe("crash_takeover: after Redis failed (ExecStopPost), the freshest replica takes over at once", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "crash-takeover-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /**
   * Runs crash_takeover with nodes.conf and a redis-cli stand-in: `offsets` maps a replica's address to
   * the offset it reports (absent: it does not answer). Returns the calls made and what was logged.
   */
  function run(nodesConf: string[], env: Record<string, string>, offsets: Record<string, number>) {
    fs.rmSync(path.join(dir, "calls"), { force: true });
    fs.writeFileSync(path.join(dir, "nodes.conf"), nodesConf.join("\n") + "\nvars currentEpoch 3 lastVoteEpoch 0\n");
    const script = `
      set -euo pipefail
      . "$LIB"
      DATA_DIR=$DIR
      log() { echo "log: $*"; }
      publish_status() { echo "status: $*"; }
      rcli() {
        echo "call: $*" >>"$DIR/calls"
        case "$3 $4" in
        "info replication") case "$1:$2" in ${Object.entries(offsets)
          .map(([a, o]) => `"${a}") printf 'role:slave\\r\\nslave_repl_offset:${o}\\r\\n' ;;`)
          .join(" ")} *) return 1 ;; esac ;;
        "cluster failover") echo OK ;;
        esac
      }
      crash_takeover`;
    const out = execFileSync("bash", ["-c", script], {
      env: { PATH: process.env.PATH, LIB, DIR: dir, ...env },
    }).toString();
    const callsFile = path.join(dir, "calls");
    const calls = fs.existsSync(callsFile) ? fs.readFileSync(callsFile, "utf8").trim().split("\n") : [];
    return { out, calls };
  }

  const asMaster = [
    line(ME, "10.0.0.2", "myself,master", "-", "0-5460"),
    line(A, "10.0.0.5", "slave", ME),
    line(B, "10.0.0.6", "slave", ME),
    line(C, "10.0.0.7", "master", "-", "5461-16383"),
  ];
  const killed = { SERVICE_RESULT: "signal", EXIT_CODE: "killed", EXIT_STATUS: "KILL" };

  test("a stop systemd asked for (SERVICE_RESULT success) or no ExecStopPost context: nothing is asked", () => {
    expect(run(asMaster, { SERVICE_RESULT: "success", EXIT_CODE: "exited", EXIT_STATUS: "0" }, {}).calls).toEqual([]);
    expect(run(asMaster, {}, {}).calls).toEqual([]);
  });

  test("a killed master: the replica with the larger offset gets CLUSTER FAILOVER FORCE, and it is logged", () => {
    const { out, calls } = run(asMaster, killed, { "10.0.0.5:6379": 900, "10.0.0.6:6379": 1200 });
    expect(calls.filter((c) => c.includes("cluster failover"))).toEqual(["call: 10.0.0.6 6379 cluster failover force"]);
    expect(out).toMatch(
      /log: crash: Redis exited \(killed KILL\) as a master; 10\.0\.0\.6:6379 \(offset 1200\) takes over/,
    );
  });

  test("a failure without an exited main process (Redis never started: SERVICE_RESULT resources, no EXIT_CODE) still logs what it did", () => {
    const { out, calls } = run(asMaster, { SERVICE_RESULT: "resources" }, { "10.0.0.5:6379": 7 });
    expect(calls.filter((c) => c.includes("cluster failover"))).toEqual(["call: 10.0.0.5 6379 cluster failover force"]);
    expect(out).toContain("log: crash: Redis exited (no exit ) as a master; 10.0.0.5:6379 (offset 7) takes over");
  });

  test("a single replica is asked to take over at once, without a question about its offset first", () => {
    const one = [line(ME, "10.0.0.2", "myself,master", "-", "0-5460"), line(A, "10.0.0.5", "slave", ME)];
    const { out, calls } = run(one, killed, { "10.0.0.5:6379": 5 });
    expect(calls).toEqual(["call: 10.0.0.5 6379 cluster failover force"]);
    expect(out).toContain("10.0.0.5:6379 (the only replica) takes over with CLUSTER FAILOVER FORCE");
  });

  test("a replica that does not answer is passed over; none answering leaves it to the cluster, with a warning", () => {
    const one = run(asMaster, { ...killed, SERVICE_RESULT: "oom-kill" }, { "10.0.0.5:6379": 10 });
    expect(one.calls.filter((c) => c.includes("cluster failover"))).toEqual([
      "call: 10.0.0.5 6379 cluster failover force",
    ]);
    const none = run(asMaster, killed, {});
    expect(none.calls.filter((c) => c.includes("cluster failover"))).toEqual([]);
    expect(none.out).toContain("no replica answered; the cluster fails over after the node timeout");
  });

  test("a replica, a master without slots, or a replica flagged failed: nothing to hand over to or from", () => {
    const asReplica = [line(ME, "10.0.0.2", "myself,slave", C), line(C, "10.0.0.7", "master", "-", "0-16383")];
    expect(run(asReplica, killed, { "10.0.0.7:6379": 5 }).calls).toEqual([]);
    const noSlots = [line(ME, "10.0.0.2", "myself,master", "-"), line(A, "10.0.0.5", "slave", ME)];
    expect(run(noSlots, killed, { "10.0.0.5:6379": 5 }).calls).toEqual([]);
    const failedReplica = [
      line(ME, "10.0.0.2", "myself,master", "-", "0-16383"),
      line(A, "10.0.0.5", "slave,fail", ME),
    ];
    expect(run(failedReplica, killed, { "10.0.0.5:6379": 5 }).calls.filter((c) => c.includes("failover"))).toEqual([]);
  });
});

describe("fast_takeover: on its master's FAIL, the replica Redis would elect takes over without the election delay", () => {
  const ME_IP = "10.0.0.2";
  /** Runs fast_takeover A with the cluster's view, this replica's INFO and its siblings' offsets. */
  function run(
    nodes: string[],
    mine: { offset: number; downSeconds?: number },
    siblings: Record<string, number>,
    takeoverReply = "OK",
    beforeTakeover = "",
  ) {
    const script = `
      set -euo pipefail
      . "$LIB"
      NODE_IP=${ME_IP}; REDIS_PORT=6379
      log() { echo "log: $*"; }
      rcli() {
        echo "call: $*" >>"$DIR/calls"
        if [ $# = 2 ] && [ "$1" = ${ME_IP} ]; then
          # Interactive redis-cli (the watcher's CTL connection): a command per line on stdin, the replies in turn.
          while read -r cmd; do
            echo "call: $1 $2 <<< $cmd" >>"$DIR/calls"
            case "$cmd" in
            "CLUSTER NODES") printf '%s\n' "$NODES" ;;
            "INFO replication") printf 'role:slave\r\nslave_repl_offset:${mine.offset}\r\n${mine.downSeconds === undefined ? "" : `master_link_down_since_seconds:${mine.downSeconds}\r\n`}' ;;
            "CONFIG GET cluster-node-timeout") printf 'cluster-node-timeout\r\n2000\r\n' ;;
            "CLUSTER FAILOVER TAKEOVER") echo "${takeoverReply}" ;;
            "ECHO "*) echo "\${cmd#ECHO }" ;;
            esac
          done
          return 0
        fi
        case "$1 $3 $4" in
        *" info replication") case "$1" in ${Object.entries(siblings)
          .map(([ip, o]) => `"${ip}") printf 'slave_repl_offset:${o}\r\n' ;;`)
          .join(" ")} *) return 1 ;; esac ;;
        *) return 1 ;;
        esac
      }
      ctl_open
      ${beforeTakeover}
      { fast_takeover ${A} || echo "returned $?"; }
      ctl_close`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fast-takeover-"));
    try {
      const r = execFileSync("bash", ["-c", `${script}; cat "$DIR/calls"`], {
        env: { PATH: process.env.PATH, LIB, NODES: nodes.join("\n"), DIR: dir },
      }).toString();
      return { out: r, tookOver: r.includes(`call: ${ME_IP} 6379 <<< CLUSTER FAILOVER TAKEOVER`) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const failedA = line(A, "10.0.0.1", "master,fail", "-", "0-5460");
  const me = line(ME, ME_IP, "myself,slave", A);

  test("the only replica takes over at once, and says how long after seeing the flag", () => {
    const r = run([failedA, me], { offset: 500 }, {});
    expect(r.tookOver).toBe(true);
    expect(r.out).toMatch(
      /log: watch: master a{40} failed .* took its slots over at once, \d+ ms after seeing the flag/,
    );
  });

  test("not when the flag is only this node's suspicion (fail?), nor when the master is another one", () => {
    expect(run([line(A, "10.0.0.1", "master,fail?", "-", "0-5460"), me], { offset: 500 }, {}).tookOver).toBe(false);
    expect(run([failedA, line(ME, ME_IP, "myself,slave", C)], { offset: 500 }, {}).tookOver).toBe(false);
  });

  test("with siblings: only the one with the largest offset (the lower id on a tie); one not answering leaves it to Redis", () => {
    const sib = (id: string, ip: string) => line(id, ip, "slave", A);
    // B has more: B goes, not this node.
    expect(run([failedA, me, sib(B, "10.0.0.3")], { offset: 500 }, { "10.0.0.3": 600 }).tookOver).toBe(false);
    // This node has more.
    expect(run([failedA, me, sib(B, "10.0.0.3")], { offset: 700 }, { "10.0.0.3": 600 }).tookOver).toBe(true);
    // A tie: B's id is lower than this node's (d...), so B goes.
    expect(run([failedA, me, sib(B, "10.0.0.3")], { offset: 600 }, { "10.0.0.3": 600 }).tookOver).toBe(false);
    const silent = run([failedA, me, sib(B, "10.0.0.3")], { offset: 900 }, {});
    expect(silent.tookOver).toBe(false);
    expect(silent.out).toContain("replica 10.0.0.3:6379 does not answer, so the cluster's election picks the replica");
  });

  test("a refused takeover (Redis's election came first) is logged with Redis's reply and reported to the watcher", () => {
    const r = run([failedA, me], { offset: 500 }, {}, "ERR You should send CLUSTER FAILOVER to a replica");
    expect(r.out).toContain("log: watch: CLUSTER FAILOVER TAKEOVER refused (");
    expect(r.out).toMatch(/ms after the flag\): ERR You should send CLUSTER FAILOVER to a replica/);
    expect(r.out).toContain("returned 1");
    expect(run([failedA, me], { offset: 500 }, {}).out).not.toContain("returned");
  });

  test("its connection lost (Redis restarted since the watcher opened it): a new one, and the takeover goes ahead", () => {
    const r = run(
      [failedA, me],
      { offset: 500 },
      {},
      "OK",
      'sleep 0.3; kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true',
    );
    expect(r.tookOver).toBe(true);
    expect(r.out.match(/call: 10\.0\.0\.2 6379$/gm)).toHaveLength(2);
  });

  test("Redis's validity rule: cut off longer than 10 x node timeout + 10 s, its data is too old to take over", () => {
    expect(run([failedA, me], { offset: 500, downSeconds: 30 }, {}).tookOver).toBe(true);
    const stale = run([failedA, me], { offset: 500, downSeconds: 31 }, {});
    expect(stale.tookOver).toBe(false);
    expect(stale.out).toContain("this replica lost it 31s ago (over 30s)");
  });
});
