# shellcheck shell=bash
# lib-backup.sh: backups of the stack's data to its S3 bucket (node.sh backup). Functions only.
# Sourced by node.sh in both topologies; uses node.sh's rcli, log, die, publish_status, write_file, CONF_DIR,
# BOOT_LOG, LIB_DIR and the node.env facts:
#   BACKUP_BUCKET BACKUP_PREFIX BACKUP_INTERVAL_HOURS DATA_DIR CLUSTER_PLAN TOPOLOGY SSM_STATUS_PREFIX
#
# One backup = one RDB per shard plus a manifest, below s3://BUCKET/PREFIX/backups/ID/:
#   shard-I.rdb     the shard's data as Redis saves it (loads into a stock redis-server of the same major)
#   manifest.json   time, topology, Redis and RDB versions, per shard its slot ranges, source, size, SHA-256
# The manifest is written last: a backup without one is incomplete and a restore refuses it.
#
# Rules:
# - the master does not fork for a backup when a replica can: each shard is saved by its first replica that
#   is in sync (`redis-cli --rdb`, which makes that replica fork and stream an RDB), the master only when no
#   replica is in sync;
# - one node takes a scheduled backup: the first node of the plan that answers (a node that is down or cut off
#   does not answer, so the next one takes over); `node.sh backup now` runs on the node it is called on;
# - every file is checked (redis-check-rdb) and hashed before it leaves the node, and a failure names the
#   shard and the reason in the status parameter <status prefix>/backup.
# shellcheck disable=SC2154  # variables come from node.env and node.sh

readonly BACKUP_WORK_DIR=$DATA_DIR/backup
# On the data volume: the backup unit may write there (its sandbox makes /run read-only).
readonly BACKUP_LOCK=$DATA_DIR/.backup.lock
# One shard's RDB transfer may take long on a large dataset; the backup unit's own timeout bounds the run.
readonly BACKUP_TRANSFER_SECONDS=${BACKUP_TRANSFER_SECONDS:-3600}

backup_uri() { printf 's3://%s/%s/backups/%s' "$BACKUP_BUCKET" "$BACKUP_PREFIX" "$1"; }

# backup_coordinator: the name of the first node of the plan whose Redis answers.
backup_coordinator() {
  local name ip port
  while read -r name ip port _; do
    if [ "$({ rcli "$ip" "$port" ping 2>/dev/null || true; } | tr -d '\r')" = PONG ]; then
      echo "$name"
      return 0
    fi
  done <<<"$CLUSTER_PLAN"
}

# replica_in_sync HOST PORT: the Redis on HOST is a replica whose link to its master is up and not syncing.
replica_in_sync() {
  local info
  info=$({ rcli "$1" "$2" info replication 2>/dev/null || true; } | tr -d '\r')
  grep -qx 'role:slave' <<<"$info" && grep -qx 'master_link_status:up' <<<"$info" &&
    grep -qx 'master_sync_in_progress:0' <<<"$info"
}

# backup_shards_cluster: one line per shard, "index slots master_ip master_port replica_ip:port...", in slot
# order, from this node's CLUSTER NODES (masters not flagged failed, and their replicas not flagged failed).
backup_shards_cluster() {
  cluster_nodes | awk '
    { split($2, a, "@"); addr[$1] = a[1]; sub(":", " ", addr[$1]) }
    $3 ~ /master/ && $3 !~ /fail/ {
      s = ""
      for (i = 9; i <= NF; i++) if ($i !~ /^\[/) s = s (s == "" ? "" : ",") $i
      if (s != "") { slots[$1] = s; split(s, r, "[-,]"); first[$1] = r[1] + 0 }
    }
    $3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected" { reps[$4] = reps[$4] " " a[1] }
    END {
      for (id in slots) print first[id], slots[id], addr[id], reps[id]
    }' | sort -n | awk '{ $1 = NR - 1; print }'
}

# backup_shards_sentinel: the one shard, "0 - primary_ip primary_port replica_ip:port...", from the primary
# this node's Sentinel names (the primary's INFO lists its online replicas).
backup_shards_sentinel() {
  local primary ip port replicas
  primary=$(sentinel_primary "$NODE_IP")
  [ -n "$primary" ] || primary=$(peers_primary)
  [ -n "$primary" ] || return 0
  read -r ip port <<<"$primary"
  replicas=$({ rcli "$ip" "$port" info replication 2>/dev/null || true; } | tr -d '\r' |
    sed -n 's/^slave[0-9]*:ip=\([^,]*\),port=\([0-9]*\),state=online.*/\1:\2/p' | paste -sd' ')
  echo "0 - $ip $port $replicas"
}

backup_shards() {
  if [ "${TOPOLOGY:-cluster}" = sentinel ]; then backup_shards_sentinel; else backup_shards_cluster; fi
}

# backup_source MASTER_IP MASTER_PORT REPLICAS...: "ip port role" of whom to save the shard from.
backup_source() {
  local mip=$1 mport=$2 r
  shift 2
  for r in $(printf '%s\n' "$@" | sort); do
    if replica_in_sync "${r%:*}" "${r##*:}"; then
      echo "${r%:*} ${r##*:} replica"
      return 0
    fi
  done
  echo "$mip $mport master"
}

# backup_status STATE ID DETAIL: the stack's last backup in SSM (<status prefix>/backup), best effort.
backup_status() {
  local value
  value=$(printf '{"state":"%s","id":"%s","node":"%s","time":"%s","detail":"%s"}' "$1" "$2" "$NODE_NAME" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(printf '%s' "$3" | tr -d '\\"' | head -c 900)")
  aws ssm put-parameter --region "$AWS_REGION" --name "$SSM_STATUS_PREFIX/backup" --type String --overwrite \
    --value "$value" >/dev/null 2>&1 || log "warning: could not publish the backup status to SSM"
}

# backup_metric SHARD: one BackupCompleted datum for the shard (the stale-backup alarm counts them).
backup_metric() {
  aws cloudwatch put-metric-data --region "$AWS_REGION" --namespace "$METRICS_NAMESPACE" \
    --metric-name BackupCompleted --unit Count --value 1 \
    --dimensions "Stack=$METRICS_STACK,Shard=$1" >/dev/null 2>&1 ||
    log "warning: could not publish BackupCompleted for shard $1"
}

# backup_shard ID INDEX SLOTS MASTER_IP MASTER_PORT REPLICAS...: saves, checks and uploads one shard; prints
# its manifest entry (JSON) on success, the reason on failure (its log lines go to stderr).
backup_shard() {
  local id=$1 index=$2 slots=$3 src ip port role file sha size version rdb out
  shift 3
  src=$(backup_source "$@")
  read -r ip port role <<<"$src"
  file=$BACKUP_WORK_DIR/$id/shard-$index.rdb
  log "backup $id: shard $index (slots $slots) from the $role at $ip:$port" >&2
  if ! out=$(RCLI_TIMEOUT=$BACKUP_TRANSFER_SECONDS rcli "$ip" "$port" --rdb "$file" 2>&1); then
    # The reason as redis-cli gives it, and the room left: the volume holds one shard's RDB at a time.
    echo "shard $index: redis-cli --rdb from $ip:$port failed ($(tail -n 1 <<<"$out" | tr -d '\r' | head -c 200);" \
      "$(df -h --output=avail "$BACKUP_WORK_DIR" | tail -n 1 | tr -d ' ') left on $DATA_DIR)"
    rm -f "$file"
    return 1
  fi
  redis-check-rdb "$file" >/dev/null 2>&1 || { echo "shard $index: redis-check-rdb refuses the saved file"; rm -f "$file"; return 1; }
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  rdb=$(head -c 9 "$file" | sed -n 's/^REDIS0*\([0-9][0-9]*\)$/\1/p')
  version=$({ rcli "$ip" "$port" info server 2>/dev/null || true; } | tr -d '\r' | sed -n 's/^redis_version://p')
  aws s3 cp --region "$AWS_REGION" --only-show-errors "$file" "$(backup_uri "$id")/shard-$index.rdb" >&2 ||
    { echo "shard $index: upload to $(backup_uri "$id")/shard-$index.rdb failed (see $BOOT_LOG)"; return 1; }
  # Uploaded: the next shard's RDB gets its room (a full volume failed the third shard of 500 MB each).
  rm -f "$file"
  printf '{"index":%s,"slots":"%s","file":"shard-%s.rdb","size":%s,"sha256":"%s","rdbVersion":%s,"redisVersion":"%s","source":{"address":"%s:%s","role":"%s"}}' \
    "$index" "$slots" "$index" "$size" "$sha" "${rdb:-0}" "$version" "$ip" "$port" "$role"
}

# backup_run MODE: MODE is "scheduled" (the timer: only the coordinator proceeds) or "now".
backup_run() {
  local mode=${1:-now} id started coordinator shards line entries=() entry failures=() n=0
  [ -n "${BACKUP_BUCKET:-}" ] || die "backups are not configured on this node (BACKUP_BUCKET is empty in node.env)"
  if [ "$mode" = scheduled ]; then
    coordinator=$(backup_coordinator)
    if [ "$coordinator" != "$NODE_NAME" ]; then
      log "backup: ${coordinator:-no node} takes the scheduled backup, not this node"
      return 0
    fi
  fi
  exec 9>"$BACKUP_LOCK"
  flock -n 9 || die "a backup is already running on this node"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  id=$(date -u +%Y%m%dT%H%M%SZ)
  shards=$(backup_shards)
  [ -n "$shards" ] || {
    backup_status failed "$id" "no shard could be found (does this node see the cluster?)"
    die "backup $id: no shard could be found"
  }
  rm -rf "$BACKUP_WORK_DIR"
  mkdir -p "$BACKUP_WORK_DIR/$id"
  chmod 0700 "$BACKUP_WORK_DIR"
  while read -r line; do
    n=$((n + 1))
    # shellcheck disable=SC2086  # the line is "index slots ip port replicas...", split on purpose
    if entry=$(backup_shard "$id" $line); then
      entries+=("$entry")
    else
      failures+=("$entry")
    fi
  done <<<"$shards"
  if [ "${#failures[@]}" -gt 0 ]; then
    rm -rf "$BACKUP_WORK_DIR"
    backup_status failed "$id" "${failures[*]}"
    die "backup $id failed: ${failures[*]}"
  fi
  printf '{"format":1,"id":"%s","started":"%s","finished":"%s","topology":"%s","stack":"%s","shards":[%s]}\n' \
    "$id" "$started" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${TOPOLOGY:-cluster}" "$BACKUP_PREFIX" \
    "$(IFS=,; echo "${entries[*]}")" >"$BACKUP_WORK_DIR/$id/manifest.json"
  aws s3 cp --region "$AWS_REGION" --only-show-errors "$BACKUP_WORK_DIR/$id/manifest.json" \
    "$(backup_uri "$id")/manifest.json" || {
    backup_status failed "$id" "upload of the manifest failed"
    die "backup $id: upload of the manifest failed"
  }
  aws s3 cp --region "$AWS_REGION" --only-show-errors "$BACKUP_WORK_DIR/$id/manifest.json" \
    "$(backup_uri latest.json)" || log "warning: backup $id: latest.json not updated"
  rm -rf "$BACKUP_WORK_DIR"
  for ((i = 0; i < n; i++)); do backup_metric "$i"; done
  backup_status ok "$id" "$n shard(s) to $(backup_uri "$id")/"
  log "backup $id: $n shard(s) saved to $(backup_uri "$id")/"
  echo "$(backup_uri "$id")/manifest.json"
}

# --------------------------------------------------------------------------------------------- restore
#
# A stack created with restoreFrom (RESTORE_FROM in node.env: a manifest's S3 URI) loads its data from that
# backup: each planned master, on a boot that finds its data volume empty and no cluster (or Sentinel primary)
# already running, downloads its shard's RDB, checks it against the manifest, and places it before Redis
# starts, both as dump.rdb and as the base of an append-only file (whichever persistence is on loads it).
# Anything wrong (no manifest, another shard count or slot layout, a checksum that does not match, an RDB
# newer than this Redis) stops the node before Redis starts: the stack never comes up empty and healthy.

readonly RESTORE_DONE_FILE=$DATA_DIR/restored-from
# The manifest restored from, kept: node 0 creates the cluster with its slot layout (restored_layout).
readonly RESTORE_MANIFEST_FILE=$DATA_DIR/restored-manifest.json

# data_volume_empty: no Redis data on the volume (a new volume, or one never used by Redis).
data_volume_empty() {
  [ ! -e "$DATA_DIR/nodes.conf" ] && [ ! -e "$DATA_DIR/dump.rdb" ] &&
    [ -z "$(ls -A "$DATA_DIR/appendonlydir" 2>/dev/null)" ] && [ ! -e "$RESTORE_DONE_FILE" ]
}

# someone_serves: another node of the plan already serves data, so this node is a replacement that must
# join it, not a new stack's master. A cluster node serves once it has met others (a new stack's nodes each
# know only themselves until the cluster is created); in the Sentinel topology a peer serves when it runs
# as a primary (a new stack's other nodes start as replicas of the planned primary).
someone_serves() {
  local name ip port known
  while read -r name ip port _; do
    [ "$name" = "$NODE_NAME" ] && continue
    if [ "${TOPOLOGY:-cluster}" = sentinel ]; then
      [ "$({ rcli "$ip" "$port" role 2>/dev/null || true; } | head -n 1 | tr -d '\r')" = master ] && return 0
    else
      known=$(cluster_field "$ip" "$port" cluster_known_nodes)
      [ "${known:-0}" -gt 1 ] && return 0
    fi
  done <<<"$CLUSTER_PLAN"
  return 1
}

# manifest_check MANIFEST SHARD SHARDS TOPOLOGY: prints "file size sha256 rdbVersion" of SHARD's entry, or why
# the manifest does not fit this stack (and exits 1). A cluster backup's slots are each shard's as CLUSTER
# NODES listed them (a resharded cluster's are not the even split): every slot 0-16383 in exactly one shard.
manifest_check() {
  python3 - "$@" <<'PY'
import json, re, sys
path, shard, shards, topology = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    m = json.load(open(path))
except ValueError as e:
    sys.exit(f"the manifest is not JSON ({e})")
if m.get("format") != 1:
    sys.exit(f"manifest format {m.get('format')!r} is not one this node reads (1)")
entries = m.get("shards") or []
if m.get("topology") != topology:
    sys.exit(f"the backup is of a {m.get('topology')} stack and this one is a {topology} stack")
if len(entries) != shards:
    sys.exit(f"the backup has {len(entries)} shard(s) and this stack plans {shards}: create it with shards={len(entries)}")
if topology == "cluster":
    owner = {}
    for x in entries:
        slots = x.get("slots")
        tokens = [re.fullmatch(r"(\d+)(?:-(\d+))?", t) for t in slots.split(",")] if isinstance(slots, str) else []
        ranges = [(int(t[1]), int(t[2] or t[1])) for t in tokens if t]
        if not ranges or len(ranges) != len(tokens) or any(hi < lo or hi >= 16384 for lo, hi in ranges):
            sys.exit(f"shard {x.get('index')}'s slots {json.dumps(slots)} are not ranges of 0-16383 such as 0-5460 or 0-100,250")
        for lo, hi in ranges:
            for s in range(lo, hi + 1):
                if s in owner:
                    sys.exit(f"slot {s} is in shard {owner[s]} and in shard {x.get('index')}")
                owner[s] = x.get("index")
    if len(owner) < 16384:
        first = next(s for s in range(16384) if s not in owner)
        sys.exit(f"{16384 - len(owner)} slot(s) are in no shard (the first: {first})")
e = next((x for x in entries if x.get("index") == shard), None)
if e is None:
    sys.exit(f"the manifest has no shard {shard}")
print(e["file"], e["size"], e["sha256"], e.get("rdbVersion", 0))
PY
}

# restored_layout: "index slots" per shard of the backup this stack was restored from (the manifest the
# restoring master kept on its volume), for the cluster's creation to give each master its backup's slots.
restored_layout() {
  python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["shards"]: print(e["index"], e["slots"])' "$RESTORE_MANIFEST_FILE"
}

# restore_place FILE: the RDB as dump.rdb and as the append-only file's base, owned by Redis.
restore_place() {
  local aof_dir=$DATA_DIR/appendonlydir
  install -d -o redis -g redis -m 0750 "$aof_dir"
  install -o redis -g redis -m 0640 "$1" "$DATA_DIR/dump.rdb"
  install -o redis -g redis -m 0640 "$1" "$aof_dir/appendonly.aof.1.base.rdb"
  printf 'file appendonly.aof.1.base.rdb seq 1 type b\n' | write_file "$aof_dir/appendonly.aof.manifest" 0640 redis:redis >/dev/null
  sync -f "$DATA_DIR"
}

# restore_prepare: called by prepare before Redis starts; does nothing unless this boot must restore.
restore_prepare() {
  [ -n "${RESTORE_FROM:-}" ] || return 0
  [ "$NODE_ROLE" = master ] || return 0
  data_volume_empty || return 0
  if someone_serves; then
    log "restore: another node already serves, so this one joins it (restoreFrom applies to a new stack only)"
    return 0
  fi
  local work=$DATA_DIR/restore base shards entry file size sha rdb have got
  base=${RESTORE_FROM%/manifest.json}
  [ "$base" != "$RESTORE_FROM" ] || fail_with "restoreFrom must name a backup's manifest.json (s3://BUCKET/PREFIX/backups/ID/manifest.json), got $RESTORE_FROM"
  rm -rf "$work"
  mkdir -p "$work"
  chmod 0700 "$work"
  log "restore: reading $RESTORE_FROM"
  aws s3 cp --region "$AWS_REGION" --only-show-errors "$RESTORE_FROM" "$work/manifest.json" ||
    fail_with "restoreFrom: cannot read $RESTORE_FROM (does it exist, and may this stack's node role read it?)"
  shards=$(awk '$4 == "master"' <<<"$CLUSTER_PLAN" | wc -l)
  entry=$(manifest_check "$work/manifest.json" "$NODE_SHARD" "$shards" "${TOPOLOGY:-cluster}" 2>&1) ||
    fail_with "restoreFrom: $RESTORE_FROM does not fit this stack: $entry"
  read -r file size sha rdb <<<"$entry"
  have=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  log "restore: shard $NODE_SHARD from $base/$file ($size bytes, RDB version $rdb)"
  aws s3 cp --region "$AWS_REGION" --only-show-errors "$base/$file" "$work/$file" ||
    fail_with "restoreFrom: cannot download $base/$file"
  got=$(sha256sum "$work/$file" | cut -d' ' -f1)
  [ "$got" = "$sha" ] ||
    fail_with "restoreFrom: $base/$file does not match its manifest (SHA-256 $got, expected $sha): a damaged or replaced file; restore from another backup"
  redis-check-rdb "$work/$file" >"$work/check.log" 2>&1 ||
    fail_with "restoreFrom: redis-check-rdb (Redis $have) refuses $base/$file: $(grep -m1 -i 'error\|can.t' "$work/check.log" | head -c 300)"
  restore_place "$work/$file"
  install -m 0644 "$work/manifest.json" "$RESTORE_MANIFEST_FILE"
  printf '%s\n' "$RESTORE_FROM" | write_file "$RESTORE_DONE_FILE" 0644 root:root >/dev/null
  rm -rf "$work"
  log "restore: shard $NODE_SHARD placed; Redis loads it when it starts"
}

# last_backup_before_drain IDS (node.sh reshard; shipped here, since the user-data has no room for it): before
# masters leave the plan, one backup of the whole cluster as it still is (its manifest lists the leaving shards
# with their slots: a stack of that many shards restores it), once per set of leaving masters. A failed one holds the drain (the deploy's wait reports this node failed, with
# the reason) and is tried again after BACKUP_RETRY_SECONDS. A node without a backup bucket drains without.
readonly DRAIN_BACKUP_FILE=$CONF_DIR/drain-backup
readonly BACKUP_RETRY_SECONDS=300
last_backup_before_drain() {
  [ -n "${BACKUP_BUCKET:-}" ] || return 0
  local key state at uri reason
  key=$(sort <<<"$1" | paste -sd' ')
  state=$(cat "$DRAIN_BACKUP_FILE" 2>/dev/null || true)
  [ "$state" = "ok $key" ] && return 0
  at=$(awk '$1 == "failed" { print $2 }' <<<"$state")
  [[ $at =~ ^[0-9]+$ ]] && [ "$(($(date +%s) - at))" -lt "$BACKUP_RETRY_SECONDS" ] && return 1
  log "a last backup before draining [$key]"
  publish_status ok "a last backup before draining shards"
  # The same command as an operator's (its own log lines, lock and sandbox-free root); its last line is the URI.
  if uri=$(nice -n 10 "$LIB_DIR/node.sh" backup now | tail -n 1) && [ -n "$uri" ]; then
    printf 'ok %s\n' "$key" | write_file "$DRAIN_BACKUP_FILE" 0644 root:root >/dev/null
    log "the last backup before draining [$key] is $uri"
    return 0
  fi
  printf 'failed %s %s\n' "$(date +%s)" "$key" | write_file "$DRAIN_BACKUP_FILE" 0644 root:root >/dev/null
  reason=$(grep -o 'FATAL: .*' "$BOOT_LOG" 2>/dev/null | tail -n 1 | cut -c8-)
  publish_status failed "the last backup before draining shards failed (${reason:-see $BOOT_LOG}); the drain waits and tries again every $BACKUP_RETRY_SECONDS s: fix what the backup status names (docs/runbook.md, Backups)"
  return 1
}
