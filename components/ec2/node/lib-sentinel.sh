# shellcheck shell=bash
# lib-sentinel.sh: the Sentinel topology's steps of node.sh (components/ec2/sentinel.ts): one primary, its
# replicas, and a Sentinel on every node. node.sh sources it last when TOPOLOGY=sentinel, so these
# definitions replace its Redis Cluster ones (the topology_* functions); everything else (packages,
# volume, secrets, TLS, live settings, rolling restarts, metrics) is node.sh's own, shared by both.
#
# Rules:
# - whom a node replicates is decided before its Redis starts, at every boot, and the other Sentinels
#   decide it first: a node that was away (a crash, a reboot, a replacement with an empty volume) comes
#   back as a replica of the primary they elected meanwhile, never as a second primary;
# - only Sentinel promotes; node.sh never sends REPLICAOF NO ONE;
# - a planned stop of the primary (reboot, roll, replacement) hands over first: writes paused until a
#   replica has them all, then SENTINEL FAILOVER.
# shellcheck disable=SC2154  # variables come from node.env and node.sh

readonly SENTINEL_FILE=$SENTINEL_DIR/sentinel.conf
# The primary this node's Sentinel named last (on the root volume): the fallback when no Sentinel answers.
readonly LAST_PRIMARY_FILE=$SENTINEL_DIR/last-primary

# scli HOST ARGS...: redis-cli to the Sentinel on HOST as the admin user (sentinel.conf's users).
scli() {
  local host=$1
  shift
  local extra=()
  if [ "${TLS:-no}" = yes ]; then extra=(--tls --cacert "$TLS_CA" --cert "$TLS_CERT" --key "$TLS_KEY"); fi
  REDISCLI_AUTH=$(<"$ADMIN_PASS_FILE") timeout "${RCLI_TIMEOUT:-5}" \
    redis-cli -h "$host" -p "$SENTINEL_PORT" --user "$ADMIN_USER" "${extra[@]}" "$@"
}

# sentinel_primary HOST: "ip port" of the primary the Sentinel on HOST names (empty when it does not answer).
sentinel_primary() {
  { scli "$1" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null || true; } | tr -d '\r' |
    paste -sd' ' | { grep -E '^[0-9.]+ [0-9]+$' || true; }
}

# sentinel_field HOST FIELD: one field of SENTINEL MASTER on HOST's Sentinel (empty when it does not answer).
sentinel_field() {
  { scli "$1" sentinel master "$SENTINEL_MASTER" 2>/dev/null || true; } | tr -d '\r' |
    awk -v k="$2" 'prev == k { print; exit } { prev = $0 }'
}

# peers_primary: the primary most of the other nodes' Sentinels name (empty when none answers).
peers_primary() {
  local ip
  while read -r _ ip _; do
    [ "$ip" = "$NODE_IP" ] || sentinel_primary "$ip"
  done <<<"$CLUSTER_PLAN" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2, $3 }'
}

# peer_primary: "ip port" of another node whose Redis runs as a primary (every Sentinel down at once).
peer_primary() {
  local ip port
  while read -r _ ip port _; do
    [ "$ip" = "$NODE_IP" ] && continue
    if [ "$({ rcli "$ip" "$port" role 2>/dev/null || true; } | head -n 1 | tr -d '\r')" = master ]; then
      echo "$ip $port"
      return 0
    fi
  done <<<"$CLUSTER_PLAN"
}

# decide_primary: "ip port source" of whom this boot follows, by authority: the other Sentinels (they may
# have failed over while this node was away), a peer running as primary, the primary this node's Sentinel
# named last, the plan (the stack's first boot).
decide_primary() {
  local p
  p=$(peers_primary)
  [ -z "$p" ] || {
    echo "$p the other Sentinels"
    return 0
  }
  p=$(peer_primary)
  [ -z "$p" ] || {
    echo "$p a peer running as primary"
    return 0
  }
  p=$(grep -Em1 '^[0-9.]+ [0-9]+$' "$LAST_PRIMARY_FILE" 2>/dev/null || true)
  [ -z "$p" ] || {
    echo "$p this node's Sentinel, last boot"
    return 0
  }
  awk '$4 == "master" { print $2, $3, "the plan"; exit }' <<<"$CLUSTER_PLAN"
}

# topology_secret_names: the SSM parameters refresh_secrets reads for this topology: the Sentinels'
# password (their user on the data nodes and on each other).
topology_secret_names() { echo "$SSM_SENTINEL_PASSWORD"; }
topology_secrets() {
  printf '%s' "${SSM_VALUES[$SSM_SENTINEL_PASSWORD]}" | write_file "$SENTINEL_PASS_FILE" 0600 root:root >/dev/null
}

# topology_acl_users: the data node's ACL line for the Sentinels.
topology_acl_users() { acl_user "$SENTINEL_USER" "$(<"$SENTINEL_PASS_FILE")" "$SENTINEL_ACL_RULES"; }

# topology_prepare: before Redis starts: whom it replicates (role.conf), and this node's sentinel.conf
# monitoring that primary, with its secret lines and ACL users (hashes from the data node's ACL file).
topology_prepare() {
  local decision primary source ip port myid pass hash
  decision=$(decide_primary)
  ip=$(awk '{ print $1 }' <<<"$decision")
  port=$(awk '{ print $2 }' <<<"$decision")
  source=$(cut -d' ' -f3- <<<"$decision")
  primary="$ip:$port"
  if [ "$ip" = "$NODE_IP" ]; then
    echo "# primary (named by $source)" | write_file "$ROLE_CONF" 0640 root:redis >/dev/null
    log "prepare: this node starts as the primary (named by $source)"
  else
    printf 'replicaof %s %s\n' "$ip" "$port" | write_file "$ROLE_CONF" 0640 root:redis >/dev/null
    log "prepare: this node starts as a replica of $primary (named by $source)"
  fi
  install -d -m 0750 -o redis -g redis "$SENTINEL_DIR"
  # The Sentinel keeps its id across reboots (the others know it by it); a new instance gets a new one.
  myid=$(grep -m1 '^sentinel myid ' "$SENTINEL_FILE" 2>/dev/null || true)
  pass=$(<"$SENTINEL_PASS_FILE")
  hash=$(printf '%s' "$pass" | sha256sum | cut -d' ' -f1)
  {
    sed -E "s/^(sentinel monitor $SENTINEL_MASTER) [0-9.]+ [0-9]+ /\\1 $ip $port /" <<<"$SENTINEL_CONF"
    [ -z "$myid" ] || echo "$myid"
    echo "sentinel auth-pass $SENTINEL_MASTER $pass"
    echo "sentinel sentinel-pass $pass"
    echo "user default off"
    echo "user $SENTINEL_USER on #$hash $SENTINEL_PEER_ACL_RULES"
    awk -v u="$APP_USER" -v r="$SENTINEL_APP_ACL_RULES" '$1 == "user" && $2 == u { print "user", u, "on", $4, r }' "$CONF_DIR/users.acl"
    awk -v u="$ADMIN_USER" '$1 == "user" && $2 == u { print "user", u, "on", $4, "~* &* +@all" }' "$CONF_DIR/users.acl"
  } | write_file "$SENTINEL_FILE" 0600 redis:redis >/dev/null
  printf '%s %s\n' "$ip" "$port" | write_file "$LAST_PRIMARY_FILE" 0644 root:root >/dev/null
}

# remember_primary: what this node's Sentinel names now, for a boot when no Sentinel answers.
remember_primary() {
  local p
  p=$(sentinel_primary "$NODE_IP")
  [ -z "$p" ] || printf '%s\n' "$p" | write_file "$LAST_PRIMARY_FILE" 0644 root:root >/dev/null
}

# forget_stale_sentinel_state: a Sentinel that lists more Sentinels or replicas than the plan has (an
# earlier instance of a replaced node, a removed node) is reset, one at a time, each waiting until it
# sees a quorum again, so the Sentinels never lose their majority together.
forget_stale_sentinel_state() {
  local nodes ip others replicas planned_ips
  nodes=$(wc -l <<<"$CLUSTER_PLAN")
  planned_ips=$(awk '{ printf "%s ", $2 }' <<<"$CLUSTER_PLAN")
  while read -r _ ip _; do
    others=$(sentinel_field "$ip" num-other-sentinels)
    replicas=$({ scli "$ip" sentinel replicas "$SENTINEL_MASTER" 2>/dev/null || true; } | tr -d '\r' |
      awk -v p="$planned_ips" 'prev == "ip" && index(p, $0 " ") == 0 { n++ } { prev = $0 } END { print n + 0 }')
    if [ "${others:-0}" -gt $((nodes - 1)) ] || [ "${replicas:-0}" -gt 0 ]; then
      log "Sentinel on $ip knows $others other Sentinels and $replicas replica(s) outside the plan: SENTINEL RESET"
      scli "$ip" sentinel reset "$SENTINEL_MASTER" >/dev/null 2>&1 || true
      retry 60 sentinel_has_quorum "$ip" || log "warning: the Sentinel on $ip has no quorum 60s after its reset"
    fi
  done <<<"$CLUSTER_PLAN"
}

sentinel_has_quorum() { { scli "$1" sentinel ckquorum "$SENTINEL_MASTER" 2>/dev/null || true; } | grep -q '^OK'; }

# sentinel_agrees: this node's Sentinel names a primary, the same one as the other Sentinels, and can reach
# a quorum; the primary's Redis answers.
sentinel_agrees() {
  local mine theirs
  mine=$(sentinel_primary "$NODE_IP")
  theirs=$(peers_primary)
  [ -n "$mine" ] && [ "$mine" = "${theirs:-$mine}" ] && sentinel_has_quorum "$NODE_IP" &&
    node_alive "${mine% *}" "${mine#* }"
}

# sentinels_know_me: a replica is a failover candidate only once the Sentinels have it, linked, from the
# primary's INFO (every 10 s): each Sentinel that answers lists this node as a replica with its link ok.
sentinels_know_me() {
  [ "$(my_role)" = master ] && return 0
  local ip
  while read -r _ ip _; do
    node_alive_sentinel "$ip" || continue
    { scli "$ip" sentinel replicas "$SENTINEL_MASTER" 2>/dev/null || true; } | tr -d '\r' | awk -v me="$NODE_IP" '
      prev == "ip" { cur = $0 } prev == "flags" { flags = $0 }
      prev == "master-link-status" && cur == me && flags !~ /down|disconnected/ && $0 == "ok" { found = 1 }
      { prev = $0 } END { exit !found }' || return 1
  done <<<"$CLUSTER_PLAN"
}

node_alive_sentinel() { [ "$({ scli "$1" ping 2>/dev/null || true; } | tr -d '\r')" = PONG ]; }

# topology_converge: Redis up (a replica in sync with its primary), this node's Sentinel running, agreeing
# with the others and able to reach a quorum, every Sentinel listing this node as a linked replica; stale
# Sentinel state cleaned up.
topology_converge() {
  wait_local_ready
  systemctl start "$UNITS_SENTINEL"
  wait_replica_synced
  local deadline=$((SECONDS + PEER_WAIT_SECONDS))
  until sentinel_agrees && sentinels_know_me; do
    [ "$SECONDS" -ge "$deadline" ] &&
      fail_with "this node's Sentinel names '$(sentinel_primary "$NODE_IP")', the others '$(peers_primary)', quorum: $(scli "$NODE_IP" sentinel ckquorum "$SENTINEL_MASTER" 2>&1 | tr -d '\r' | head -c 200) after ${PEER_WAIT_SECONDS}s"
    sleep 0.5
  done
  forget_stale_sentinel_state
  remember_primary
  # shellcheck disable=SC2034  # node.sh's converge publishes it
  if [ "$(my_role)" = master ]; then CONVERGED="sentinel: the primary"; else
    CONVERGED="sentinel: replica of $(sentinel_primary "$NODE_IP" | tr ' ' ':'), in sync"
  fi
}

# topology_ready: a roll may restart this node (every Sentinel agrees, this node in sync).
topology_ready() {
  sentinel_agrees && sentinels_know_me && { [ "$(my_role)" = master ] ||
    rcli "$NODE_IP" "$REDIS_PORT" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up'; }
}

topology_tick() { remember_primary; }

# topology_handoff: before Redis stops on purpose, a primary pauses writes until an in-sync replica has
# every one of them, then asks its Sentinel to fail over, and waits until it is a replica itself: a
# planned stop costs no detection timeout and loses no acknowledged write.
topology_handoff() {
  # A failed result (systemd sets SERVICE_RESULT for ExecStop and ExecStopPost; "success" while a stop it
  # asked for goes on): the main process died, so straight to the crash path without asking the dead
  # server first (each process spawned costs the write gap tens of milliseconds).
  if [ "${SERVICE_RESULT:-success}" != success ] || ! node_alive "$NODE_IP" "$REDIS_PORT"; then
    crash_takeover
    return 0
  fi
  if [ "$(my_role)" != master ]; then
    publish_status stopping "Redis stopping (a replica: nothing to hand over)"
    return 0
  fi
  local started=$SECONDS paused_at info offset replicas ip port deadline primary=""
  info=$(rcli "$NODE_IP" "$REDIS_PORT" info replication | tr -d '\r')
  # "ip port" of each online replica (INFO: slave0:ip=10.0.1.12,port=6379,state=online,offset=...,lag=0).
  replicas=$(awk -F'[:=,]' '/^slave[0-9]+:/ && /state=online/ { print $3, $5 }' <<<"$info")
  if [ -z "$replicas" ]; then
    log "warning: handoff: no replica online; clients wait for the Sentinels' failover"
    publish_status stopping "Redis stopping without a handoff"
    return 0
  fi
  # Writes wait (clients block, they are not refused) while the replicas catch up and Sentinel switches.
  rcli "$NODE_IP" "$REDIS_PORT" client pause 15000 write >/dev/null
  paused_at=$EPOCHREALTIME
  offset=$(rcli "$NODE_IP" "$REDIS_PORT" info replication | tr -d '\r' | awk -F: '$1 == "master_repl_offset" { print $2 }')
  # Asked on the replicas themselves: a replica acknowledges its offset to the primary once a second (and
  # a paused primary asks for no acknowledgement), so the primary's INFO would cost up to a second here.
  deadline=$((SECONDS + 5))
  while read -r ip port; do
    until [ "$(replica_offset "$ip" "$port")" -ge "$offset" ] 2>/dev/null; do
      [ "$SECONDS" -ge "$deadline" ] && break
      sleep 0.05
    done
  done <<<"$replicas"
  log "handoff: replicas have offset $offset after $(elapsed_ms "$paused_at") ms of paused writes; asking the Sentinels to fail over"
  # This node's Sentinel first (it stops after Redis: the unit's Before=), another one if it cannot.
  local ip
  while read -r _ ip _; do
    if scli "$ip" sentinel failover "$SENTINEL_MASTER" 2>/dev/null | tr -d '\r' | grep -q '^OK'; then
      log "handoff: the Sentinel on $ip fails over"
      break
    fi
  done < <(awk -v me="$NODE_IP" '$2 == me' <<<"$CLUSTER_PLAN"; awk -v me="$NODE_IP" '$2 != me' <<<"$CLUSTER_PLAN")
  # Sentinel names the promoted replica at once, but tells the old primary to follow it only seconds
  # later: this node follows it itself, so the paused writes meet a replica (READONLY: clients go to the
  # new primary) and never an old primary.
  deadline=$((SECONDS + 15))
  until primary=$(peers_primary) && [ -n "$primary" ] && [ "$primary" != "$NODE_IP $REDIS_PORT" ]; do
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.1
  done
  if [ -n "$primary" ] && [ "$primary" != "$NODE_IP $REDIS_PORT" ]; then
    # shellcheck disable=SC2086  # "ip port"
    rcli "$NODE_IP" "$REDIS_PORT" replicaof $primary >/dev/null
  fi
  rcli "$NODE_IP" "$REDIS_PORT" client unpause >/dev/null 2>&1 || true
  if [ "$(my_role)" = slave ]; then
    log "handoff: ${primary/ /:} took over in $((SECONDS - started))s (writes paused $(elapsed_ms "$paused_at") ms)"
    publish_status stopping "Redis stopping after handing over to ${primary/ /:}"
  else
    log "warning: handoff: the Sentinels did not fail over within 15s; clients wait for their failover"
    publish_status stopping "Redis stopping without a handoff"
  fi
}

# crash_takeover: Redis exited on its own on a live instance (lib-live.sh says when). If the Sentinels still
# name this node the primary, its own Sentinel (still running here) fails over at once (SENTINEL FAILOVER:
# no down-after wait, no vote), so the Sentinels name a replica within a second instead of after
# down-after-milliseconds plus the quorum and the leader election.
crash_takeover() {
  [ -n "${SERVICE_RESULT:-}" ] && [ "$SERVICE_RESULT" != success ] || return 0
  local started=$EPOCHREALTIME
  [ "$(sentinel_primary "$NODE_IP")" = "$NODE_IP $REDIS_PORT" ] || return 0
  if RCLI_TIMEOUT=2 scli "$NODE_IP" sentinel failover "$SENTINEL_MASTER" 2>/dev/null | tr -d '\r' | grep -q '^OK'; then
    log "crash: Redis exited (${EXIT_CODE:-no exit} ${EXIT_STATUS:-}) as the primary; the Sentinel here fails over ($(elapsed_ms "$started") ms)"
    publish_status stopping "Redis exited (${EXIT_CODE:-no exit} ${EXIT_STATUS:-}); the Sentinels fail over to a replica"
  else
    log "warning: crash: Redis exited as the primary and the Sentinel here refused to fail over; the Sentinels fail over after down-after-milliseconds"
  fi
}
