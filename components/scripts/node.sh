#!/bin/bash
# node.sh: one Redis Cluster node's life on its EC2 instance (docs/architecture.md, "On the instance").
# Installed by the user-data as /usr/local/lib/redis-stack/node.sh; the node's own facts are in
# /etc/redis-stack/node.env (no secret: passwords and keys are read from SSM with the instance role).
#
#   node.sh first-boot  run once per instance by cloud-init (the user-data): packages, units, start
#   node.sh prepare     every boot, before Redis (redis-node-prepare.service): host tuning, the data
#                       volume, secrets and TLS material refreshed from SSM, the SSM agent present
#   node.sh converge    every boot, after Redis (redis-node-cluster.service): form or join the cluster,
#                       then publish this node's status to SSM
#
# Every step is idempotent. Logs go to /var/log/redis-stack.log and to the console (EC2 console output).
set -euo pipefail
umask 027
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

readonly LIB_DIR=/usr/local/lib/redis-stack
readonly CONF_DIR=/etc/redis-stack
readonly DATA_DIR=/var/lib/redis
readonly BOOT_LOG=/var/log/redis-stack.log
readonly UNIT=redis-node

# shellcheck source=/dev/null
. "$CONF_DIR/node.env"
# shellcheck source=components/scripts/lib-cluster.sh
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
  value=$(printf '{"state":"%s","node":"%s","instance":"%s","time":"%s","detail":"%s"}' \
    "$state" "$NODE_NAME" "$instance" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(printf '%s' "$detail" | tr -d '\\"' | head -c 900)")
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

# on_exit: a failed run publishes why (the last FATAL line), so nobody has to log in to find out.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    [ -n "$FAILURE" ] || FAILURE=$(grep -o 'FATAL: .*' "$BOOT_LOG" 2>/dev/null | tail -n 1 | cut -c8-)
    publish_status failed "${FAILURE:-$1 exited with $rc; see $BOOT_LOG}"
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

# ssm_to_file PARAMETER PATH MODE: a parameter's value into a root:redis file.
ssm_to_file() {
  local value
  value=$(retry "$SECRETS_WAIT_SECONDS" ssm_get "$1") || fail_with "cannot read $1 from SSM (instance role, region $AWS_REGION)"
  printf '%s\n' "$value" | write_file "$2" "$3" root:redis >/dev/null
}

# Passwords and TLS material come from SSM Parameter Store at every boot, so renewed certificates and
# rotated passwords reach a node by restarting it. /etc/redis-stack belongs to no package, so no
# upgrade resets its modes (Debian's redis-tools resets /etc/redis).
refresh_secrets() {
  local app_pass admin_pass
  install -d -m 0750 -o root -g redis "$CONF_DIR"
  app_pass=$(retry "$SECRETS_WAIT_SECONDS" ssm_get "$SSM_APP_PASSWORD") ||
    fail_with "cannot read $SSM_APP_PASSWORD from SSM (instance role, region $AWS_REGION)"
  admin_pass=$(retry "$SECRETS_WAIT_SECONDS" ssm_get "$SSM_ADMIN_PASSWORD") || fail_with "cannot read $SSM_ADMIN_PASSWORD from SSM"
  printf '%s' "$admin_pass" | write_file "$ADMIN_PASS_FILE" 0600 root:root >/dev/null
  {
    echo "user default off"
    printf 'user %s on #%s %s\n' "$APP_USER" "$(printf '%s' "$app_pass" | sha256sum | cut -d' ' -f1)" "$APP_ACL_RULES"
    printf 'user %s on #%s %s\n' "$ADMIN_USER" "$(printf '%s' "$admin_pass" | sha256sum | cut -d' ' -f1)" "$ADMIN_ACL_RULES"
  } | write_file "$CONF_DIR/users.acl" 0640 root:redis >/dev/null
  printf 'masterauth "%s"\n' "$admin_pass" | write_file "$CONF_DIR/secrets.conf" 0640 root:redis >/dev/null
  if [ "$TLS" = yes ]; then
    install -d -m 0750 -o root -g redis "$CONF_DIR/tls"
    ssm_to_file "$SSM_TLS_CA" "$TLS_CA" 0644
    ssm_to_file "$SSM_TLS_CERT" "$TLS_CERT" 0644
    ssm_to_file "$SSM_TLS_KEY" "$TLS_KEY" 0640
  fi
  log "secrets and TLS material refreshed from SSM"
}

write_config() {
  install -d -m 0750 -o root -g redis "$CONF_DIR"
  printf '%s\n' "$REDIS_CONF" | write_file "$CONF_DIR/redis-node.conf" 0640 root:redis >/dev/null
  install -d -m 0750 -o redis -g redis /var/log/redis
}

# ------------------------------------------------------------------------------------------ commands

prepare() {
  log "prepare: $NODE_NAME ($NODE_ROLE of shard $NODE_SHARD, $NODE_IP)"
  tune_host
  mount_data_volume
  refresh_secrets
  write_config
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

converge() {
  publish_status starting "joining the cluster"
  cluster_converge
  wait_cluster_ok
  publish_status ok "cluster_state:ok"
}

first_boot() {
  log "first boot of $NODE_NAME ($NODE_ROLE of shard $NODE_SHARD, $NODE_IP)"
  install_ssm_agent
  install_packages
  systemctl daemon-reload
  systemctl enable redis-node-prepare.service "$UNIT.service" redis-node-cluster.service >/dev/null 2>&1
  # Starting the last unit of the chain starts the others (Requires=) and waits for the cluster.
  systemctl start redis-node-cluster.service ||
    fail_with "redis-node-cluster did not finish: $(journalctl -u redis-node-prepare -u "$UNIT" -u redis-node-cluster -n 5 --no-pager -o cat 2>/dev/null | tr '\n' ' ')"
  log "first boot of $NODE_NAME done"
}

main() {
  COMMAND=${1:-}
  mkdir -p "$(dirname "$BOOT_LOG")"
  exec > >(tee -a "$BOOT_LOG") 2>&1
  trap 'on_exit "$COMMAND"' EXIT
  # Anything that fails unexpectedly says what and where, instead of a silent `set -e` exit.
  set -E
  trap 'log "FATAL: \"$BASH_COMMAND\" failed (exit $?) in ${FUNCNAME[0]:-main}, line $LINENO"' ERR
  case "$COMMAND" in
  first-boot) first_boot ;;
  prepare) prepare ;;
  converge) converge ;;
  *)
    echo "usage: node.sh first-boot|prepare|converge" >&2
    exit 2
    ;;
  esac
}

main "$@"
