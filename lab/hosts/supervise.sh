#!/usr/bin/env bash
# The "hypervisor" of one HostLab host (lab/hosts/hostLab.ts): runs systemd-nspawn --boot and, when the
# container reboots (systemd-nspawn exits with 133 after `systemctl reboot` inside), boots it again, as
# EC2 does for a rebooted instance. Started detached (setsid) so that a persistent lab outlives the
# process that created it; it records its state in the host's dir:
#   supervisor.pid  "<pid> <starttime>" of this script
#   nspawn.pid      pid of the current systemd-nspawn
#   init.pid        pid (as seen from this machine) of the container's PID 1 (systemd), once the volume
#                   is attached; removed when the boot ends
#   boots           number of boots started so far
#   events.log      one line per boot start / volume attach / exit (with nspawn's exit status)
#   console.log     the containers' console output (all boots; each starts with a "=== boot N" line)
# After each boot starts, it "attaches" the EBS volume: udev does not run in a container, so it creates
# the /dev/disk/by-id link that AWS Nitro's udev rules would create, pointing at the loop device that
# systemd-nspawn --bind'ed into the container.
#
# Usage: supervise.sh HOST_DIR LOOP_DEVICE BY_ID_LINK_NAME -- systemd-nspawn ARGS...
set -euo pipefail

dir=$1
dev=$2
link=$3
shift 3
[[ ${1:-} == -- ]] && shift
[[ $# -gt 0 ]] || {
  echo "usage: supervise.sh HOST_DIR LOOP_DEVICE BY_ID_LINK_NAME -- COMMAND..." >&2
  exit 2
}

read -r -a self_stat <"/proc/$$/stat"
# Field 22 of /proc/PID/stat is the start time (the command name has no spaces: "bash").
echo "$$ ${self_stat[21]}" >"$dir/supervisor.pid"

event() { echo "$(date -u +%FT%T.%3NZ) $*" >>"$dir/events.log"; }

# Prints the pid of the container's PID 1 once it runs systemd (a child of systemd-nspawn, pid 1 in its
# own pid namespace); fails after about 60 s.
container_init() {
  local nspawn=$1 c i kids
  for ((i = 0; i < 1200; i++)); do
    kill -0 "$nspawn" 2>/dev/null || return 1
    kids=$(cat "/proc/$nspawn/task/"*/children 2>/dev/null || true)
    for c in $kids; do
      if grep -qE '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$c/status" 2>/dev/null &&
        [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]]; then
        echo "$c"
        return 0
      fi
    done
    sleep 0.05
  done
  return 1
}

attach_volume() {
  local nspawn=$1 boot=$2 init
  if ! init=$(container_init "$nspawn"); then
    event "boot $boot: container init not found"
    return 0
  fi
  if nsenter -t "$init" -m -- /bin/sh -c \
    "mkdir -p /dev/disk/by-id && ln -sfn ../../${dev#/dev/} /dev/disk/by-id/$link"; then
    event "boot $boot: volume $dev attached as /dev/disk/by-id/$link (init $init)"
  else
    event "boot $boot: attaching $dev failed (init $init)"
  fi
  echo "$init" >"$dir/init.pid"
}

boots=$(cat "$dir/boots" 2>/dev/null || echo 0)
while :; do
  boots=$((boots + 1))
  echo "$boots" >"$dir/boots"
  rm -f "$dir/init.pid"
  echo "=== boot $boots $(date -u +%FT%TZ)" >>"$dir/console.log"
  "$@" </dev/null >>"$dir/console.log" 2>&1 &
  nspawn=$!
  echo "$nspawn" >"$dir/nspawn.pid"
  event "boot $boots: started (nspawn $nspawn)"
  attach_volume "$nspawn" "$boots" &
  attacher=$!
  rc=0
  wait "$nspawn" || rc=$?
  kill "$attacher" 2>/dev/null || true
  wait "$attacher" 2>/dev/null || true
  rm -f "$dir/init.pid" "$dir/nspawn.pid"
  event "boot $boots: exit $rc"
  # 133: the container asked for a reboot.
  [[ $rc == 133 ]] || break
done
event "stopped"
rm -f "$dir/supervisor.pid"
