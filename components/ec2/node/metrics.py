#!/usr/bin/python3
# redis-stack metrics collector, run by redis-node-metrics.timer every METRICS_INTERVAL_SECONDS.
# Reads the node's Redis (INFO, CLUSTER INFO/NODES, LATENCY HISTOGRAM) and its data volume, turns the
# counters into rates over the period since the previous run (state kept in STATE_FILE), and publishes
# one PutMetricData call through awscli (the instance role allows it for this namespace only).
# The metric names are components/monitoring/metrics.ts's NODE_METRICS (a unit test compares `--describe`).
#   metrics.py               collect and publish
#   metrics.py --dry-run     collect and print the MetricData JSON instead of publishing
#   metrics.py --describe    what this collector publishes: {name: {unit, stackWide}} as JSON
#   --env FILE, --state FILE, --log FILE   other paths than NODE_ENV, STATE_FILE, LOG_FILE
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

NODE_ENV = "/etc/redis-stack/node.env"
STATE_FILE = "/var/lib/redis-stack/metrics-state.json"
LOG_FILE = "/var/log/redis-stack-metrics.log"

UNITS: Dict[str, str] = {
    "UsedMemory": "Bytes",
    "MemoryPercentOfMaxmemory": "Percent",
    "RssMemory": "Bytes",
    "FragmentationRatio": "None",
    "MemoryPercentOfInstance": "Percent",
    "OpsPerSecond": "Count/Second",
    "HitRate": "Percent",
    "EvictionsPerSecond": "Count/Second",
    "ExpiredPerSecond": "Count/Second",
    "LatencyP50": "Microseconds",
    "LatencyP95": "Microseconds",
    "LatencyP99": "Microseconds",
    "LatencyP999": "Microseconds",
    "ConnectedClients": "Count",
    "RejectedConnections": "Count",
    "IsMaster": "None",
    "RoleChanged": "Count",
    "ConnectedReplicas": "Count",
    "MasterLinkUp": "None",
    "ReplicationLagBytes": "Bytes",
    "ReplicationLagSeconds": "Seconds",
    "ClusterStateOk": "None",
    "ClusterSlotsOk": "Count",
    "ClusterSlotsPfail": "Count",
    "ClusterSlotsFail": "Count",
    "ClusterKnownNodes": "Count",
    "MastersSeen": "Count",
    "RdbLastSaveOk": "None",
    "RdbSecondsSinceLastSave": "Seconds",
    "AofWriteOk": "None",
    "AofRewriteInProgress": "None",
    "DataDiskUsedPercent": "Percent",
    "TlsCertDaysLeft": "None",
    "CpuPercent": "Percent",
    "Up": "Count",
}

# Also published with {Stack} alone: what the stack-wide alarms read.
STACK_WIDE = {
    "MemoryPercentOfMaxmemory",
    "EvictionsPerSecond",
    "LatencyP99",
    "RejectedConnections",
    "RoleChanged",
    "ConnectedReplicas",
    "ClusterStateOk",
    "ClusterSlotsFail",
    "MastersSeen",
    "RdbLastSaveOk",
    "RdbSecondsSinceLastSave",
    "AofWriteOk",
    "DataDiskUsedPercent",
    "TlsCertDaysLeft",
}

PERCENTILES = (("LatencyP50", 50.0), ("LatencyP95", 95.0), ("LatencyP99", 99.0), ("LatencyP999", 99.9))

# Commands left out of the latency figures: the collector's own, health checks, replication and
# connection plumbing. Subcommands (cluster|info, config|get, latency|histogram, ...) are all admin.
NOT_DATA = {
    "info", "ping", "hello", "auth", "role", "replconf", "psync", "sync", "select", "readonly",
    "readwrite", "asking", "echo", "quit", "reset", "wait", "monitor", "shutdown", "save", "bgsave",
    "bgrewriteaof", "failover", "lastsave", "dbsize", "time", "command",
}


log_file = LOG_FILE


def log(message: str) -> None:
    line = f"{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')} metrics: {message}"
    print(line, file=sys.stderr)
    try:
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def read_env(path: str = NODE_ENV) -> Dict[str, str]:
    with open(path, encoding="utf-8") as f:
        words = shlex.split(f.read(), comments=False, posix=True)
    return dict(w.split("=", 1) for w in words if "=" in w)


class Redis:
    def __init__(self, env: Dict[str, str], host: str, port: str) -> None:
        self.env = env
        self.host = host
        self.port = port

    def cli(self, *args: str, json_out: bool = False) -> str:
        e = self.env
        argv = ["redis-cli", "-h", self.host, "-p", self.port, "--user", e["ADMIN_USER"]]
        if e.get("TLS") == "yes":
            argv += ["--tls", "--cacert", e["TLS_CA"]]
            if e.get("TLS_CERT"):
                argv += ["--cert", e["TLS_CERT"], "--key", e["TLS_KEY"]]
        if json_out:
            argv.append("--json")
        with open(e["ADMIN_PASS_FILE"], encoding="utf-8") as f:
            password = f.read().strip()
        r = subprocess.run(
            argv + list(args),
            env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": password},
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if r.returncode != 0 or r.stdout.startswith(("ERR", "NOAUTH", "WRONGPASS", "NOPERM")):
            raise RuntimeError(f"redis-cli {' '.join(args)}: {(r.stdout + r.stderr).strip()[:200]}")
        return r.stdout.replace("\r", "")


def parse_info(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def fields(value: str) -> Dict[str, str]:
    """slave0:ip=...,port=...,offset=...,lag=... -> dict."""
    return dict(p.split("=", 1) for p in value.split(",") if "=" in p)


def merged_histogram(raw: Dict[str, Dict[str, object]]) -> Dict[int, int]:
    """Cumulative counts per bucket (latency <= bucket µs), summed over the data commands."""
    per_command: List[List[Tuple[int, int]]] = []
    for command, entry in raw.items():
        if "|" in command or command.lower() in NOT_DATA:
            continue
        hist = entry.get("histogram_usec", {}) if isinstance(entry, dict) else {}
        if isinstance(hist, dict):
            per_command.append(sorted((int(k), int(v)) for k, v in hist.items()))
    buckets = sorted({b for h in per_command for b, _ in h})
    merged: Dict[int, int] = {}
    for b in buckets:
        total = 0
        for h in per_command:
            below = [c for k, c in h if k <= b]
            total += below[-1] if below else 0
        merged[b] = total
    return merged


def window_percentiles(now: Dict[int, int], before: Dict[int, int]) -> Optional[Dict[str, float]]:
    """Percentiles of the calls made between two cumulative histograms (bucket upper bounds)."""
    def at(h: Dict[int, int], b: int) -> int:
        below = [c for k, c in sorted(h.items()) if k <= b]
        return below[-1] if below else 0

    buckets = sorted(set(now) | set(before))
    delta = [(b, at(now, b) - at(before, b)) for b in buckets]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None
    out: Dict[str, float] = {}
    for name, p in PERCENTILES:
        need = total * p / 100.0
        out[name] = float(next(b for b, c in delta if c >= need))
    return out


def masters_seen(nodes_text: str) -> int:
    count = 0
    for line in nodes_text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        flags = parts[2].split(",")
        failing = any(f in ("fail", "fail?", "noaddr", "handshake") for f in flags)
        if "master" in flags and not failing and len(parts) > 8:
            count += 1
    return count


def serves_slots(nodes_text: str) -> bool:
    """Whether this node (the `myself` line) is assigned any slot."""
    for line in nodes_text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and "myself" in parts[2].split(","):
            return len(parts) > 8
    return False


def disk_used_percent(path: str) -> Optional[float]:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    total = st.f_blocks * st.f_frsize
    if total == 0:
        return None
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    # As df reports: used over what non-root users could have (used + available).
    return 100.0 * used / (used + st.f_bavail * st.f_frsize)


def cluster_health(redis: "Redis", role: str, values: Dict[str, float]) -> str:
    """Redis Cluster: the node's CLUSTER INFO and the masters it sees. Returns its role for RoleChanged."""
    try:
        cluster = parse_info(redis.cli("cluster", "info"))
        values["ClusterStateOk"] = 1.0 if cluster.get("cluster_state") == "ok" else 0.0
        for metric, key in (
            ("ClusterSlotsOk", "cluster_slots_ok"),
            ("ClusterSlotsPfail", "cluster_slots_pfail"),
            ("ClusterSlotsFail", "cluster_slots_fail"),
            ("ClusterKnownNodes", "cluster_known_nodes"),
        ):
            values[metric] = float(cluster.get(key, "0") or 0)
        nodes_text = redis.cli("cluster", "nodes")
        values["MastersSeen"] = float(masters_seen(nodes_text))
        # A failover swaps a master that serves slots and a replica. A node that boots, or joins as a new
        # shard, is an empty master first: becoming a replica (or getting slots) from there is no failover.
        if role == "master" and not serves_slots(nodes_text):
            role = "empty"
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log(f"cluster view unknown: {e}")
        values["ClusterStateOk"] = 0.0
    return role


def sentinel_health(env: Dict[str, str], info: Dict[str, str], values: Dict[str, float]) -> None:
    """The Sentinel topology's reading of ClusterStateOk and MastersSeen: this node's Sentinel names a
    primary that is not down and can reach a quorum, and this node's Redis agrees (it is that primary, or
    replicates it). A Sentinel that names another primary than the others shows as 0 on the nodes that
    follow the others."""
    sentinel = Redis(env, env["NODE_IP"], env["SENTINEL_PORT"])
    name = env["SENTINEL_MASTER"]
    try:
        reply = sentinel.cli("sentinel", "master", name).splitlines()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        log(f"sentinel view unknown: {e}")
        values["ClusterStateOk"] = 0.0
        return
    master = dict(zip(reply[0::2], reply[1::2]))
    try:
        quorum = sentinel.cli("sentinel", "ckquorum", name).startswith("OK")
    except (RuntimeError, subprocess.TimeoutExpired, OSError):
        quorum = False
    flags = set(master.get("flags", "").split(","))
    primary_ok = "master" in flags and not flags & {"s_down", "o_down", "disconnected"}
    named = (master.get("ip"), master.get("port"))
    if info.get("role") == "master":
        follows = named == (env["NODE_IP"], env["REDIS_PORT"])
    else:
        follows = named == (info.get("master_host"), info.get("master_port"))
    values["MastersSeen"] = 1.0 if primary_ok else 0.0
    values["ClusterStateOk"] = 1.0 if primary_ok and quorum and follows else 0.0


def tls_cert_days_left(path: str, now: float) -> Optional[float]:
    """Days until the certificate Redis loads (its file) expires; None when it cannot be read."""
    try:
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-enddate", "-in", path],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        # notAfter=Dec  6 20:00:00 2028 GMT (strptime's space matches the padding)
        end = datetime.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError) as e:
        log(f"cannot read the certificate's expiry from {path}: {e}")
        return None
    return round((end.timestamp() - now) / 86400.0, 2)


def collect(env: Dict[str, str], state: Dict[str, object], now: float) -> Tuple[Dict[str, float], Dict[str, object]]:
    values: Dict[str, float] = {"Up": 1.0}
    disk = disk_used_percent(env.get("DATA_DIR", "/var/lib/redis"))
    if disk is not None:
        values["DataDiskUsedPercent"] = round(disk, 2)
    if env.get("TLS") == "yes" and env.get("TLS_CERT"):
        days = tls_cert_days_left(env["TLS_CERT"], now)
        if days is not None:
            values["TlsCertDaysLeft"] = days
    redis = Redis(env, env["NODE_IP"], env["REDIS_PORT"])
    try:
        info = parse_info(redis.cli("info"))
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        # Redis does not answer: this node serves nothing, the safe reading of its cluster state.
        log(f"redis does not answer: {e}")
        values["ClusterStateOk"] = 0.0
        return values, state

    num = lambda k: float(info.get(k, "0") or 0)  # noqa: E731
    used, maxmem = num("used_memory"), num("maxmemory")
    values["UsedMemory"] = used
    values["RssMemory"] = num("used_memory_rss")
    values["FragmentationRatio"] = num("mem_fragmentation_ratio")
    if maxmem > 0:
        values["MemoryPercentOfMaxmemory"] = round(100.0 * used / maxmem, 2)
    if num("total_system_memory") > 0:
        values["MemoryPercentOfInstance"] = round(100.0 * num("used_memory_rss") / num("total_system_memory"), 2)
    values["ConnectedClients"] = num("connected_clients")

    role = "master" if info.get("role") == "master" else "replica"
    values["IsMaster"] = 1.0 if role == "master" else 0.0
    if role == "master":
        values["ConnectedReplicas"] = num("connected_slaves")
    else:
        values["MasterLinkUp"] = 1.0 if info.get("master_link_status") == "up" else 0.0
        try:
            master = parse_info(Redis(env, info["master_host"], info["master_port"]).cli("info", "replication"))
            me = next(
                (fields(v) for k, v in master.items() if k.startswith("slave") and fields(v).get("ip") == env["NODE_IP"]),
                None,
            )
            if me is not None:
                values["ReplicationLagBytes"] = max(0.0, float(master["master_repl_offset"]) - float(me["offset"]))
                values["ReplicationLagSeconds"] = float(me["lag"])
        except (RuntimeError, KeyError, ValueError, subprocess.TimeoutExpired, OSError) as e:
            log(f"replication lag unknown: {e}")

    values["RdbLastSaveOk"] = 1.0 if info.get("rdb_last_bgsave_status") == "ok" else 0.0
    values["RdbSecondsSinceLastSave"] = max(0.0, now - num("rdb_last_save_time"))
    values["AofWriteOk"] = 1.0 if info.get("aof_last_write_status", "ok") == "ok" else 0.0
    values["AofRewriteInProgress"] = num("aof_rewrite_in_progress")

    if env.get("TOPOLOGY") == "sentinel":
        sentinel_health(env, info, values)
    else:
        role = cluster_health(redis, role, values)
    before_role = state.get("role")
    changed = before_role in ("master", "replica") and role in ("master", "replica") and before_role != role
    values["RoleChanged"] = 1.0 if changed else 0.0

    counters = {
        k: num(k)
        for k in (
            "total_commands_processed",
            "keyspace_hits",
            "keyspace_misses",
            "evicted_keys",
            "expired_keys",
            "rejected_connections",
            "used_cpu_sys",
            "used_cpu_user",
        )
    }
    histogram: Dict[int, int] = {}
    try:
        histogram = merged_histogram(json.loads(redis.cli("latency", "histogram", json_out=True) or "{}"))
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        log(f"latency histogram unknown: {e}")

    before = state if state.get("run_id") == info.get("run_id") else {}
    seconds = now - float(before.get("ts", 0) or 0)
    prev = before.get("counters")
    if isinstance(prev, dict) and 0 < seconds < 3600:
        d = {k: counters[k] - float(prev.get(k, 0)) for k in counters}
        values["OpsPerSecond"] = round(max(0.0, d["total_commands_processed"]) / seconds, 3)
        values["EvictionsPerSecond"] = round(max(0.0, d["evicted_keys"]) / seconds, 3)
        values["ExpiredPerSecond"] = round(max(0.0, d["expired_keys"]) / seconds, 3)
        values["RejectedConnections"] = max(0.0, d["rejected_connections"])
        values["CpuPercent"] = round(100.0 * max(0.0, d["used_cpu_sys"] + d["used_cpu_user"]) / seconds, 2)
        reads = d["keyspace_hits"] + d["keyspace_misses"]
        if reads > 0:
            values["HitRate"] = round(100.0 * d["keyspace_hits"] / reads, 3)
        prev_hist = before.get("histogram")
        if isinstance(prev_hist, dict):
            pct = window_percentiles(histogram, {int(k): int(v) for k, v in prev_hist.items()})
            if pct:
                values.update(pct)

    new_state: Dict[str, object] = {
        "ts": now,
        "run_id": info.get("run_id"),
        "role": role,
        "counters": counters,
        "histogram": {str(k): v for k, v in histogram.items()},
    }
    return values, new_state


def metric_data(env: Dict[str, str], values: Dict[str, float], now: float) -> List[Dict[str, object]]:
    stack = [{"Name": "Stack", "Value": env["METRICS_STACK"]}]
    node = stack + [{"Name": "Shard", "Value": env["NODE_SHARD"]}, {"Name": "Node", "Value": env["NODE_NAME"]}]
    stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    resolution = 1 if int(env.get("METRICS_INTERVAL_SECONDS", "60")) < 60 else 60
    data: List[Dict[str, object]] = []
    for name, value in values.items():
        for dims in [node] + ([stack] if name in STACK_WIDE else []):
            data.append(
                {
                    "MetricName": name,
                    "Dimensions": dims,
                    "Value": value,
                    "Unit": UNITS[name],
                    "Timestamp": stamp,
                    "StorageResolution": resolution,
                }
            )
    return data


def load_state(path: str) -> Dict[str, object]:
    try:
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        return loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(path: str, state: Dict[str, object]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.new"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def option(argv: List[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else default


def publish(env: Dict[str, str], data: List[Dict[str, object]]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
        path = f.name
    try:
        r = subprocess.run(
            [
                "aws", "cloudwatch", "put-metric-data", "--region", env["AWS_REGION"],
                "--namespace", env["METRICS_NAMESPACE"], "--metric-data", f"file://{path}",
            ],
            # node.env's AWS_* settings (region, IMDS patience) on top of the unit's environment.
            env={**os.environ, **{k: v for k, v in env.items() if k.startswith("AWS_")}},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError(f"put-metric-data failed ({r.returncode}): {r.stderr.strip()[:300]}")


def main(argv: List[str]) -> int:
    if "--describe" in argv:
        print(json.dumps({n: {"unit": u, "stackWide": n in STACK_WIDE} for n, u in UNITS.items()}))
        return 0
    global log_file
    log_file = option(argv, "--log", LOG_FILE)
    env = read_env(option(argv, "--env", NODE_ENV))
    state_file = option(argv, "--state", STATE_FILE)
    now = time.time()
    values, new_state = collect(env, load_state(state_file), now)
    data = metric_data(env, values, now)
    save_state(state_file, new_state)
    if "--dry-run" in argv:
        print(json.dumps(data, indent=1))
        return 0
    try:
        publish(env, data)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
