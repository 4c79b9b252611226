#!/bin/bash
# node.sh: one Redis Cluster node's life on its EC2 instance (docs/architecture.md, "On the instance").
# Installed by the user-data as /usr/local/lib/redis-stack/node.sh; the node's own facts are in
# /etc/redis-stack/node.env (no secret: passwords and keys are read from SSM with the instance role).
#
#   node.sh first-boot  run once per instance by cloud-init (the user-data): packages, units, start
#   node.sh prepare     every boot, before Redis (redis-node-prepare.service): host tuning, the data
#                       volume, secrets and TLS material refreshed from SSM, the Prometheus exporter's
#                       config, the SSM agent present
#   node.sh converge    every boot, after Redis (redis-node-cluster.service): form or join the cluster,
#                       then publish this node's status to SSM
#   node.sh settings    every 20 s on a running node (redis-node-settings.timer): apply the stack's desired
#                       settings live, grow the filesystem, forget departed nodes, reshard, roll
#   node.sh handoff     before Redis stops (ExecStop): a master hands its slots to an in-sync replica
#   node.sh watch       redis-node-watch.service (Redis Cluster): a replica takes over as soon as the cluster
#                       flags its master failed (lib-live.sh failover_watch)
#   node.sh backup [now|scheduled]
#                       save every shard to the stack's S3 bucket (lib-backup.sh); "scheduled" is the
#                       timer's (redis-node-backup.timer): only the first node that answers takes it
#
# Every step is idempotent. Logs go to /var/log/redis-stack.log and to the console (EC2 console output).
set -euo pipefail
umask 027
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

readonly LIB_DIR=/usr/local/lib/redis-stack
readonly CONF_DIR=/etc/redis-stack
readonly BOOT_LOG=/var/log/redis-stack.log
readonly UNIT=redis-node
# What the node has applied of the stack's desired settings (components/ec2/desired.ts).
readonly DESIRED_FILE=$CONF_DIR/desired
readonly SETTINGS_CONF=$CONF_DIR/settings.conf
readonly GENERATION_FILE=$CONF_DIR/generation
# The app user's ACL rules Redis runs with (refresh_secrets at boot, apply_app_acl live).
readonly APP_ACL_APPLIED=$CONF_DIR/app-acl
# Debian's Prometheus exporter for Redis, and the directory of its CA copy and password (write_exporter_config).
readonly EXPORTER=prometheus-redis-exporter
readonly EXPORTER_DIR=/etc/redis-stack-exporter

# shellcheck source=/dev/null
. "$CONF_DIR/node.env"
# awscli's IMDS patience (node.env) applies to every aws call this script makes.
export AWS_METADATA_SERVICE_TIMEOUT AWS_METADATA_SERVICE_NUM_ATTEMPTS
# shellcheck source=components/ec2/node/lib-cluster.sh
. "$LIB_DIR/lib-cluster.sh"
# shellcheck disable=SC2154  # variables come from node.env

# retry SECONDS CMD...: retries CMD every 3 s until it succeeds or SECONDS pass.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 3
  done
}

# --------------------------------------------------------------------------------------------- status

# The reason a step failed, published with the status (set by fail_with before it exits).
FAILURE=""
fail_with() {
  FAILURE=$*
  die "$*"
}

# publish_status STATE [DETAIL]: this node's state in SSM, where `pulumi up` and operators read it
# without logging in. Best effort: a node that cannot reach SSM says so in its log and console.
publish_status() {
  local state=$1 detail=${2:-} instance value
  command -v aws >/dev/null || {
    log "status $state not published (awscli missing): $detail"
    return 0
  }
  instance=$(imds instance-id 2>/dev/null || echo unknown)
  # What the deploy waits for: this instance and type, the settings version applied, the slots it serves.
  value=$(printf '{"state":"%s","node":"%s","instance":"%s","instanceType":"%s","settings":"%s","generation":%s,"role":"%s","slots":%s,"time":"%s","detail":"%s"}' \
    "$state" "$NODE_NAME" "$instance" "$(imds instance-type 2>/dev/null || echo unknown)" \
    "$(applied_version)" "$(applied_generation)" "$(my_role)" "$(my_slot_count)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(printf '%s' "$detail" | tr -d '\\"' | head -c 700)")
  if aws ssm put-parameter --region "$AWS_REGION" --name "$SSM_STATUS" --type String --overwrite \
    --value "$value" >/dev/null 2>&1; then
    log "status $state published to $SSM_STATUS"
  else
    log "warning: could not publish status $state to $SSM_STATUS"
  fi
}

# imds PATH: a value from the instance metadata service (IMDSv2: a session token first).
imds() {
  local token
  token=$(curl -fsS -X PUT --max-time 5 -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    http://169.254.169.254/latest/api/token) || return 1
  curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# on_exit: a failed run publishes why (the last FATAL line), so nobody has to log in to find out. Then
# the log's tee gets its end of file and is waited for (at most 5 s): a unit's run ends with every line
# written, and leaves no process behind for systemd to stop (a leftover tee put the settings unit in
# stop-sigterm until TimeoutStopSec on the lab's hosts, holding a live change for 90 s).
on_exit() {
  local rc=$?
  # A failed backup is the stack's backup status, not this node's health (pulumi up would wait on it).
  if [ "$rc" -ne 0 ] && [ "$1" != backup ]; then
    [ -n "$FAILURE" ] || FAILURE=$(grep -o 'FATAL: .*' "$BOOT_LOG" 2>/dev/null | tail -n 1 | cut -c8-)
    publish_status failed "${FAILURE:-$1 exited with $rc; see $BOOT_LOG}"
  fi
  if [ -n "${LOG_PID:-}" ]; then
    exec >&- 2>&-
    for _ in {1..50}; do
      kill -0 "$LOG_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
}

# ------------------------------------------------------------------------------------------- packages

# apt_update: `apt-get update` exits 0 when it cannot fetch (Debian 12 prints "W: Failed to fetch"),
# so ask it to fail on any error and check that the packages are really there afterwards.
apt_update() {
  apt-get update -q --error-on=any && apt-cache policy redis-server | grep -q 'Candidate: [0-9]'
}

install_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v aws >/dev/null || missing+=(awscli)
  command -v python3 >/dev/null || missing+=(python3)
  command -v "$EXPORTER" >/dev/null || missing+=("$EXPORTER")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    retry "$APT_WAIT_SECONDS" apt_update ||
      fail_with "apt could not fetch the package lists for ${APT_WAIT_SECONDS}s (no route to the mirror yet? check the NAT gateway and the route table)"
    retry "$APT_WAIT_SECONDS" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=60 "${missing[@]}" ||
      fail_with "apt-get install ${missing[*]} kept failing for ${APT_WAIT_SECONDS}s (see $BOOT_LOG)"
  fi
  # Debian's own unit runs a standalone server from /etc/redis/redis.conf; this node runs redis-node.service.
  systemctl disable --now redis-server.service >/dev/null 2>&1 || true
}

# Session Manager is the only way onto a node (no SSH, no public IP), and Debian's AMIs do not ship its
# agent: install AWS's package from the region's own bucket, first thing, so that even a node whose
# Redis set-up fails can be reached. Best effort: every boot checks again (prepare).
install_ssm_agent() {
  if dpkg-query -W -f='${Status}' amazon-ssm-agent 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  local arch deb url
  arch=$(dpkg --print-architecture)
  url="https://s3.${AWS_REGION}.amazonaws.com/amazon-ssm-${AWS_REGION}/latest/debian_${arch}/amazon-ssm-agent.deb"
  deb=$(mktemp --suffix=.deb)
  if curl -fsS --connect-timeout 5 --max-time 120 --retry 2 -o "$deb" "$url" 2>&1 && dpkg -i "$deb" >/dev/null 2>&1; then
    systemctl enable --now amazon-ssm-agent.service >/dev/null 2>&1 || log "warning: amazon-ssm-agent installed but did not start"
    log "installed amazon-ssm-agent (Session Manager)"
  else
    log "warning: could not install amazon-ssm-agent from $url; Session Manager cannot reach this node until a later boot installs it"
  fi
  rm -f "$deb"
}

# ---------------------------------------------------------------------------------------- every boot

# Host settings Redis asks for: fork without overcommit failures, no THP latency spikes, a deep accept queue.
tune_host() {
  cat >/etc/sysctl.d/90-redis.conf <<'CONF'
vm.overcommit_memory = 1
net.core.somaxconn = 1024
CONF
  sysctl -q -p /etc/sysctl.d/90-redis.conf >/dev/null 2>&1 || log "warning: could not apply /etc/sysctl.d/90-redis.conf"
  local thp=/sys/kernel/mm/transparent_hugepage/enabled
  if [ -w "$thp" ] && ! grep -q '\[never\]' "$thp"; then echo never >"$thp" || log "warning: could not disable transparent huge pages"; fi
}

# The node's own EBS volume: Nitro exposes it as an NVMe device whose serial is the volume id.
find_data_device() {
  local serial=${DATA_VOLUME_ID//-/} dev
  for dev in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}_1"; do
    if [ -b "$dev" ]; then
      readlink -f "$dev"
      return 0
    fi
  done
  return 1
}

mount_data_volume() {
  local dev="" deadline=$((SECONDS + 600)) uuid src=""
  until dev=$(find_data_device); do
    [ "$SECONDS" -ge "$deadline" ] && fail_with "data volume $DATA_VOLUME_ID is not attached after 600s; refusing to start Redis without it"
    log "waiting for data volume $DATA_VOLUME_ID to be attached"
    sleep 2
  done
  if ! blkid -p "$dev" >/dev/null 2>&1; then
    log "data volume $DATA_VOLUME_ID ($dev) is blank: formatting (a new node)"
    mkfs.ext4 -q -L redis-data "$dev"
  fi
  uuid=$(blkid -s UUID -o value "$dev")
  [ -n "$uuid" ] || fail_with "no filesystem UUID on $dev"
  mkdir -p "$DATA_DIR"
  if ! grep -q "^UUID=$uuid " /etc/fstab; then
    sed -i "\\# $DATA_DIR #d" /etc/fstab
    echo "UUID=$uuid $DATA_DIR ext4 defaults,noatime,nofail 0 2" >>/etc/fstab
  fi
  src=$(findmnt -n -o SOURCE --mountpoint "$DATA_DIR" 2>/dev/null || true)
  if [ -z "$src" ]; then
    mount -t ext4 -o noatime "$dev" "$DATA_DIR"
    src=$(findmnt -n -o SOURCE --mountpoint "$DATA_DIR" 2>/dev/null || true)
  fi
  # Whatever is mounted there must be this node's own volume, or Redis would serve the wrong (or no) data.
  [ "$(readlink -f "${src:-none}")" = "$dev" ] ||
    fail_with "$DATA_DIR holds '${src:-nothing}', not data volume $DATA_VOLUME_ID ($dev); refusing to start Redis"
  chown redis:redis "$DATA_DIR"
  chmod 0750 "$DATA_DIR"
}

ssm_get() {
  aws ssm get-parameter --region "$AWS_REGION" --name "$1" --with-decryption --query Parameter.Value --output text
}

# ssm_get_batch NAME...: those parameters' values, decrypted, into SSM_VALUES[NAME], with one GetParameters
# call per ten names: an aws process costs about a second of CPU. A name already read by this run of node.sh
# (one boot step or one timer tick) is not read again: prepare reads all it needs at once (boot_parameters).
# Values pass from awscli to bash through pipes only (never a file). Fails when a call fails or a name
# does not exist (yet); SSM_MISSING then names what is missing.
declare -A SSM_VALUES=()
SSM_MISSING=""
# NUL-separated name, value pairs from GetParameters' JSON (a value without its trailing newlines, as the
# text output of `aws ssm get-parameter` under $(...) gives it).
readonly SSM_PAIRS_PY='import json, sys
for p in json.load(sys.stdin).get("Parameters", []):
    sys.stdout.buffer.write(p["Name"].encode() + b"\0" + p["Value"].rstrip("\n").encode() + b"\0")'
ssm_get_batch() {
  local rest=() name value
  for name in "$@"; do [ -n "${SSM_VALUES[$name]+set}" ] || rest+=("$name"); done
  while [ "${#rest[@]}" -gt 0 ]; do
    while IFS= read -r -d '' name && IFS= read -r -d '' value; do
      SSM_VALUES[$name]=$value
    done < <(aws ssm get-parameters --region "$AWS_REGION" --names "${rest[@]:0:10}" --with-decryption \
      --output json | python3 -c "$SSM_PAIRS_PY")
    rest=("${rest[@]:10}")
  done
  SSM_MISSING=""
  for name in "$@"; do
    [ -n "${SSM_VALUES[$name]+set}" ] || SSM_MISSING+="${SSM_MISSING:+ }$name"
  done
  [ -z "$SSM_MISSING" ]
}

# write_file PATH MODE OWNER: stdin to PATH atomically, with mode and owner; prints "changed" if it did.
write_file() {
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
    echo changed
  fi
}

# ssm_value_to_file PARAMETER PATH MODE: a parameter's value (read by ssm_get_batch) into a root:redis file.
ssm_value_to_file() {
  printf '%s\n' "${SSM_VALUES[$1]}" | write_file "$2" "$3" root:redis >/dev/null
}

# install_shipped_scripts: the scripts that do not fit in EC2's 16 KB of user-data come from SSM
# (components/ec2/node/userData.ts ssmShippedScripts): SHIPPED_SCRIPTS lists "path mode sha256 parameter..." per
# script, the parameters' values concatenated being base64(gzip(script)). A file that already has its
# SHA-256 is left alone, so a reboot reads nothing; anything else is fetched, checked and installed.
script_current() { [ -f "$1" ] && [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$2" ]; }
install_shipped_scripts() {
  local path mode sum params p packed got tmp
  while read -r path mode sum params; do
    [ -n "$path" ] || continue
    script_current "$path" "$sum" && continue
    # shellcheck disable=SC2086  # the parameter names, one word each
    retry "$SECRETS_WAIT_SECONDS" ssm_get_batch $params ||
      fail_with "cannot read $SSM_MISSING from SSM (instance role, region $AWS_REGION)"
    packed=""
    for p in $params; do packed+=${SSM_VALUES[$p]}; done
    tmp=$(mktemp "$path.XXXXXX")
    if ! printf '%s' "$packed" | base64 -d 2>/dev/null | gunzip >"$tmp" 2>/dev/null; then
      rm -f "$tmp"
      fail_with "$path: its SSM parameters ($params) are not gzip+base64; run pulumi up again to rewrite them"
    fi
    got=$(sha256sum <"$tmp" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
      rm -f "$tmp"
      fail_with "$path from SSM has SHA-256 $got, this node's user-data expects $sum: the stack's scripts changed since this instance was launched; run pulumi up again, or replace the node"
    fi
    write_file "$path" "$mode" root:root <"$tmp" >/dev/null
    rm -f "$tmp"
    log "installed $path from SSM ($sum)"
  done <<<"$SHIPPED_SCRIPTS"
}

# boot_parameters: what prepare reads from SSM (the shipped scripts not yet installed, the desired settings,
# the secrets and TLS material), so that one ssm_get_batch reads it all: six hosts booting on the lab's two
# cores took 36 s for the six aws calls this was. The Sentinel topology's secrets come after lib-sentinel.sh.
boot_parameters() {
  local path _mode sum params
  while read -r path _mode sum params; do
    [ -z "$path" ] || script_current "$path" "$sum" || echo "$params"
  done <<<"$SHIPPED_SCRIPTS"
  echo "$SSM_SETTINGS $SSM_APP_PASSWORD $SSM_ADMIN_PASSWORD $SSM_REPLICATION_PASSWORD $SSM_MONITOR_PASSWORD"
  [ "$TLS" != yes ] || echo "$SSM_TLS_CA $SSM_TLS_CERT $SSM_TLS_KEY"
}

# acl_user NAME PASSWORD RULES: the user's line of the ACL file, with the password's SHA-256 only.
acl_user() { printf 'user %s on #%s %s\n' "$1" "$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)" "$3"; }

# Passwords and TLS material come from SSM Parameter Store at every boot, so renewed certificates and
# rotated passwords reach a node by restarting it. /etc/redis-stack belongs to no package, so no
# upgrade resets its modes (Debian's redis-tools resets /etc/redis).
refresh_secrets() {
  local app_pass admin_pass repl_pass monitor_pass names name app_rules problem
  install -d -m 0750 -o root -g redis "$CONF_DIR"
  names=("$SSM_APP_PASSWORD" "$SSM_ADMIN_PASSWORD" "$SSM_REPLICATION_PASSWORD" "$SSM_MONITOR_PASSWORD")
  while read -r name; do [ -z "$name" ] || names+=("$name"); done < <(topology_secret_names)
  if [ "$TLS" = yes ]; then names+=("$SSM_TLS_CA" "$SSM_TLS_CERT" "$SSM_TLS_KEY"); fi
  retry "$SECRETS_WAIT_SECONDS" ssm_get_batch "${names[@]}" ||
    fail_with "cannot read ${SSM_MISSING:-${names[*]}} from SSM (instance role, region $AWS_REGION)"
  if [ "$TLS" = yes ]; then
    problem=$(ca_pin_problem "${SSM_VALUES[$SSM_TLS_CA]}")
    [ -z "$problem" ] || fail_with "$problem"
  fi
  app_pass=${SSM_VALUES[$SSM_APP_PASSWORD]}
  admin_pass=${SSM_VALUES[$SSM_ADMIN_PASSWORD]}
  repl_pass=${SSM_VALUES[$SSM_REPLICATION_PASSWORD]}
  monitor_pass=${SSM_VALUES[$SSM_MONITOR_PASSWORD]}
  printf '%s' "$admin_pass" | write_file "$ADMIN_PASS_FILE" 0600 root:root >/dev/null
  topology_secrets
  app_rules=$(app_acl_rules)
  {
    echo "user default off"
    acl_user "$APP_USER" "$app_pass" "$app_rules"
    acl_user "$ADMIN_USER" "$admin_pass" "$ADMIN_ACL_RULES"
    acl_user "$REPLICATION_USER" "$repl_pass" "$REPLICATION_ACL_RULES"
    acl_user "$MONITOR_USER" "$monitor_pass" "$MONITOR_ACL_RULES"
    topology_acl_users
  } | write_file "$CONF_DIR/users.acl" 0640 root:redis >/dev/null
  printf '%s\n' "$app_rules" | write_file "$APP_ACL_APPLIED" 0640 root:root >/dev/null
  printf 'masterauth "%s"\n' "$repl_pass" | write_file "$CONF_DIR/secrets.conf" 0640 root:redis >/dev/null
  if [ "$TLS" = yes ]; then
    install -d -m 0750 -o root -g redis "$CONF_DIR/tls"
    ssm_value_to_file "$SSM_TLS_CA" "$TLS_CA" 0644
    ssm_value_to_file "$SSM_TLS_CERT" "$TLS_CERT" 0644
    ssm_value_to_file "$SSM_TLS_KEY" "$TLS_KEY" 0640
  fi
  write_exporter_config "$monitor_pass"
  log "secrets and TLS material refreshed from SSM"
}

# write_exporter_config PASSWORD: Debian's exporter unit reads its flags (ARGS) from its default file and
# runs as user prometheus, which cannot enter $CONF_DIR: the CA copy and the monitor password live in a
# directory of its own. It scrapes this node's Redis at its own address (the name its certificate
# carries) as the monitor user, checking the server against the stack's CA; no client certificate (Redis
# asks for none: tls-auth-clients optional), so the node's key stays out of its reach. The password file
# is the exporter's format, a JSON map from the address to the password (the stack's passwords are
# alphanumeric), readable by its user only. `--config-command=INFO` and `--set-client-name=false` keep it
# from sending CONFIG GET and CLIENT SETNAME (redisConf.ts MONITOR_ACL_RULES). It reads its files at
# start only: restarted at every run, it never serves stale ones.
write_exporter_config() {
  local d=$EXPORTER_DIR u=redis a="--config-command=INFO --set-client-name=false"
  install -d -m 0750 -o root -g prometheus "$d"
  if [ "$TLS" = yes ]; then
    u=rediss
    a+=" --tls-ca-cert-file=$d/ca.crt"
    write_file "$d/ca.crt" 0644 root:root <"$TLS_CA" >/dev/null
  fi
  u=$u://$NODE_IP:$REDIS_PORT
  printf '{"%s":"%s"}\n' "$u" "$1" | write_file "$d/pass.json" 0600 prometheus:prometheus >/dev/null
  echo "ARGS=\"--redis.addr=$u --redis.user=$MONITOR_USER --redis.password-file=$d/pass.json $a --web.listen-address=:$EXPORTER_PORT\"" |
    write_file "/etc/default/$EXPORTER" 0644 root:root >/dev/null
  systemctl restart --no-block "$EXPORTER" || log "warning: could not restart $EXPORTER"
}

write_config() {
  install -d -m 0750 -o root -g redis "$CONF_DIR"
  printf '%s\n' "$REDIS_CONF" | write_file "$CONF_DIR/redis-node.conf" 0640 root:redis >/dev/null
  install -d -m 0750 -o redis -g redis /var/log/redis
}

# --------------------------------------------------------------------------------- desired settings

applied_version() { awk '$1 == "version" { print $2; exit }' "$DESIRED_FILE" 2>/dev/null || true; }
applied_generation() { cat "$GENERATION_FILE" 2>/dev/null || echo 0; }
desired_field() { awk -v k="$1" '$1 == k { print $2; exit }' "$DESIRED_FILE"; }
# desired_nodes: "name ip port role shard" of every node in the stack's current plan.
desired_nodes() { awk '$1 == "node" { print $2, $3, $4, $5, $6 }' "$DESIRED_FILE"; }

# my_role / my_slot_count: what this node is right now (empty / 0 when Redis does not answer). A Sentinel
# node serves no slots, and is not asked: CLUSTER NODES fails there, and each failure counts in its error
# statistics (errorstat_ERR) once per status published.
my_role() { { rcli "$NODE_IP" "$REDIS_PORT" role 2>/dev/null || true; } | head -n 1 | tr -d '\r'; }
my_slot_count() {
  if [ "${TOPOLOGY:-cluster}" = sentinel ]; then
    echo 0
    return 0
  fi
  { rcli "$NODE_IP" "$REDIS_PORT" cluster nodes 2>/dev/null || true; } | tr -d '\r' | awk '
    $3 ~ /myself/ {
      for (i = 9; i <= NF; i++) {
        if ($i ~ /^\[/) continue
        n = split($i, r, "-"); c += (n == 2 ? r[2] - r[1] + 1 : 1)
      }
    }
    END { print c + 0 }'
}

# fetch_desired: the stack's desired settings from SSM into $DESIRED_FILE; prints "changed" when they did.
fetch_desired() {
  local value names=("$SSM_SETTINGS")
  # The node's certificate and CA ride along (String parameters: no KMS call), for refresh_tls_live.
  [ "$TLS" != yes ] || names+=("$SSM_TLS_CA" "$SSM_TLS_CERT")
  ssm_get_batch "${names[@]}" || return 1
  value=${SSM_VALUES[$SSM_SETTINGS]}
  grep -q '^version ' <<<"$value" || {
    log "warning: $SSM_SETTINGS has no version line; ignoring it"
    unset "SSM_VALUES[$SSM_SETTINGS]" # read again when retried
    return 1
  }
  printf '%s\n' "$value" | write_file "$DESIRED_FILE" 0640 root:redis
}

# write_settings_conf: the live directives as redis.conf lines (components/ec2/desired.ts renderSettingsConf:
# `save ""` first, since the first save of a config load resets the schedule and later ones append).
write_settings_conf() {
  awk -v live=" $LIVE_DIRECTIVES " '$1 == "set" && index(live, " " $2 " ") {
      k = $2; v = ""
      for (i = 3; i <= NF; i++) v = v (i > 3 ? " " : "") $i
      if (k == "save") { print "save \"\""; if (v != "") print "save " v }
      else print k " " v
    }' "$DESIRED_FILE" | write_file "$SETTINGS_CONF" 0640 root:redis
}

# apply_live: CONFIG SET each desired directive that differs from what Redis runs with (no restart).
apply_live() {
  local key value current
  while read -r key value; do
    current=$({ rcli "$NODE_IP" "$REDIS_PORT" config get "$key" || true; } | tr -d '\r' | sed -n 2p)
    [ "$current" = "$value" ] && continue
    if rcli "$NODE_IP" "$REDIS_PORT" config set "$key" "$value" | tr -d '\r' | grep -q '^OK'; then
      log "live: $key '$current' -> '$value'"
    else
      log "warning: CONFIG SET $key '$value' was refused; it applies at the next restart (settings.conf)"
    fi
  done < <(awk -v live=" $LIVE_DIRECTIVES " '$1 == "set" && index(live, " " $2 " ") { k = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); print k, $0 }' "$DESIRED_FILE")
}

# grow_filesystem: a data volume grown in EBS (dataVolumeGb) grows its ext4 filesystem online.
grow_filesystem() {
  local dev dev_bytes fs_bytes blocks block_size
  dev=$(find_data_device) || return 0
  dev_bytes=$(blockdev --getsize64 "$dev")
  # The product in bash: Debian's awk (mawk) prints one above 2^31 as 3.14573e+09, which stopped every
  # node with a data volume of 2 GiB or more here.
  read -r blocks block_size < <(tune2fs -l "$dev" | awk -F': *' '/^Block count:/ { c = $2 } /^Block size:/ { s = $2 } END { print c, s }')
  fs_bytes=$((blocks * block_size))
  # Grow only for a real difference (ext4 rounds to its block and group sizes).
  if [ "$((dev_bytes - fs_bytes))" -gt $((64 * 1024 * 1024)) ]; then
    # One attempt per device size: a failure is logged once, not at every timer run.
    [ "$(cat "$CONF_DIR/resize-failed" 2>/dev/null)" = "$dev_bytes" ] && return 0
    log "data volume $DATA_VOLUME_ID grew to $((dev_bytes / 1048576)) MiB: growing its filesystem online"
    local out
    if out=$(resize2fs "$dev" 2>&1); then
      log "filesystem on $DATA_VOLUME_ID grown to $(($(blockdev --getsize64 "$dev") / 1048576)) MiB"
    else
      log "warning: resize2fs $dev failed ($({ grep -m 1 '^resize2fs: ' <<<"$out" || tail -n 1 <<<"$out"; } | tr -d '\n')); the filesystem keeps $((fs_bytes / 1048576)) MiB"
      printf '%s\n' "$dev_bytes" >"$CONF_DIR/resize-failed"
    fi
  fi
}

# cluster_nodes: this node's CLUSTER NODES view (empty when Redis does not answer).
cluster_nodes() { { rcli "$NODE_IP" "$REDIS_PORT" cluster nodes 2>/dev/null || true; } | tr -d '\r'; }

# forget_departed: failed entries without slots whose address is not in the plan any more (the nodes of a
# removed shard, earlier instances) are forgotten, so CLUSTER NODES shows only what the stack runs.
forget_departed() {
  local planned id
  planned=$(desired_nodes | awk '{ printf "%s:%s@ ", $2, $3 }')
  for id in $(cluster_nodes | awk -v planned="$planned" '
      $3 ~ /fail/ && $3 !~ /myself/ && NF < 9 {
        a = $2; sub(/@.*/, "@", a)
        if (index(planned, a " ") == 0 || $3 ~ /noaddr/) print $1
      }'); do
    log "forgetting $id: failed, serves no slot, and not in the stack's plan"
    rcli "$NODE_IP" "$REDIS_PORT" cluster forget "$id" >/dev/null 2>&1 || true
  done
}

# reshard: the slots follow the plan. Masters that left the plan drain onto the others; planned masters
# without slots (a new shard) get their share. One coordinator: the healthy planned master with the lowest
# address, and only when every planned node is in the cluster and linked, and every slot is served.
# redis-cli's rebalance refuses to start while any slot is open (an interrupted move).
reshard() {
  local nodes planned leaving empty coordinator missing weights=()
  nodes=$(cluster_nodes)
  [ -n "$nodes" ] || return 0
  planned=$(desired_nodes | awk '{ printf "%s:%s@ ", $2, $3 }')
  # Masters serving slots that are not in the plan; planned masters serving none.
  leaving=$(awk -v p="$planned" '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { a = $2; sub(/@.*/, "@", a); if (index(p, a " ") == 0) print $1 }' <<<"$nodes")
  empty=$(awk -v p="$planned" '$3 ~ /master/ && $3 !~ /fail/ && NF < 9 { a = $2; sub(/@.*/, "@", a); if (index(p, a " ") > 0) print $1 }' <<<"$nodes")
  [ -n "$leaving$empty" ] || return 0
  coordinator=$(awk -v p="$planned" '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { a = $2; sub(/@.*/, "@", a); if (index(p, a " ") > 0) print a }' <<<"$nodes" | sort -V | head -n 1)
  [ "$coordinator" = "$NODE_IP:$REDIS_PORT@" ] || return 0
  missing=$(desired_nodes | while read -r name ip port _; do
    awk -v a="$ip:$port@" 'index($2, a) == 1 && $3 !~ /fail|handshake|noaddr/ && $8 == "connected" { found = 1 } END { exit !found }' <<<"$nodes" || printf '%s ' "$name"
  done)
  if [ -n "$missing" ]; then
    log "reshard waits: not yet in the cluster and linked: $missing"
    return 0
  fi
  [ "$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_slots_assigned)" = 16384 ] || {
    log "reshard waits: not every slot is served"
    return 0
  }
  if [ -n "$leaving" ] && ! last_backup_before_drain "$leaving"; then return 0; fi
  local id
  for id in $leaving; do weights+=("$id=0"); done
  log "resharding: draining [${leaving//$'\n'/ }] and filling [${empty//$'\n'/ }] (redis-cli --cluster rebalance)"
  publish_status ok "resharding"
  if RCLI_TIMEOUT=43200 rcli "$NODE_IP" "$REDIS_PORT" --cluster rebalance "$NODE_IP:$REDIS_PORT" \
    --cluster-use-empty-masters ${weights[@]+--cluster-weight "${weights[@]}"} 2>&1 | tr -d '\r' |
    grep -E 'Moving|Rebalancing|ERR|fix|\*\*\*' | awk 'NR % 50 == 1 || /ERR|fix|\*\*\*|Rebalancing/'; then :; fi
  log "reshard done: this node serves $(my_slot_count) slots; $(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_state)"
}

# statuses NODE...: "name<TAB>status JSON" of those nodes, in one SSM call (GetParameters takes 10 names).
statuses() {
  local names=() name
  for name in "$@"; do names+=("$SSM_STATUS_PREFIX/$name"); done
  while [ "${#names[@]}" -gt 0 ]; do
    aws ssm get-parameters --region "$AWS_REGION" --names "${names[@]:0:10}" \
      --query 'Parameters[].[Name,Value]' --output text 2>/dev/null | sed "s#^$SSM_STATUS_PREFIX/##" || true
    names=("${names[@]:10}")
  done
}
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2"; }

# turn_waits_for GENERATION NODE...: the first of those nodes that has not restarted into GENERATION and
# reported ok yet (empty when none).
turn_waits_for() {
  local want=$1 name line status gen
  shift
  [ "$#" -gt 0 ] || return 0
  local all
  all=$(statuses "$@")
  for name in "$@"; do
    line=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' <<<"$all")
    status=$(json_field state "$line")
    gen=$(json_field generation "$line")
    if [ "$status" != ok ] || [ "${gen:-0}" -lt "$want" ]; then
      echo "$name"
      return 0
    fi
  done
}

# roll: a new generation restarts every node once, one at a time in the stack's roll order (replicas first,
# then masters: components/ec2/desired.ts rollOrder). A node goes when every node before it has restarted into
# the new generation and reports ok (it polls for its turn, up to 30 minutes per timer run); its Redis stop
# hands its slots over first (handoff).
roll() {
  local want have name before=() waiting deadline=$((SECONDS + 1800)) said=""
  want=$(desired_field generation)
  have=$(applied_generation)
  [ "${want:-0}" -gt "$have" ] || return 0
  while read -r name; do
    [ "$name" = "$NODE_NAME" ] && break
    before+=("$name")
  done < <(desired_nodes | awk '$4 == "replica" { print $1 }'; desired_nodes | awk '$4 == "master" { print $1 }')
  while waiting=$(turn_waits_for "$want" ${before[@]+"${before[@]}"}) && [ -n "$waiting" ]; do
    if [ "$waiting" != "$said" ]; then
      log "rolling restart to generation $want: waiting for $waiting (its turn comes first)"
      said=$waiting
    fi
    [ "$SECONDS" -ge "$deadline" ] && return 0
    sleep 3
  done
  until topology_ready; do
    [ "$SECONDS" -ge "$deadline" ] && return 0
    sleep 1
  done
  log "rolling restart to generation $want: upgrading Redis, then restarting (a master hands over first)"
  publish_status starting "rolling restart to generation $want"
  export DEBIAN_FRONTEND=noninteractive
  if apt_update && apt-get install -y -q --only-upgrade -o DPkg::Lock::Timeout=60 redis-server redis-tools >/dev/null; then
    log "packages: $(redis-server --version | awk '{ print $3 }')"
  else
    log "warning: package upgrade failed; restarting with the installed Redis"
  fi
  systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  # Restarting prepare restarts the server after it (Requires=): secrets and TLS material are read again.
  systemctl restart redis-node-prepare.service
  printf '%s\n' "$want" | write_file "$GENERATION_FILE" 0644 root:root >/dev/null
  systemctl restart redis-node-cluster.service
  log "rolling restart to generation $want done"
}

# settings: what a running node does every timer period. Acts only on a node whose cluster step is done.
settings_tick() {
  systemctl is-active -q redis-node-cluster.service || return 0
  local before changed=""
  before=$(applied_version)
  fetch_desired >/dev/null || {
    log "warning: cannot read $SSM_SETTINGS; keeping the applied settings"
    return 0
  }
  write_settings_conf >/dev/null
  if [ "$(applied_version)" != "$before" ]; then
    log "desired settings $(applied_version) (was ${before:-none})"
    changed=yes
  fi
  apply_live
  apply_app_acl
  heal_replication_user
  refresh_tls_live
  grow_filesystem
  topology_tick
  roll
  [ -n "$changed" ] && publish_status ok "settings $(applied_version) applied"
  report_refusals
  # A drained master publishes its empty slot count (the deploy deletes its shard after that).
  if [ "$(my_slot_count)" = 0 ] && ! desired_nodes | awk -v n="$NODE_NAME" '$1 == n { f = 1 } END { exit !f }'; then
    publish_status ok "drained: not in the stack's plan any more"
  fi
}

# topology_handoff: before Redis stops on purpose, a master makes an in-sync replica take over (CLUSTER FAILOVER run
# on the replica: the master pauses writes until the replica has them all, then they switch roles), so a
# planned stop costs no failover timeout and loses no acknowledged write.
topology_handoff() {
  # A failed result (systemd sets SERVICE_RESULT for ExecStop and ExecStopPost; "success" while a stop it
  # asked for goes on): the main process died, so straight to the crash path without asking the dead
  # server first (each process spawned costs the write gap tens of milliseconds).
  if [ "${SERVICE_RESULT:-success}" != success ] || ! node_alive "$NODE_IP" "$REDIS_PORT"; then
    crash_takeover
    return 0
  fi
  local nodes me myid replica ip port deadline started=$SECONDS
  nodes=$(cluster_nodes)
  me=$(awk '$3 ~ /myself/' <<<"$nodes")
  if ! awk '$3 ~ /master/ && NF >= 9 { found = 1 } END { exit !found }' <<<"$me"; then
    publish_status stopping "Redis stopping (no slots to hand over)"
    return 0
  fi
  myid=$(awk '{ print $1 }' <<<"$me")
  while read -r replica; do
    [ -n "$replica" ] || continue
    ip=${replica%:*}
    port=${replica##*:}
    rcli "$ip" "$port" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up' || continue
    log "handoff: asking $replica to take over this master's slots before Redis stops"
    rcli "$ip" "$port" cluster failover 2>/dev/null | tr -d '\r' | grep -q '^OK' || continue
    deadline=$((SECONDS + 15))
    until [ "$(my_role)" = slave ]; do
      [ "$SECONDS" -ge "$deadline" ] && break
      sleep 0.1
    done
    if [ "$(my_role)" = slave ]; then
      log "handoff: $replica took over in $((SECONDS - started))s"
      publish_status stopping "Redis stopping after handing its slots to $replica"
      return 0
    fi
  done < <(awk -v m="$myid" '$4 == m && $3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected" { a = $2; sub(/@.*/, "", a); print a }' <<<"$nodes")
  log "warning: handoff: no in-sync replica took over; clients wait for the automatic failover"
  publish_status stopping "Redis stopping without a handoff"
}

# ------------------------------------------------------------------------- topology steps (Redis Cluster)
# What differs between the topologies, as Redis Cluster does it. lib-sentinel.sh redefines these for the
# Sentinel topology; everything else in this file is shared.

# topology_units: the topology's own units, enabled at first boot (lib-sentinel.sh arrives later, via SSM).
readonly UNITS_SENTINEL=redis-node-sentinel.service
topology_units() { if [ "${TOPOLOGY:-cluster}" = sentinel ]; then echo "$UNITS_SENTINEL"; else echo redis-node-watch.service; fi; }
topology_secret_names() { :; }
topology_secrets() { :; }
topology_acl_users() { :; }
topology_prepare() { :; }
# topology_converge: form or join the cluster; sets CONVERGED, the status detail of a healthy node.
topology_converge() {
  cluster_converge
  wait_cluster_ok
  wait_replica_synced
  CONVERGED="cluster_state:ok"
}
topology_ready() { [ "$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_state)" = ok ]; }
topology_tick() {
  forget_departed
  reshard
}

# ------------------------------------------------------------------------------------------ commands

prepare() {
  log "prepare: $NODE_NAME ($NODE_ROLE of shard $NODE_SHARD, $NODE_IP)"
  tune_host
  mount_data_volume
  # shellcheck disable=SC2046  # parameter names, one word each
  ssm_get_batch $(boot_parameters) || true
  # First: lib-sentinel.sh (SSM) defines which secrets the Sentinel topology reads.
  install_shipped_scripts
  load_shipped_libs
  # The desired settings first: they carry the app user's ACL rules, which refresh_secrets writes.
  retry "$SECRETS_WAIT_SECONDS" fetch_desired >/dev/null || fail_with "cannot read $SSM_SETTINGS from SSM (instance role, region $AWS_REGION)"
  refresh_secrets
  write_settings_conf >/dev/null
  write_config
  restore_prepare
  topology_prepare
  grow_filesystem
  install_ssm_agent
}

# wait_cluster_ok: this node sees every slot served (a node that just joined learns the slot map by gossip).
wait_cluster_ok() {
  local deadline=$((SECONDS + PEER_WAIT_SECONDS)) state=""
  until [ "$state" = ok ]; do
    [ "$SECONDS" -ge "$deadline" ] && fail_with "in the cluster, but cluster_state is '${state:-unknown}' after ${PEER_WAIT_SECONDS}s"
    sleep 0.5
    state=$(cluster_field "$NODE_IP" "$REDIS_PORT" cluster_state)
  done
}

# wait_replica_synced: a replica counts as up once its link to the master is (a roll waits for it).
wait_replica_synced() {
  local deadline=$((SECONDS + ${SYNC_WAIT_SECONDS:-600}))
  [ "$(my_role)" = slave ] || return 0
  until rcli "$NODE_IP" "$REDIS_PORT" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up'; do
    [ "$SECONDS" -ge "$deadline" ] && fail_with "replica link to its master not up after ${SYNC_WAIT_SECONDS:-600}s"
    heal_replication_user
    sleep 0.5
  done
}

converge() {
  # Redis does not start without prepare (Requires=); this unit only Wants it, so it runs anyway and must
  # not bury prepare's reason (a restore refused, a volume not found) under "starting" and a timeout.
  local why
  if systemctl is-failed --quiet redis-node-prepare.service; then
    why=$(grep -o 'FATAL: .*' "$BOOT_LOG" 2>/dev/null | tail -n 1 | cut -c8-)
    fail_with "${why:-redis-node-prepare failed; see $BOOT_LOG}"
  fi
  publish_status starting "joining the ${TOPOLOGY:-cluster}"
  topology_converge
  # A new instance (no generation recorded on its root volume) has today's packages and material: it
  # starts at the desired roll generation.
  if [ ! -f "$GENERATION_FILE" ]; then
    printf '%s\n' "$(desired_field generation)" | write_file "$GENERATION_FILE" 0644 root:root >/dev/null
  fi
  publish_status ok "$CONVERGED"
}

first_boot() {
  log "first boot of $NODE_NAME ($NODE_ROLE of shard $NODE_SHARD, $NODE_IP)"
  install_ssm_agent
  install_packages
  systemctl daemon-reload
  # shellcheck disable=SC2046  # a list of unit names
  systemctl enable redis-node-prepare.service "$UNIT.service" redis-node-cluster.service redis-node-settings.timer redis-node-metrics.timer $(topology_units) >/dev/null 2>&1
  # Metrics from the start: a node that never forms its cluster shows up on the dashboard and alarms.
  systemctl start redis-node-metrics.timer
  # Starting the last unit of the chain starts the others (Requires=) and waits for the cluster.
  systemctl start redis-node-cluster.service ||
    fail_with "redis-node-cluster did not finish: $(journalctl -u redis-node-prepare -u "$UNIT" -u redis-node-cluster -n 5 --no-pager -o cat 2>/dev/null | tr '\n' ' ')"
  # shellcheck disable=SC2046  # a list of unit names
  systemctl start redis-node-settings.timer $(topology_units)
  # Scheduled backups (backupIntervalHours 0: the timer has no trigger, and stays disabled).
  if [ "${BACKUP_INTERVAL_HOURS:-0}" -gt 0 ] && [ -n "${BACKUP_BUCKET:-}" ]; then
    systemctl enable --now redis-node-backup.timer >/dev/null 2>&1 || log "warning: could not enable redis-node-backup.timer"
  fi
  log "first boot of $NODE_NAME done"
}

# check_aof: before redis-server starts (ExecStartPre, as root). A crash or power loss can leave the end of
# the last AOF file unwritten (zeros, or half a command), not just short; Redis accepts a short file
# (aof-load-truncated) but refuses any other damage and would restart forever. Cut the last file back to
# its last whole command, as `redis-check-aof --fix` does, keeping the cut bytes beside it; a node with a
# replica resyncs anyway, and without this a power loss of every node would leave the cluster down.
# Damage anywhere else is not repaired: Redis stays down and the status says why.
check_aof() {
  local dir="$DATA_DIR/appendonlydir" manifest report last okto size
  manifest="$dir/appendonly.aof.manifest"
  [ -f "$manifest" ] || return 0
  if report=$(redis-check-aof "$manifest" 2>&1); then return 0; fi
  last=$(awk '$NF == "i" { f = $2 } END { print f }' "$manifest")
  okto=$(sed -n "s/^AOF analyzed: filename=${last//./\\.}, size=[0-9]*, ok_up_to=\([0-9]*\),.*/\1/p" <<<"$report" | tail -n 1)
  if [ -z "$last" ] || [ -z "$okto" ] || ! grep -q "^AOF $last is not valid" <<<"$report"; then
    fail_with "the AOF is damaged outside the end of its last file; Redis cannot start: $(grep -v '^\[' <<<"$report" | tail -n 3 | tr '\n' ' ')"
  fi
  size=$(stat -c %s "$dir/$last")
  tail -c +"$((okto + 1))" "$dir/$last" >"$dir/$last.cut-$(date -u +%Y%m%dT%H%M%SZ)"
  echo y | redis-check-aof --fix "$manifest" >/dev/null 2>&1 || fail_with "redis-check-aof --fix failed on $last"
  log "warning: the end of $last was damaged (a crash or power loss): cut from $size to $okto bytes, the cut bytes kept beside it"
}

main() {
  COMMAND=${1:-}
  mkdir -p "$(dirname "$BOOT_LOG")"
  exec > >(tee -a "$BOOT_LOG") 2>&1
  LOG_PID=$!
  trap 'on_exit "$COMMAND"' EXIT
  # Anything that fails unexpectedly says what and where, instead of a silent `set -e` exit.
  set -E
  trap 'log "FATAL: \"$BASH_COMMAND\" failed (exit $?) in ${FUNCNAME[0]:-main}, line $LINENO" >&2' ERR
  case "$COMMAND" in
  first-boot) first_boot ;;
  prepare) prepare ;;
  converge) converge ;;
  settings) settings_tick ;;
  handoff) topology_handoff || log "warning: handoff failed; Redis stops anyway" ;;
  watch) failover_watch ;;
  check-aof) check_aof ;;
  backup) backup_run "${2:-now}" ;;
  *)
    echo "usage: node.sh first-boot|prepare|converge|settings|handoff|watch|check-aof|backup [now|scheduled]" >&2
    exit 2
    ;;
  esac
}

# load_shipped_libs: the functions shipped through SSM (lib-backup.sh; lib-sentinel.sh, whose definitions
# replace the Redis Cluster steps above), each sourced once it is installed: from the start of every command
# after the first prepare, and by that first prepare right after it installed them.
load_shipped_libs() {
  if [ -z "${BACKUP_LIB_LOADED:-}" ] && [ -f "$LIB_DIR/lib-backup.sh" ]; then
    # shellcheck source=components/ec2/node/lib-backup.sh
    . "$LIB_DIR/lib-backup.sh"
    BACKUP_LIB_LOADED=yes
  fi
  if [ -z "${LIVE_LIB_LOADED:-}" ] && [ -f "$LIB_DIR/lib-live.sh" ]; then
    # shellcheck source=components/ec2/node/lib-live.sh
    . "$LIB_DIR/lib-live.sh"
    LIVE_LIB_LOADED=yes
  fi
  if [ "${TOPOLOGY:-cluster}" = sentinel ] && [ -z "${SENTINEL_LIB_LOADED:-}" ] && [ -f "$LIB_DIR/lib-sentinel.sh" ]; then
    # shellcheck source=components/ec2/node/lib-sentinel.sh
    . "$LIB_DIR/lib-sentinel.sh"
    SENTINEL_LIB_LOADED=yes
  fi
}
load_shipped_libs

# Sourced (the lab's tests call single functions on a node), it only defines them.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
