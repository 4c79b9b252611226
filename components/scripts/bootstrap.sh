# shellcheck shell=bash
# bootstrap.sh: bring one EC2 instance to a running Redis Cluster node. Functions only; the rendered
# user-data defines the node's variables first (see components/userData.ts) and calls bootstrap_main.
# Idempotent: re-running it (a reboot, a retry) changes nothing on a healthy node and never touches data.
# shellcheck disable=SC2154  # variables come from the rendered user-data

readonly BOOT_LOG=/var/log/redis-bootstrap.log
readonly CONF_DIR=/etc/redis
readonly DATA_DIR=/var/lib/redis
readonly UNIT=redis-node

# retry SECONDS CMD...: retries CMD every 3 s until it succeeds or SECONDS pass.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 3
  done
}

install_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v aws >/dev/null || missing+=(awscli)
  command -v curl >/dev/null || missing+=(curl)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    retry 300 apt-get update -q || die "apt-get update failed for 5 minutes (no route to the Debian mirror? check the NAT gateway)"
    retry 300 apt-get install -y -q "${missing[@]}" || die "could not install ${missing[*]}"
  fi
  # Debian's own unit runs a standalone server from /etc/redis/redis.conf; this node runs redis-node.service.
  systemctl disable --now redis-server.service >/dev/null 2>&1 || true
}

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
  local dev="" deadline=$((SECONDS + 600)) uuid
  until dev=$(find_data_device); do
    [ "$SECONDS" -ge "$deadline" ] && die "data volume $DATA_VOLUME_ID is not attached after 600s; refusing to start Redis without it"
    log "waiting for data volume $DATA_VOLUME_ID to be attached"
    sleep 5
  done
  if ! blkid -p "$dev" >/dev/null 2>&1; then
    log "data volume $DATA_VOLUME_ID ($dev) is blank: formatting (a new node)"
    mkfs.ext4 -q -L redis-data "$dev"
  fi
  uuid=$(blkid -s UUID -o value "$dev")
  [ -n "$uuid" ] || die "no filesystem UUID on $dev"
  mkdir -p "$DATA_DIR"
  if ! grep -q "^UUID=$uuid " /etc/fstab; then
    sed -i "\\# $DATA_DIR #d" /etc/fstab
    echo "UUID=$uuid $DATA_DIR ext4 defaults,noatime,nofail 0 2" >>/etc/fstab
  fi
  local src=""
  src=$(findmnt -n -o SOURCE --mountpoint "$DATA_DIR" 2>/dev/null || true)
  if [ -z "$src" ]; then
    mount "$DATA_DIR"
    src=$(findmnt -n -o SOURCE --mountpoint "$DATA_DIR" 2>/dev/null || true)
  fi
  # Whatever is mounted there must be this node's own volume, or Redis would serve the wrong (or no) data.
  [ "$(readlink -f "${src:-none}")" = "$dev" ] ||
    die "$DATA_DIR holds '${src:-nothing}', not data volume $DATA_VOLUME_ID ($dev); refusing to start Redis"
  chown redis:redis "$DATA_DIR"
  chmod 0750 "$DATA_DIR"
}

ssm_get() {
  aws ssm get-parameter --region "$AWS_REGION" --name "$1" --with-decryption --query Parameter.Value --output text
}

# ssm_to_file PARAMETER PATH MODE: a parameter's value into a root:redis file (records a change).
ssm_to_file() {
  retry 300 ssm_get "$1" | write_file "$2" "$3" root:redis >>"$CHANGES" || die "cannot read $1 from SSM"
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

# Passwords and the TLS key come from SSM Parameter Store with the instance role, never from user-data.
write_secrets() {
  local app_pass admin_pass
  install -d -m 0750 -o root -g redis "$CONF_DIR"
  app_pass=$(retry 300 ssm_get "$SSM_APP_PASSWORD") || die "cannot read $SSM_APP_PASSWORD from SSM (instance role, region $AWS_REGION)"
  admin_pass=$(retry 300 ssm_get "$SSM_ADMIN_PASSWORD") || die "cannot read $SSM_ADMIN_PASSWORD from SSM"
  printf '%s' "$admin_pass" | write_file "$ADMIN_PASS_FILE" 0600 root:root >/dev/null
  {
    echo "user default off"
    printf 'user %s on #%s %s\n' "$APP_USER" "$(printf '%s' "$app_pass" | sha256sum | cut -d' ' -f1)" "$APP_ACL_RULES"
    printf 'user %s on #%s %s\n' "$ADMIN_USER" "$(printf '%s' "$admin_pass" | sha256sum | cut -d' ' -f1)" "$ADMIN_ACL_RULES"
  } | write_file "$CONF_DIR/users.acl" 0640 root:redis >>"$CHANGES"
  printf 'masterauth "%s"\n' "$admin_pass" | write_file "$CONF_DIR/secrets.conf" 0640 root:redis >>"$CHANGES"
  if [ "$TLS" = yes ]; then
    install -d -m 0750 -o root -g redis "$CONF_DIR/tls"
    ssm_to_file "$SSM_TLS_CA" "$TLS_CA" 0644
    ssm_to_file "$SSM_TLS_CERT" "$TLS_CERT" 0644
    ssm_to_file "$SSM_TLS_KEY" "$TLS_KEY" 0640
  fi
}

write_config() {
  printf '%s\n' "$REDIS_CONF" | write_file "$CONF_DIR/redis-node.conf" 0640 root:redis >>"$CHANGES"
  printf '%s\n' "$SYSTEMD_UNIT" | write_file "/etc/systemd/system/$UNIT.service" 0644 root:root >>"$CHANGES"
  install -d -m 0750 -o redis -g redis /var/log/redis
}

start_redis() {
  systemctl daemon-reload
  systemctl enable "$UNIT.service" >/dev/null 2>&1
  if systemctl is-active --quiet "$UNIT.service"; then
    if [ -s "$CHANGES" ]; then
      # A restart of a master costs a failover: leave it to a rolling restart (README: upgrades).
      log "configuration changed while redis runs: it applies at the next restart (systemctl restart $UNIT, replicas first)"
    else
      log "redis already running with this configuration"
    fi
  else
    log "starting redis"
    systemctl start "$UNIT.service"
  fi
}

# Session Manager is the only way onto a node (no SSH, no public IP), and Debian's AMIs do not ship its
# agent: install AWS's package from the region's own bucket. Best effort and after Redis is settled, so a
# node serves even when S3 is unreachable; the next boot retries.
install_ssm_agent() {
  if dpkg-query -W -f='${Status}' amazon-ssm-agent 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  local arch deb url
  arch=$(dpkg --print-architecture)
  url="https://s3.${AWS_REGION}.amazonaws.com/amazon-ssm-${AWS_REGION}/latest/debian_${arch}/amazon-ssm-agent.deb"
  deb=$(mktemp --suffix=.deb)
  if curl -fsS --connect-timeout 10 --max-time 300 --retry 3 -o "$deb" "$url" 2>&1 && dpkg -i "$deb" >/dev/null 2>&1; then
    systemctl enable --now amazon-ssm-agent.service >/dev/null 2>&1 || log "warning: amazon-ssm-agent installed but did not start"
    log "installed amazon-ssm-agent (Session Manager)"
  else
    log "warning: could not install amazon-ssm-agent from $url; Session Manager cannot reach this node until a later boot installs it (Redis is unaffected)"
  fi
  rm -f "$deb"
}

bootstrap_main() {
  mkdir -p /var/log
  exec > >(tee -a "$BOOT_LOG") 2>&1
  log "bootstrap of $NODE_NAME ($NODE_ROLE of shard $NODE_SHARD, $NODE_IP) starts"
  CHANGES=$(mktemp)
  trap 'rm -f "$CHANGES"' EXIT
  install_packages
  tune_host
  mount_data_volume
  write_secrets
  write_config
  start_redis
  cluster_converge
  install_ssm_agent
  log "bootstrap of $NODE_NAME done"
}
