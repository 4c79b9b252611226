#!/usr/bin/python3
"""The lab's writer (lab/writer.ts) driven by redis-py: mode "write" only, the same config (the JSON file
named by WRITER_CONFIG_FILE) and the same result on stdout, so the benches and suites judge both alike.

SET {tag}:<seq> <seq> one after another until the stop file exists, SIGTERM, or durationMs; every
acknowledged write is reported as [seq, epoch ms], every unavailability window as a gap. The client is
configured as docs/clients.md tells a redis-py app to be on a silent node: socket and connect timeouts of
0.25 s (without them a read to a dead instance waits for TCP, minutes); the rest is redis-py's own
behaviour. RedisCluster re-reads the slot map only after 5 failed tries on the same node, 0.25 s apart:
with 0.25 s timeouts that is every 2.25 s, with 0.5 s every 3.5 s, so a failover that ends at about 4 s is
noticed at 4.5 s instead of 7 s. A Sentinel-managed pool asks the Sentinels for the primary on every new
connection.

Written for Debian 12's python3-redis (4.3.4), as a Debian host's app would run it. That version's
RedisCluster cannot re-read the slot map once a node it knew has died: re-initialising deep-copies its
connection settings, which hold a bound method of the client and so its lock ("cannot pickle
'_thread.lock' object", raised as RedisClusterException; fixed in redis-py 4.4.0, PR #2377). An app on
4.3.x must build a new client on that error, as this writer does (docs/clients.md).
"""
import json
import logging
import os
import signal
import sys
import time

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.sentinel import Sentinel

# The settings docs/clients.md gives redis-py apps.
SOCKET_TIMEOUT_S = 0.25
CONNECT_TIMEOUT_S = 0.25


def now_ms():
    return int(time.time() * 1000)


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def make_client(cfg):
    common = {
        "username": cfg["user"],
        "password": cfg["password"],
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
    }
    if cfg.get("ca"):
        # Verifies the nodes' certificates against the stack's CA (redis-py's default: CERT_REQUIRED).
        common.update(ssl=True, ssl_ca_certs=cfg["ca"])
    if cfg.get("direct"):
        host, port = endpoint(cfg["nodes"][0])
        return Redis(host=host, port=port, **common)
    sentinel = cfg.get("sentinel")
    if sentinel:
        manager = Sentinel(
            [endpoint(s) for s in sentinel["sentinels"]],
            sentinel_kwargs=dict(common),
            **common,
        )
        return manager.master_for(sentinel["name"])
    return RedisCluster(startup_nodes=[ClusterNode(*endpoint(n)) for n in cfg["nodes"]], **common)


# What a failed command may raise: RedisClusterException is not a RedisError.
FAILURES = (RedisError, RedisClusterException)


class Writer:
    """One client, built on first use and built again when redis-py 4.3.x cannot rebuild its slot map."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.client = None

    def set(self, key, value):
        try:
            if self.client is None:
                # Building a cluster client runs commands too (COMMAND), so it can fail like one.
                self.client = make_client(self.cfg)
            self.client.set(key, value)
        except RedisClusterException:
            self.close()
            raise

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except FAILURES:
                pass
            self.client = None


def write(cfg):
    r = Writer(cfg)
    result = {"attempts": 0, "acked": [], "errors": [], "gaps": []}
    deadline = time.time() + cfg.get("durationMs", 600000) / 1000
    stop_file = cfg.get("stopFile")
    interval = cfg.get("intervalMs", 0) / 1000
    tag = cfg["tag"]
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))

    # The first write waits for the client to connect (not an outage): retry it until it lands, and say
    # why when it never does.
    first_until = time.time() + 15
    while True:
        try:
            r.set("{%s}:0" % tag, "0")
            break
        except FAILURES as e:
            if time.time() > first_until:
                sys.exit("writer.py: no first write in 15 s: %s: %s" % (type(e).__name__, e))
            time.sleep(0.05)
    if stop_file:
        open(stop_file + ".ready", "w").close()

    seq = 0
    failing_since = None
    while not stop["requested"] and time.time() < deadline and not (stop_file and os.path.exists(stop_file)):
        seq += 1
        result["attempts"] += 1
        try:
            r.set("{%s}:%d" % (tag, seq), str(seq))
            t = now_ms()
            result["acked"].append([seq, t])
            if failing_since is not None:
                result["gaps"].append({"start": failing_since, "end": t, "ms": t - failing_since})
                failing_since = None
            if interval:
                time.sleep(interval)
        except FAILURES as e:
            t = now_ms()
            if failing_since is None:
                failing_since = t
                result["errors"].append([t, "%s: %s" % (type(e).__name__, e)])
            time.sleep(0.02)
    if failing_since is not None:
        # As JSON.stringify writes NaN (lab/writer.ts): null.
        result["gaps"].append({"start": failing_since, "end": None, "ms": None})
    r.close()
    return result


def main():
    # redis-py logs every connection error it handles, with its traceback, to stderr: the result says enough.
    logging.getLogger("redis").addHandler(logging.NullHandler())
    logging.getLogger("redis").propagate = False
    path = os.environ.get("WRITER_CONFIG_FILE")
    cfg = json.load(open(path)) if path else json.loads(os.environ.get("WRITER_CONFIG", "{}"))
    if cfg.get("mode") != "write":
        sys.exit("writer.py runs mode write only (the judges are lab/writer.ts's, ioredis)")
    json.dump(write(cfg), sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
