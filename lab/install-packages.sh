#!/usr/bin/env bash
# Installs the Debian packages the lab, the local mode and the tests need on this machine (as root):
# what is missing is installed, what is there is left alone. Used by .ci/run and by `npm run local`.
set -euo pipefail

# command:package pairs; the hosts' own packages come from the lab's root filesystem, not from here.
readonly NEEDED=(
  redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools
  shellcheck:shellcheck ip:iproute2 mkfs.ext4:e2fsprogs losetup:mount nsenter:util-linux
  openssl:openssl curl:curl pkill:procps nft:nftables blockdev:util-linux
  systemd-nspawn:systemd-container debootstrap:debootstrap dpkg-scanpackages:dpkg-dev gpg:gnupg
  /usr/bin/aws:awscli update-ca-certificates:ca-certificates
  /usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring
  promtool:prometheus
  /usr/lib/python3/dist-packages/redis/__init__.py:python3-redis
)

missing=()
for pair in "${NEEDED[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
done
[ "${#missing[@]}" -gt 0 ] || exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them first: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages from starting services of their own (a system redis-server on 6379).
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
