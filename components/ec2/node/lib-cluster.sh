# shellcheck shell=bash
# lib-cluster.sh: form or join the Redis Cluster planned at deploy time. Functions only.
# Shipped inside every node's EC2 user-data (after the rendered variables) and used as-is by the
# local mode. The caller sets:
#   NODE_NAME NODE_INDEX NODE_IP REDIS_PORT CLUSTER_PLAN ADMIN_USER ADMIN_PASS_FILE
#   TLS (yes|no) TLS_CA TLS_CERT TLS_KEY PEER_WAIT_SECONDS
# CLUSTER_PLAN has one line per node: "name ip port role shard slot_start slot_end", masters first.
#
# Rules (from the failures others hit automating Redis Cluster):
# - only node 0 creates, only when every planned master answers and none belongs to a cluster;
# - a half-created cluster is reported, never "fixed" by re-creating; no CLUSTER RESET, no FLUSHALL;
# - a node with an empty data volume joins the existing cluster by itself, as replica of whoever
#   now serves its planned shard, and makes every node forget the stale id that had its address;
# - every wait has a deadline and says what it is waiting for.
# shellcheck disable=SC2154  # variables come from the caller

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${NODE_NAME:-node}" "$*"; }
die() { log "FATAL: $*"; exit 1; }

# rcli HOST PORT ARGS...: redis-cli as the admin user, TLS when enabled, bounded by a timeout.
rcli() {
  local host=$1 port=$2
  shift 2
  local extra=()
  if [ "${TLS:-no}" = yes ]; then extra=(--tls --cacert "$TLS_CA" --cert "$TLS_CERT" --key "$TLS_KEY"); fi
  REDISCLI_AUTH=$(<"$ADMIN_PASS_FILE") timeout "${RCLI_TIMEOUT:-5}" \
    redis-cli -h "$host" -p "$port" --user "$ADMIN_USER" "${extra[@]}" "$@"
}

# cluster_info HOST PORT: CLUSTER INFO without its CRs, empty when the node does not answer.
# Never fails: under `set -e` a peer that is still booting must not end the caller.
cluster_info() { { rcli "$1" "$2" cluster info 2>/dev/null || true; } | tr -d '\r'; }

# cluster_field HOST PORT FIELD: one field of CLUSTER INFO, empty when the node does not answer.
cluster_field() { cluster_info "$1" "$2" | awk -F: -v k="$3" '$1 == k { print $2 }'; }

node_alive() { [ "$(rcli "$1" "$2" ping 2>/dev/null | tr -d '\r')" = PONG ]; }

# A node belongs to a cluster when it knows other nodes or has slots. A new stack restored from a backup
# (RESTORE_FROM) is the exception: its masters load their shard alone and claim the slots their keys are in
# (Redis does at start-up), yet belong to no cluster until node 0 creates it.
# One CLUSTER INFO: every waiting node asks this of itself every round.
node_in_cluster() {
  local i
  i=$(cluster_info "$1" "$2")
  [[ $i =~ cluster_known_nodes:([2-9]|[1-9][0-9]) ]] && return 0
  [ -z "${RESTORE_FROM:-}" ] && [[ $i =~ cluster_slots_assigned:[1-9] ]]
}

# plan_peers: the plan without this node.
plan_peers() { awk -v me="$NODE_NAME" '$1 != me' <<<"$CLUSTER_PLAN"; }
plan_masters() { awk '$4 == "master"' <<<"$CLUSTER_PLAN"; }
plan_self() { awk -v me="$NODE_NAME" '$1 == me' <<<"$CLUSTER_PLAN"; }

# wait_local_ready: the local node answers PING (it may be loading a large AOF first).
wait_local_ready() {
  local deadline=$((SECONDS + ${LOCAL_READY_SECONDS:-600})) reply
  while :; do
    reply=$(rcli "$NODE_IP" "$REDIS_PORT" ping 2>&1 | tr -d '\r') || true
    [ "$reply" = PONG ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && die "local redis at $NODE_IP:$REDIS_PORT does not answer (last reply: ${reply:-none}); see the redis log"
    sleep 0.5
  done
}

# find_member [K]: "ip port" of a peer that is in a healthy cluster, if any. With K, asks only the plan's
# first peer (node 0, which creates the cluster) and peer number K: every waiting node asks every round,
# and a scan of the whole plan cost the cluster N x (N - 1) TLS handshakes a round (12 shards: 552, on a
# loopback machine most of a formation's 114 s). Rotating K still finds a cluster whose node 0 is gone.
find_member() {
  local name ip port _rest i n=-1
  while read -r name ip port _rest; do
    n=$((n + 1))
    [ -n "$name" ] || continue
    [ -z "${1:-}" ] || [ "$n" = 0 ] || [ "$n" = "$1" ] || continue
    i=$(cluster_info "$ip" "$port")
    # Healthy and complete: every slot assigned (a cluster being created reports ok before it is whole).
    if [[ $i == *cluster_state:ok* && $i == *cluster_slots_assigned:16384* ]] && node_in_cluster "$ip" "$port"; then
      echo "$ip $port"
      return 0
    fi
  done < <(plan_peers)
  return 1
}

# masters_ready_to_create: every planned master answers and none belongs to a cluster yet.
# Prints what it waits for; exits 2 when some master is already in an unhealthy cluster.
masters_ready_to_create() {
  local name ip port _rest waiting=() busy=()
  while read -r name ip port _rest; do
    if ! node_alive "$ip" "$port"; then
      waiting+=("$name ($ip:$port)")
    elif node_in_cluster "$ip" "$port"; then
      busy+=("$name ($ip:$port)")
    fi
  done < <(plan_masters)
  if [ "${#busy[@]}" -gt 0 ]; then
    echo "already in a cluster that is not healthy: ${busy[*]}"
    return 2
  fi
  if [ "${#waiting[@]}" -gt 0 ]; then
    echo "waiting for ${waiting[*]}"
    return 1
  fi
  return 0
}

# create_cluster: masters only, in plan order, so redis-cli assigns the planned slot ranges;
# replicas attach themselves to their planned master (redis-cli's own replica placement ignores AZs).
create_cluster() {
  local addrs=() name ip port _rest
  while read -r name ip port _rest; do addrs+=("$ip:$port"); done < <(plan_masters)
  log "creating the cluster from ${#addrs[@]} masters: ${addrs[*]}"
  if [ -n "${RESTORE_FROM:-}" ]; then
    create_restored_cluster
  else
    RCLI_TIMEOUT=120 rcli "$NODE_IP" "$REDIS_PORT" --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes
  fi
  verify_slot_plan
  # Redis saves slot assignments without an fsync: make each master's nodes.conf durable now.
  while read -r name ip port _rest; do
    rcli "$ip" "$port" cluster saveconfig >/dev/null || log "warning: CLUSTER SAVECONFIG failed on $name"
  done < <(plan_masters)
}

# missing_slot_ranges HOST PORT START END: "a b" lines of the slots in START..END the node does not own yet.
missing_slot_ranges() {
  { rcli "$1" "$2" cluster nodes 2>/dev/null || true; } | tr -d '\r' | awk -v lo="$3" -v hi="$4" '
    $3 ~ /myself/ {
      for (i = 9; i <= NF; i++) {
        if ($i ~ /^\[/) continue
        n = split($i, r, "-")
        for (s = r[1]; s <= (n > 1 ? r[2] : r[1]); s++) own[s] = 1
      }
    }
    END {
      a = -1
      for (s = lo; s <= hi + 1; s++) {
        if (s <= hi && !(s in own)) { if (a < 0) a = s; continue }
        if (a >= 0) { print a, s - 1; a = -1 }
      }
    }'
}

# canon_slots RANGES: slot ranges ("a-b" or "a", separated by commas or spaces; CLUSTER NODES' [..] markers
# ignored) merged and sorted as CLUSTER NODES prints a master's, comma-joined: two layouts compare as text.
canon_slots() {
  awk -F'[ ,]+' '
    { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+(-[0-9]+)?$/) { n = split($i, r, "-"); for (s = r[1] + 0; s <= (n > 1 ? r[2] : r[1]) + 0; s++) own[s] = 1 } }
    END {
      a = -1
      for (s = 0; s <= 16384; s++) {
        if (s < 16384 && (s in own)) { if (a < 0) a = s; continue }
        if (a >= 0) { out = out (out == "" ? "" : ",") (a == s - 1 ? a : a "-" (s - 1)); a = -1 }
      }
      print out
    }' <<<"$1"
}

# creation_slots SHARD START END: the slots SHARD's master serves once the cluster is created: those of the
# backup a restored stack loaded (its layout, resharded or not: lib-backup.sh restored_layout), else the
# planned START-END.
creation_slots() {
  if [ -n "${RESTORE_FROM:-}" ] && [ -f "${RESTORE_MANIFEST_FILE:-}" ]; then
    canon_slots "$(restored_layout | awk -v s="$1" '$1 == s { print $2 }')"
  else
    echo "$2-$3"
  fi
}

# create_restored_cluster: `redis-cli --cluster create` refuses masters that hold keys, so a restored stack
# is created by hand, as redis-cli would: a distinct config epoch per master, the backup's slots each does
# not own yet (it claimed those its keys are in when it loaded them), then every master meets node 0.
create_restored_cluster() {
  local name ip port shard start end ranges masters deadline
  masters=$(plan_masters | wc -l)
  log "the restored cluster serves the backup's slot layout: $(restored_layout | tr '\n' ' ')"
  while read -r name ip port _ shard start end; do
    rcli "$ip" "$port" cluster set-config-epoch "$((shard + 1))" >/dev/null 2>&1 || true
    # Every missing range in one command: the slots without keys lie scattered between those with keys.
    ranges=$(creation_slots "$shard" "$start" "$end" | tr ',' '\n' | while IFS=- read -r lo hi; do
      missing_slot_ranges "$ip" "$port" "$lo" "${hi:-$lo}"
    done | tr '\n' ' ')
    if [ -n "${ranges// /}" ]; then
      # shellcheck disable=SC2086  # "a b a b ...", one word each
      rcli "$ip" "$port" cluster addslotsrange $ranges >/dev/null || die "CLUSTER ADDSLOTSRANGE failed on $name"
    fi
  done < <(plan_masters)
  while read -r name ip port _; do
    [ "$ip:$port" = "$NODE_IP:$REDIS_PORT" ] && continue
    rcli "$ip" "$port" cluster meet "$NODE_IP" "$REDIS_PORT" >/dev/null || die "CLUSTER MEET from $name failed"
  done < <(plan_masters)
  # Whole: every master known and every slot served (cluster_state alone says ok while slots are missing,
  # as cluster-require-full-coverage is off). At least the masters: a replica that booted first joins as
  # soon as the cluster exists, and may be known before this looks.
  deadline=$((SECONDS + 120))
  until [ "$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_slots_assigned)" = 16384 ] &&
    [ "$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_known_nodes)" -ge "$masters" ] 2>/dev/null &&
    [ "$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_state)" = ok ]; do
    [ "$SECONDS" -ge "$deadline" ] && die "the restored cluster is not whole 120s after its masters met"
    sleep 0.5
  done
}

# verify_slot_plan: each planned master serves exactly its slots at creation (creation_slots).
verify_slot_plan() {
  local nodes name ip port shard start end got want
  nodes=$(rcli "$NODE_IP" "$REDIS_PORT" cluster nodes | tr -d '\r') || die "the local node does not answer CLUSTER NODES"
  while read -r name ip port _ shard start end; do
    got=$(canon_slots "$(awk -v a="$ip:$port" 'index($2, a "@") == 1 { for (i = 9; i <= NF; i++) print $i }' <<<"$nodes")")
    want=$(creation_slots "$shard" "$start" "$end")
    [ "$got" = "$want" ] || die "$name ($ip:$port) serves slots '${got}', planned $want (shard $shard)"
  done < <(plan_masters)
  log "slot plan verified"
}

# slot_owner NODES_TEXT SLOT: id of the master serving SLOT (single slots and ranges; skips [..] markers).
slot_owner() {
  awk -v s="$2" '
    $3 ~ /master/ && $3 !~ /fail/ {
      for (i = 9; i <= NF; i++) {
        if ($i ~ /^\[/) continue
        n = split($i, r, "-"); lo = r[1] + 0; hi = (n == 2 ? r[2] : r[1]) + 0
        if (s >= lo && s <= hi) { print $1; exit }
      }
    }' <<<"$1"
}

# shard_owner NODES_TEXT: id of the master now serving this node's planned shard, found through the
# shard's other planned members (a healthy master among them, or the master a healthy one replicates), so
# it holds after failovers and resharding. A new shard's master has no slots yet and still counts.
shard_owner() {
  local nodes=$1 shard ip port line id
  shard=$(plan_self | awk '{ print $5 }')
  while read -r _ ip port _; do
    [ "$ip:$port" = "$NODE_IP:$REDIS_PORT" ] && continue
    line=$(awk -v a="$ip:$port" 'index($2, a "@") == 1 && $3 !~ /fail|noaddr|handshake/' <<<"$nodes")
    case $(awk '{ print $3 }' <<<"$line") in
      *master*) id=$(awk '{ print $1 }' <<<"$line") ;;
      *slave*) id=$(awk '{ print $4 }' <<<"$line") ;;
      *) continue ;;
    esac
    if awk -v i="$id" '$1 == i && $3 ~ /master/ && $3 !~ /fail/ { found = 1 } END { exit !found }' <<<"$nodes"; then
      echo "$id"
      return 0
    fi
  done < <(awk -v s="$shard" '$5 == s' <<<"$CLUSTER_PLAN")
  return 0
}

# meet_cluster MEMBER_IP MEMBER_PORT NODES_TEXT MYID: CLUSTER MEET through a member, forgetting the ids of
# earlier instances at this address; returns once the member lists this node (handshake done).
meet_cluster() {
  local mip=$1 mport=$2 nodes=$3 myid=$4 stale deadline
  stale=$(stale_ids "$nodes" "$myid")
  rcli "$NODE_IP" "$REDIS_PORT" cluster meet "$mip" "$mport" >/dev/null
  if [ -n "$stale" ]; then forget_everywhere "$stale"; fi
  deadline=$((SECONDS + 60))
  until rcli "$mip" "$mport" cluster nodes 2>/dev/null | tr -d '\r' | grep -q "^$myid [^ ]* [^ ]*master[^ ]* -"; do
    [ "$SECONDS" -ge "$deadline" ] && die "the handshake with $mip:$mport did not complete within 60s"
    sleep 0.2
  done
}

# join_cluster MEMBER_IP MEMBER_PORT: this empty node joins as replica of its planned shard's master.
join_cluster() {
  local mip=$1 mport=$2 myid nodes owner deadline start role lost_deadline stale
  myid=$(rcli "$NODE_IP" "$REDIS_PORT" cluster myid | tr -d '\r') || die "the local node does not answer CLUSTER MYID"
  start=$(plan_self | awk '{ print $6 }')
  role=$(plan_self | awk '{ print $4 }')
  # Read the cluster before meeting it: any entry at this address now is an earlier instance.
  # The owner may still be failing over (its old master just died): give the election time. A replica of
  # a new shard waits for its master to boot and join.
  lost_deadline=$((SECONDS + 60))
  deadline=$((SECONDS + ${PEER_WAIT_SECONDS:-900}))
  while :; do
    nodes=$(rcli "$mip" "$mport" cluster nodes | tr -d '\r') || nodes=""
    owner=$(shard_owner "$nodes")
    [ -n "$owner" ] && break
    if [ -n "$(slot_owner "$nodes" "$start")" ]; then
      # No member of this shard is in the cluster, and other shards serve its planned slots: a new shard.
      if [ "$role" = master ]; then
        log "joining the existing cluster through $mip:$mport as $myid: an empty master of new shard $(plan_self | awk '{ print $5 }')"
        meet_cluster "$mip" "$mport" "$nodes" "$myid"
        log "joined: empty master; the cluster moves slots to it once its replicas are in (node.sh reshard)"
        return 0
      fi
      [ "$SECONDS" -ge "$deadline" ] && die "the master of this node's new shard did not join within ${PEER_WAIT_SECONDS:-900}s"
    elif [ "$SECONDS" -ge "$lost_deadline" ]; then
      die "no live master serves this node's shard (slot $start) after 60s: the shard has no copy left; restore it from a backup (README: runbook)"
    fi
    sleep 1
  done
  if [ "$owner" = "$myid" ]; then
    # This node already serves its shard: node 0 added it (and its slots) after this node's own check said
    # otherwise (a race, or that check timing out on a busy host). Replicating itself would fail.
    log "part of the cluster (added by the creating node; its shard's replica already follows it)"
    return 0
  fi

  log "joining the existing cluster through $mip:$mport as $myid (shard $(plan_self | awk '{ print $5 }'), now served by $owner)"
  meet_cluster "$mip" "$mport" "$nodes" "$myid"
  deadline=$((SECONDS + 60))
  until rcli "$NODE_IP" "$REDIS_PORT" cluster nodes 2>/dev/null | grep -q "^$owner "; do
    [ "$SECONDS" -ge "$deadline" ] && die "this node does not know $owner 60s after meeting $mip:$mport"
    sleep 0.2
  done
  replicate_owner "$owner" "$nodes" "$myid"
  log "joined: replica of $owner, in sync"
}

# replicate_owner OWNER NODES_TEXT MYID: replicate OWNER, wait for the initial sync and for OWNER to list
# this node as its replica, forget earlier instances of this node, and make the role durable.
replicate_owner() {
  local owner=$1 nodes=$2 myid=$3 deadline stale
  # The gossip may take a moment to tell us the owner is a master.
  deadline=$((SECONDS + 30))
  until rcli "$NODE_IP" "$REDIS_PORT" cluster replicate "$owner" 2>&1 | tr -d '\r' | grep -q '^OK'; do
    [ "$SECONDS" -ge "$deadline" ] && die "CLUSTER REPLICATE $owner kept failing for 30s"
    sleep 0.2
  done
  log "replicating $owner; waiting for the initial sync"
  deadline=$((SECONDS + ${SYNC_WAIT_SECONDS:-600}))
  until rcli "$NODE_IP" "$REDIS_PORT" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up'; do
    [ "$SECONDS" -ge "$deadline" ] && die "replica link to $owner not up within ${SYNC_WAIT_SECONDS:-600}s"
    heal_replication_user
    sleep 0.2
  done
  # Done when the master itself lists this node as its replica (gossip has caught up).
  local oaddr
  oaddr=$(awk -v o="$owner" '$1 == o { print $2 }' <<<"$nodes")
  oaddr=${oaddr%%@*}
  deadline=$((SECONDS + 30))
  until rcli "${oaddr%:*}" "${oaddr##*:}" cluster nodes 2>/dev/null | tr -d '\r' | grep -q "^$myid [^ ]* [^ ]*slave[^ ]* $owner "; do
    [ "$SECONDS" -ge "$deadline" ] && die "$owner does not list this node as its replica after 30s"
    sleep 0.2
  done
  # Peers that saw this address answer with a new id dropped the old one's address (noaddr): forget those too.
  local views="" host port
  while read -r _ host port _; do
    # A peer that is still booting has no view yet: skip it (no `set -e` exit on its silence).
    views+=$({ rcli "$host" "$port" cluster nodes 2>/dev/null || true; } | tr -d '\r')$'\n'
  done <<<"$CLUSTER_PLAN"
  stale=$(stale_ids "$views" "$myid" | sort -u)
  if [ -n "$stale" ]; then forget_everywhere "$stale"; fi
  save_cluster_config
}

# save_cluster_config: CLUSTER SAVECONFIG writes nodes.conf and fsyncs it. Redis saves a CLUSTER REPLICATE
# without an fsync: a power loss within the kernel's writeback delay (30 s) would bring the node back as
# an empty master.
save_cluster_config() {
  rcli "$NODE_IP" "$REDIS_PORT" cluster saveconfig >/dev/null || log "warning: CLUSTER SAVECONFIG failed"
}

# ensure_planned_role: a planned replica that boots as a master without slots (its nodes.conf lost the
# CLUSTER REPLICATE, e.g. to a power loss) replicates its shard's master again; without this it would stay
# an empty master and its shard would have no replica. A promoted replica serves slots and keeps its role.
ensure_planned_role() {
  local nodes myid owner deadline
  [ "$(plan_self | awk '{ print $4 }')" = replica ] || return 0
  nodes=$(rcli "$NODE_IP" "$REDIS_PORT" cluster nodes | tr -d '\r') || return 0
  awk '$3 ~ /myself/ && $3 ~ /master/ && NF < 9 { found = 1 } END { exit !found }' <<<"$nodes" || return 0
  myid=$(awk '$3 ~ /myself/ { print $1 }' <<<"$nodes")
  deadline=$((SECONDS + 60))
  until owner=$(shard_owner "$nodes") && [ -n "$owner" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "warning: planned replica but an empty master, and no live master of its shard after 60s to replicate"
      return 0
    fi
    sleep 1
    nodes=$(rcli "$NODE_IP" "$REDIS_PORT" cluster nodes | tr -d '\r') || nodes=""
  done
  log "planned replica but booted as an empty master (nodes.conf lost its role): replicating $owner again"
  replicate_owner "$owner" "$nodes" "$myid"
  log "replica of $owner again, in sync"
}

# stale_ids NODES_TEXT MYID: failed entries without slots that are earlier instances of this node:
# at this node's address, or already stripped of their address (noaddr) because a peer reached this
# address and met a new id. A healthy node, or one that still serves slots, is never listed.
stale_ids() {
  awk -v a="$NODE_IP:$REDIS_PORT" -v me="$2" '
    $1 != me && $3 ~ /fail/ && $3 !~ /handshake/ && NF < 9 && (index($2, a "@") == 1 || $3 ~ /noaddr/) { print $1 }' <<<"$1"
}

# forget_everywhere "STALE_IDS": CLUSTER FORGET on every planned node, this one included, so that no
# node gossips the stale id back before all have dropped it (each FORGET bans the id for 60 s).
forget_everywhere() {
  local id host port
  for id in $1; do
    log "forgetting stale node $id (an earlier instance of this node)"
    while read -r _ host port _; do
      rcli "$host" "$port" cluster forget "$id" >/dev/null 2>&1 || true
    done <<<"$CLUSTER_PLAN"
  done
}

# cluster_converge: the whole decision, safe to run on every boot.
cluster_converge() {
  wait_local_ready
  if node_in_cluster "$NODE_IP" "$REDIS_PORT"; then
    log "already a cluster member (added by the creating node, or known from nodes.conf on the data volume)"
    ensure_planned_role
    return 0
  fi
  local deadline=$((SECONDS + ${PEER_WAIT_SECONDS:-900})) next_report=0 member status rc round=0 peers
  peers=$(plan_peers | wc -l)
  while :; do
    if node_in_cluster "$NODE_IP" "$REDIS_PORT"; then
      log "part of the cluster (added by the creating node)"
      return 0
    fi
    # (peers + 1: a round that names no peer asks node 0 alone, and a plan of one node has no peer.)
    if member=$(find_member $((round % (peers + 1)))); then
      # shellcheck disable=SC2086  # "ip port"
      join_cluster $member
      return 0
    fi
    status=""
    if [ "$NODE_INDEX" = 0 ]; then
      rc=0
      status=$(masters_ready_to_create) || rc=$?
      if [ "$rc" = 0 ]; then
        create_cluster
        continue
      fi
    else
      status="waiting for node 0 to create the cluster"
    fi
    [ "$SECONDS" -ge "$deadline" ] && die "no cluster after ${PEER_WAIT_SECONDS:-900}s: $status"
    if [ "$SECONDS" -ge "$next_report" ]; then
      log "$status"
      next_report=$((SECONDS + 10))
    fi
    round=$((round + 1))
    sleep 0.5
  done
}
